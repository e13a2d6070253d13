/**
 * What the benchmark compares: the proxies (no proxy, l4chat lb on Deno and on Bun, HAProxy,
 * nginx stream), the backends they relay to (nginx HTTP, iperf3), and the Debian packages
 * they come from.
 *
 * @module
 */
import {
  fdLimit,
  freePort,
  type Proc,
  processTree,
  runCapture,
  sleep,
  start,
  stop,
  waitForPort,
} from "./_procs.ts";

const ROOT = new URL("../", import.meta.url).pathname;
/** The Bun that `deno install` put in node_modules. */
export const BUN = `${ROOT}node_modules/bun/bin/bun.exe`;
const MAIN = `${ROOT}main.ts`;

/** A running proxy in front of one backend port. */
export interface Running {
  /** Where clients connect. */
  port: number;
  /** The processes whose CPU and memory count (empty for no proxy). */
  pids(): number[];
  stop(): Promise<void>;
}

/** One contender of the proxy workloads. */
export interface Contender {
  name: string;
  /** Starts it in front of `backendPort` in `dir`; resolves once it accepts connections. */
  start(backendPort: number, dir: string): Promise<Running>;
}

/** True when `cmd` is on the PATH. */
async function have(cmd: string): Promise<boolean> {
  const out = await runCapture("sh", ["-c", `command -v ${cmd}`], 5_000);
  return out.code === 0;
}

/**
 * Makes sure the Debian package `pkg` (providing `cmd`, or the file `path`) is installed,
 * installing it with apt-get when missing. Says what it does; false if it cannot.
 */
export async function ensurePackage(
  pkg: string,
  probe: { cmd?: string; path?: string },
): Promise<boolean> {
  const present = async () =>
    probe.cmd !== undefined
      ? await have(probe.cmd)
      : await Deno.stat(probe.path!).then(() => true, () => false);
  if (await present()) return true;
  console.error(`bench: ${pkg} is missing; installing it from Debian (apt-get install -y ${pkg})`);
  const out = await runCapture(
    "sh",
    ["-c", `DEBIAN_FRONTEND=noninteractive apt-get install -y ${pkg}`],
    300_000,
  );
  if (out.code !== 0 || !(await present())) {
    console.error(`bench: cannot install ${pkg} (exit ${out.code}); skipping what needs it`);
    return false;
  }
  return true;
}

/** The version line of a tool, for the report. */
export async function versionOf(cmd: string, args: string[]): Promise<string> {
  try {
    const out = await runCapture(cmd, args, 10_000);
    return (out.stdout + out.stderr).trim().split("\n")[0];
  } catch {
    return "not installed";
  }
}

function running(port: number, procs: Proc[], tree = false): Running {
  return {
    port,
    pids: () => tree ? procs.flatMap((proc) => processTree(proc.pid)) : procs.map((p) => p.pid),
    stop: async () => {
      for (const proc of procs) await stop(proc);
    },
  };
}

async function started(proc: Proc, port: number): Promise<void> {
  try {
    await waitForPort(port, 15_000);
  } catch (err) {
    await stop(proc);
    throw new Error(`${proc.name} did not start: ${(err as Error).message}\n${proc.stderr()}`);
  }
}

/** No proxy: clients go straight to the backend (the physical limit). */
export const noProxy: Contender = {
  name: "none",
  start: (backendPort) =>
    Promise.resolve({ port: backendPort, pids: () => [], stop: () => Promise.resolve() }),
};

/** One way of running l4chat: the command that runs `main.ts`, and arguments it always gets. */
export interface L4chatVariant {
  /** `deno`, `deno-runtime`, `bun`: contenders are named `l4chat-<name>` and `serv-<name>`. */
  name: string;
  /** Which memory target applies: the runtime. */
  runtime: "deno" | "bun";
  cmd: string;
  /** Arguments before the subcommand (the runtime's own and `main.ts`). */
  prefix: string[];
  /** Arguments after the subcommand's own. */
  suffix: string[];
  /** Whether `serv` runs this way too (the chat workloads); `--workers` is `lb`'s alone. */
  serv: boolean;
}

/** V8's flags as `deno task start` and the release binaries set them (README, "Sockets"). */
export const L4CHAT_V8_FLAGS = "--v8-flags=--max-semi-space-size=4";

// As `deno task start` runs it (read: the workers' module).
const DENO_RUN = [
  "run",
  "--quiet",
  "--allow-net",
  "--allow-ffi",
  "--allow-read",
  L4CHAT_V8_FLAGS,
  MAIN,
];

/** The ways l4chat runs in the benchmark. */
export const L4CHAT_VARIANTS: readonly L4chatVariant[] = [
  // As `deno task start` runs it: the engine with its sockets on io_uring where it can be.
  {
    name: "deno",
    runtime: "deno",
    cmd: Deno.execPath(),
    prefix: DENO_RUN,
    suffix: [],
    serv: true,
  },
  // The same engine on epoll alone, what it falls back to without io_uring.
  {
    name: "deno-epoll",
    runtime: "deno",
    cmd: Deno.execPath(),
    prefix: DENO_RUN,
    suffix: ["--io", "epoll"],
    serv: false,
  },
  {
    name: "deno-runtime",
    runtime: "deno",
    cmd: Deno.execPath(),
    prefix: DENO_RUN,
    suffix: ["--io", "runtime"],
    serv: true,
  },
  {
    name: "deno-w2",
    runtime: "deno",
    cmd: Deno.execPath(),
    prefix: DENO_RUN,
    suffix: ["--workers", "2"],
    serv: false,
  },
  // On Bun as on Deno: the engine with its relays on io_uring where it can be (`bun main.ts`)...
  { name: "bun", runtime: "bun", cmd: BUN, prefix: [MAIN], suffix: [], serv: true },
  // ...on epoll alone, and Bun's own sockets.
  {
    name: "bun-epoll",
    runtime: "bun",
    cmd: BUN,
    prefix: [MAIN],
    suffix: ["--io", "epoll"],
    serv: false,
  },
  {
    name: "bun-runtime",
    runtime: "bun",
    cmd: BUN,
    prefix: [MAIN],
    suffix: ["--io", "runtime"],
    serv: true,
  },
];

/** Starts `l4chat <args>` as `variant` runs it, named `name`. */
export function startL4chat(name: string, variant: L4chatVariant, args: string[]): Promise<Proc> {
  return start(name, variant.cmd, [...variant.prefix, ...args, ...variant.suffix]);
}

/** `l4chat lb` as `variant` runs it, named `l4chat-<variant>`. */
export function l4chatLb(variant: L4chatVariant): Contender {
  const name = `l4chat-${variant.name}`;
  return {
    name,
    async start(backendPort) {
      const port = freePort();
      // As HAProxy and nginx run here: no log, no connection limit, no health checks but the
      // one at start (iperf3 -s takes a check's connect for a test and turns the next away).
      const proc = await startL4chat(name, variant, [
        "lb",
        "127.0.0.1",
        String(backendPort),
        "--port",
        String(port),
        "--log-level",
        "warn",
        "--max-conns",
        "0",
        "--hc-interval",
        "1h",
      ]);
      await started(proc, port);
      // The check at start is made once listening; let it be over before the load begins.
      await sleep(300);
      return running(port, [proc]);
    },
  };
}

/** HAProxy in `mode tcp`, one thread, default buffers. */
export const haproxy: Contender = {
  name: "haproxy",
  async start(backendPort, dir) {
    const port = freePort();
    const cfg = `${dir}/haproxy-${port}.cfg`;
    // Two descriptors per proxied connection, within the limit the benchmark runs under.
    const maxconn = Math.floor(((await fdLimit()) - 100) / 2);
    await Deno.writeTextFile(
      cfg,
      `global
  nbthread 1
  maxconn ${maxconn}
defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
frontend fe
  bind 127.0.0.1:${port}
  default_backend be
backend be
  server s1 127.0.0.1:${backendPort}
`,
    );
    const proc = await start("haproxy", "haproxy", ["-db", "-f", cfg]);
    await started(proc, port);
    return running(port, [proc]);
  },
};

/** nginx's `stream` module: one worker. */
export const nginxStream: Contender = {
  name: "nginx",
  async start(backendPort, dir) {
    const port = freePort();
    const cfg = `${dir}/nginx-stream-${port}.conf`;
    await Deno.writeTextFile(
      cfg,
      `load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
worker_rlimit_nofile ${await fdLimit()};
pid ${dir}/nginx-stream-${port}.pid;
error_log ${dir}/nginx-stream-${port}.log warn;
events { worker_connections ${(await fdLimit()) - 100}; }
stream {
  server {
    listen 127.0.0.1:${port};
    proxy_pass 127.0.0.1:${backendPort};
    proxy_timeout 1h;
  }
}
`,
    );
    const proc = await start("nginx-stream", "nginx", [
      "-c",
      cfg,
      "-e",
      `${dir}/nginx-stream-${port}.log`,
      "-g",
      "daemon off;",
    ]);
    await started(proc, port);
    return running(port, [proc], true);
  },
};

/** A reference relay of `bench/reference/`, run on Deno with only `--allow-ffi`. */
function referenceRelay(name: string, file: string): Contender {
  return {
    name,
    async start(backendPort) {
      const port = freePort();
      const proc = await start(name, Deno.execPath(), [
        "run",
        "--quiet",
        "--allow-ffi",
        L4CHAT_V8_FLAGS,
        `${ROOT}bench/reference/${file}`,
        String(port),
        String(backendPort),
      ]);
      await started(proc, port);
      return running(port, [proc]);
    },
  };
}

/**
 * The io_uring reference relay (`bench/reference/uring_relay.ts`): what the data path would
 * cost with one ring instead of a system call per operation. Opt-in: `--contender` names it.
 */
export const referenceUring = referenceRelay("reference-uring", "uring_relay.ts");

/**
 * The epoll reference relay (`bench/reference/epoll_relay.ts`): the engine's system calls with
 * none of its or the load balancer's per-connection work. Opt-in: `--contender` names it.
 */
export const referenceEpoll = referenceRelay("reference-epoll", "epoll_relay.ts");

/**
 * Builds `bench/reference/<file>` with gcc into `dir` as `binary`; its path, or undefined, and
 * said, when it cannot be built.
 */
export async function buildC(
  file: string,
  dir: string,
  binary: string,
  flags: string[] = [],
): Promise<string | undefined> {
  const path = `${dir}/${binary}`;
  const out = await runCapture(
    "gcc",
    ["-O2", ...flags, `${ROOT}bench/reference/${file}`, "-o", path],
    60_000,
  ).catch((err: unknown) => ({ code: -1, stdout: "", stderr: String(err) }));
  if (out.code === 0) return path;
  console.error(`bench: cannot build bench/reference/${file} (gcc): ${out.stderr.trim()}`);
  return undefined;
}

/** `bench/reference/c_relay.c` built into each run's folder once, for both of its modes. */
const cRelayBuilds = new Map<string, Promise<string | undefined>>();

/**
 * The C reference relay (`bench/reference/c_relay.c`) in `mode`: a relay's own work with no
 * runtime and nothing of a load balancer, copying through user space or splicing through a
 * pipe. Opt-in: `--contender` names it.
 */
function referenceCRelay(mode: "copy" | "splice"): Contender {
  const name = `reference-c-${mode}`;
  return {
    name,
    async start(backendPort, dir) {
      if (!cRelayBuilds.has(dir)) cRelayBuilds.set(dir, buildC("c_relay.c", dir, "c_relay"));
      const binary = await cRelayBuilds.get(dir);
      if (binary === undefined) throw new Error(`${name}: gcc could not build c_relay.c`);
      const port = freePort();
      const proc = await start(name, binary, [String(port), String(backendPort), mode]);
      await started(proc, port);
      return running(port, [proc]);
    },
  };
}

export const referenceCCopy = referenceCRelay("copy");
export const referenceCSplice = referenceCRelay("splice");

/** A tiny nginx HTTP backend answering `ok` on every path; keep-alive without limits. */
export async function startHttpBackend(dir: string): Promise<Running> {
  const port = freePort();
  const cfg = `${dir}/nginx-http-${port}.conf`;
  await Deno.writeTextFile(
    cfg,
    `worker_processes 1;
worker_rlimit_nofile ${await fdLimit()};
pid ${dir}/nginx-http-${port}.pid;
error_log ${dir}/nginx-http-${port}.log warn;
events { worker_connections ${(await fdLimit()) - 100}; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 1h;
  client_header_timeout 1h;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / { return 200 "ok\\n"; }
  }
}
`,
  );
  const proc = await start("nginx-http", "nginx", [
    "-c",
    cfg,
    "-e",
    `${dir}/nginx-http-${port}.log`,
    "-g",
    "daemon off;",
  ]);
  await started(proc, port);
  return running(port, [proc], true);
}

/** The backend of the stalled-download workload (`flood_backend.ts`). */
export async function startFloodBackend(): Promise<Running> {
  const port = freePort();
  const proc = await start("flood-backend", Deno.execPath(), [
    "run",
    "--quiet",
    "--allow-net",
    `${ROOT}bench/flood_backend.ts`,
    String(port),
  ]);
  await started(proc, port);
  return running(port, [proc]);
}

/** `iperf3 -s` on a free port. */
export async function startIperfServer(): Promise<Running> {
  const port = freePort();
  const proc = await start("iperf3-server", "iperf3", ["-s", "-p", String(port)]);
  await started(proc, port);
  return running(port, [proc]);
}
