/**
 * Helpers of the end-to-end tests: start l4chat as a real process, read its output line by
 * line, wait for a line with a deadline, talk to it over loopback, and run the backends it
 * proxies to in the test process.
 *
 * The process under test is `deno run` of `main.ts` with the permissions the README gives,
 * or the executable named by the environment variable `L4CHAT_BIN` (a compiled binary).
 *
 * @module
 */

import { createConnection, type Socket as NodeSocket } from "node:net";

const ROOT = new URL("../", import.meta.url);
/**
 * The permissions l4chat runs with in the README and the release binaries: `--allow-ffi` for
 * the epoll engine (and io_uring), which `--io auto` then picks.
 */
export const RUN_PERMISSIONS = ["--allow-net", "--allow-ffi"];
const DEFAULT_TIMEOUT_MS = 15_000;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** How l4chat is started, besides its arguments. */
export interface RunOptions {
  /** Replaces {@linkcode RUN_PERMISSIONS} under `deno run`. */
  permissions?: readonly string[];
  /**
   * Files l4chat may read (its `--config`): granted as `--allow-read=<files>` and nothing
   * more, as the README tells users to run it. Ignored for a compiled `L4CHAT_BIN`.
   */
  readFiles?: string[];
  /**
   * Raise the open-file limit to this many before starting (`ulimit -n` in `sh`, then `exec`),
   * for tests that hold thousands of connections. Fails if the hard limit is lower.
   */
  openFiles?: number;
}

/**
 * Whether l4chat runs under `deno run` with the README's permissions (true), or as a compiled
 * `L4CHAT_BIN`, which has no permission checks to observe.
 */
export const RUNS_WITH_DENO_PERMISSIONS = (Deno.env.get("L4CHAT_BIN") ?? "") === "";

/** A way l4chat can move bytes, and the `lb` arguments (and permissions) that choose it. */
export interface DataPath {
  name: string;
  args: string[];
  options?: RunOptions;
}

/**
 * Whether `lb --workers` can run here: it needs `SO_REUSEPORT` spreading connections over
 * the listeners of one port, which Linux does (macOS and Windows do not).
 */
export const WORKERS_OK = Deno.build.os === "linux";

/**
 * `deno run` needs read access to l4chat's own files to start the workers of `lb --workers`
 * (a Web Worker's module is read from disk); a compiled binary carries them inside.
 */
export const WORKER_PERMISSIONS: RunOptions = {
  permissions: [...RUN_PERMISSIONS, `--allow-read=${new URL(".", ROOT).pathname}`],
};

/**
 * Every data path the process under test has: the default (the epoll engine with its relays on
 * io_uring, or without where io_uring is not allowed, on Deno as on Bun), the engine on epoll
 * alone, the runtime's own sockets, and two workers. The byte-exact, half-close and
 * many-connection tests run on each.
 */
export const DATA_PATHS: readonly DataPath[] = [
  { name: RUNS_WITH_DENO_PERMISSIONS ? "default" : "binary", args: [] },
  { name: "io epoll", args: ["--io", "epoll"] },
  { name: "io runtime", args: ["--io", "runtime"] },
  ...(WORKERS_OK
    ? [{
      name: "2 workers",
      args: ["--workers", "2"],
      options: RUNS_WITH_DENO_PERMISSIONS ? WORKER_PERMISSIONS : undefined,
    }]
    : []),
];

/** The command line that runs l4chat with `args`. */
export function l4chatCommand(
  args: string[],
  options: RunOptions = {},
): { cmd: string; args: string[] } {
  const bin = Deno.env.get("L4CHAT_BIN");
  let command: { cmd: string; args: string[] };
  if (bin !== undefined && bin !== "") {
    command = { cmd: bin, args };
  } else {
    const permissions = [...(options.permissions ?? RUN_PERMISSIONS)];
    if (options.readFiles !== undefined && options.readFiles.length > 0) {
      permissions.push(`--allow-read=${options.readFiles.join(",")}`);
    }
    command = {
      cmd: Deno.execPath(),
      args: ["run", "--quiet", ...permissions, new URL("main.ts", ROOT).pathname, ...args],
    };
  }
  if (options.openFiles === undefined) return command;
  return {
    cmd: "sh",
    args: [
      "-c",
      `ulimit -n ${options.openFiles} && exec "$0" "$@"`,
      command.cmd,
      ...command.args,
    ],
  };
}

/** Rejects after `ms` with `message`, unless `promise` settles first. */
export async function deadline<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${message}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Collects a stream's lines and lets a test wait for one that matches. */
class LineLog {
  readonly lines: string[] = [];
  #waiters: { pattern: RegExp; from: number; resolve: (m: RegExpMatchArray) => void }[] = [];
  #ended = false;
  #endWaiters: (() => void)[] = [];
  readonly name: string;

  constructor(name: string, stream: ReadableStream<Uint8Array>) {
    this.name = name;
    this.#consume(stream);
  }

  async #consume(stream: ReadableStream<Uint8Array>): Promise<void> {
    let pending = "";
    try {
      for await (const chunk of stream) {
        pending += decoder.decode(chunk, { stream: true });
        let newline;
        while ((newline = pending.indexOf("\n")) !== -1) {
          this.#add(pending.slice(0, newline));
          pending = pending.slice(newline + 1);
        }
      }
    } catch {
      // The process was killed; what was read stays.
    }
    if (pending !== "") this.#add(pending);
    this.#ended = true;
    for (const resolve of this.#endWaiters) resolve();
  }

  #add(line: string): void {
    const index = this.lines.push(line) - 1;
    this.#waiters = this.#waiters.filter((waiter) => {
      if (index < waiter.from) return true;
      const match = line.match(waiter.pattern);
      if (match === null) return true;
      waiter.resolve(match);
      return false;
    });
  }

  /** Resolves once the stream has ended. */
  ended(): Promise<void> {
    if (this.#ended) return Promise.resolve();
    return new Promise((resolve) => this.#endWaiters.push(resolve));
  }

  /** Number of lines so far; pass it as `from` to wait only for later lines. */
  get mark(): number {
    return this.lines.length;
  }

  /** Waits for a line matching `pattern` at index `from` or later. */
  waitFor(
    pattern: RegExp,
    options?: { from?: number; timeoutMs?: number },
  ): Promise<RegExpMatchArray> {
    const from = options?.from ?? 0;
    for (let i = from; i < this.lines.length; i++) {
      const match = this.lines[i].match(pattern);
      if (match !== null) return Promise.resolve(match);
    }
    const found = new Promise<RegExpMatchArray>((resolve) =>
      this.#waiters.push({ pattern, from, resolve })
    );
    const timeoutMs = options?.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    return deadline(
      found,
      timeoutMs,
      `${this.name} never printed ${pattern}; it printed:\n${this.lines.slice(-30).join("\n")}`,
    );
  }

  /** Waits until `n` lines in all match `pattern`. */
  async waitForCount(pattern: RegExp, n: number, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    let from = 0;
    let seen = 0;
    while (seen < n) {
      await this.waitFor(pattern, { from, timeoutMs });
      seen = this.count(pattern);
      from = this.mark;
    }
  }

  /** How many lines (from `from` on) match `pattern`. */
  count(pattern: RegExp, from = 0): number {
    return this.lines.slice(from).filter((line) => pattern.test(line)).length;
  }
}

/** A running l4chat process. Dispose of it (`await using`) to kill it and reap it. */
export class L4chat implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly stdout: LineLog;
  readonly stderr: LineLog;
  readonly status: Promise<Deno.CommandStatus>;
  #stdin: WritableStreamDefaultWriter<Uint8Array> | undefined;

  constructor(
    args: string[],
    options?: { stdin?: boolean; env?: Record<string, string> } & RunOptions,
  ) {
    const { cmd, args: fullArgs } = l4chatCommand(args, options);
    this.child = new Deno.Command(cmd, {
      args: fullArgs,
      stdin: options?.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
      env: options?.env,
    }).spawn();
    const label = `l4chat ${args.join(" ")}`;
    this.stdout = new LineLog(`${label} (stdout)`, this.child.stdout);
    this.stderr = new LineLog(`${label} (stderr)`, this.child.stderr);
    if (options?.stdin) this.#stdin = this.child.stdin.getWriter();
    this.status = this.child.status;
  }

  /** The process id. */
  get pid(): number {
    return this.child.pid;
  }

  /** Writes `text` to the process's stdin. */
  async type(text: string): Promise<void> {
    await this.#stdin!.write(encoder.encode(text));
  }

  /** Closes the process's stdin (end of input). */
  async closeStdin(): Promise<void> {
    if (this.#stdin === undefined) return;
    const writer = this.#stdin;
    this.#stdin = undefined;
    await writer.close().catch(() => {});
  }

  /** Sends `signal` to the process. */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    try {
      this.child.kill(signal);
    } catch {
      // Already gone.
    }
  }

  /** Waits for the process to exit (bounded) and returns its exit code. */
  async exited(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<number> {
    const status = await deadline(this.status, timeoutMs, "process did not exit");
    await Promise.all([this.stdout.ended(), this.stderr.ended()]);
    return status.code;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.closeStdin();
    this.kill("SIGKILL");
    await this.status;
    await Promise.all([this.stdout.ended(), this.stderr.ended()]);
  }
}

/** Starts `l4chat serv 0 ...` on 127.0.0.1 and waits until it listens; returns its port. */
export async function startServ(
  args: string[] = [],
  options?: RunOptions,
): Promise<{ proc: L4chat; port: number }> {
  const proc = new L4chat(["serv", "0", "--host", "127.0.0.1", ...args], options);
  const match = await proc.stderr.waitFor(/chat server listening on .*:(\d+)$/);
  return { proc, port: Number(match[1]) };
}

/**
 * Starts `l4chat lb <args...>` (which must name the backends or a `--config`) and waits until
 * it listens; returns its port. A second line to wait for, such as the admin endpoint's, can
 * be awaited on `proc.stderr` after.
 */
export async function runLb(
  args: string[],
  options?: { env?: Record<string, string> } & RunOptions,
): Promise<{ proc: L4chat; port: number }> {
  const proc = new L4chat(["lb", ...args], options);
  const match = await proc.stderr.waitFor(/load balancer listening on .*:(\d+) /);
  return { proc, port: Number(match[1]) };
}

/**
 * Starts `l4chat lb 127.0.0.1 <backends...> --port 0 ...` and waits until it listens;
 * returns its port. Each backend is on 127.0.0.1: a port, or a port with its options
 * (`"10010,weight=2"`).
 */
export function startLb(
  backends: (number | string)[],
  args: string[] = [],
  options?: RunOptions,
): Promise<{ proc: L4chat; port: number }> {
  const positional = backends.flatMap((backend) => ["127.0.0.1", String(backend)]);
  return runLb(["127.0.0.1", ...positional, "--port", "0", ...args], options);
}

/** Starts `l4chat clnt 127.0.0.1 <port> <name>` with stdin piped. */
export function startClnt(port: number, name: string, args: string[] = []): L4chat {
  return new L4chat(["clnt", "127.0.0.1", String(port), name, ...args], { stdin: true });
}

/** A raw TCP client on loopback for tests that speak bytes. */
export class RawClient implements Disposable {
  readonly conn: Deno.TcpConn;
  #pending = "";
  #pos = 0;
  #buf = new Uint8Array(64 * 1024);

  private constructor(conn: Deno.TcpConn) {
    this.conn = conn;
  }

  /** Connects to `port` on `hostname` (127.0.0.1 by default). */
  static async connect(port: number, hostname = "127.0.0.1"): Promise<RawClient> {
    return new RawClient(await Deno.connect({ hostname, port }));
  }

  /** Sends `data` (a string is UTF-8 encoded). */
  async send(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    let written = 0;
    while (written < bytes.length) written += await this.conn.write(bytes.subarray(written));
  }

  /** Reads the next line (without `\n`); null at end of stream. Bounded by `timeoutMs`. */
  async readLine(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<string | null> {
    const reading = this.#readLine();
    // After a timeout the read stays pending; when the connection is closed it fails, unheard.
    reading.catch(() => {});
    return await deadline(reading, timeoutMs, "no line arrived");
  }

  async #readLine(): Promise<string | null> {
    while (true) {
      const newline = this.#pending.indexOf("\n", this.#pos);
      if (newline !== -1) {
        const line = this.#pending.slice(this.#pos, newline);
        this.#pos = newline + 1;
        return line;
      }
      const n = await this.conn.read(this.#buf);
      if (n === null) return null;
      // Drop what was consumed before appending, so long streams stay linear.
      this.#pending = this.#pending.slice(this.#pos) +
        decoder.decode(this.#buf.subarray(0, n), { stream: true });
      this.#pos = 0;
    }
  }

  /** Resolves true once the peer has closed (end of stream or reset), within `timeoutMs`. */
  async closedByPeer(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<boolean> {
    return await deadline(
      (async () => {
        try {
          while ((await this.conn.read(this.#buf)) !== null) { /* drain */ }
        } catch {
          // A reset counts as closed.
        }
        return true;
      })(),
      timeoutMs,
      "the peer did not close the connection",
    );
  }

  [Symbol.dispose](): void {
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }
}

/**
 * Connects through a load balancer on `port` to a backend that greets (`EchoBackend` with a
 * name); returns the client and the greeting. Fails if the connection closes first.
 */
export async function connectGreeted(
  port: number,
  hostname = "127.0.0.1",
): Promise<[RawClient, string]> {
  const client = await RawClient.connect(port, hostname);
  const name = await client.readLine(5000);
  if (name === null) throw new Error("closed before the backend's greeting");
  return [client, name];
}

/** True when the load balancer closed `client` without a byte from a backend. */
export async function closedEmpty(client: RawClient): Promise<boolean> {
  try {
    return (await client.readLine(5000)) === null;
  } catch (err) {
    if (err instanceof Deno.errors.ConnectionReset) return true;
    throw err;
  }
}

/**
 * Connects to `port` on 127.0.0.1 from the source address `localAddress` (another loopback
 * address such as 127.0.0.2), which Deno.connect cannot choose; node:net can.
 */
export function connectFrom(localAddress: string, port: number): Promise<NodeSocket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: "127.0.0.1", port, localAddress });
    socket.once("connect", () => resolve(socket));
    socket.once("error", reject);
  });
}

/** Runs `script` in `sh` and returns its stdout: Deno grants reading /proc only with -A. */
async function sh(script: string): Promise<string> {
  const { stdout, success } = await new Deno.Command("sh", {
    args: ["-c", script],
    stdout: "piped",
    stderr: "null",
  }).output();
  if (!success) throw new Error(`sh -c ${script} failed`);
  return decoder.decode(stdout);
}

/** Resident memory of process `pid`, in KiB (VmRSS of /proc/<pid>/status; Linux only). */
export async function rssKiB(pid: number): Promise<number> {
  const status = await sh(`cat /proc/${pid}/status`);
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? NaN);
}

/** Open file descriptors of process `pid` (entries of /proc/<pid>/fd; Linux only). */
export async function openFds(pid: number): Promise<number> {
  return Number((await sh(`ls /proc/${pid}/fd | wc -l`)).trim());
}

/** The open-file limits of this process (`ulimit -n` of a child shell, which inherits them). */
export async function openFileLimits(): Promise<{ soft: number; hard: number }> {
  const [soft, hard] = (await sh("ulimit -Sn; ulimit -Hn")).trim().split("\n");
  const value = (text: string | undefined) =>
    text === undefined || text === "unlimited" ? Infinity : Number(text);
  return { soft: value(soft), hard: value(hard) };
}

/** Where a test backend listens: 127.0.0.1 and a free port unless given. */
export interface BackendListen {
  hostname?: string;
  port?: number;
}

/**
 * A TCP server in the test process: `handle` runs for each connection (the load balancer's
 * health checks included, which connect and close at once), its errors ignored; the
 * connection is closed after. Dispose of it to close it and every connection.
 */
export class TestBackend implements AsyncDisposable {
  readonly listener: Deno.TcpListener;
  /** Connections open now. */
  readonly conns = new Set<Deno.TcpConn>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #accepting: Promise<void>;

  constructor(handle: (conn: Deno.TcpConn) => Promise<void>, options: BackendListen = {}) {
    this.listener = Deno.listen({
      hostname: options.hostname ?? "127.0.0.1",
      port: options.port ?? 0,
    });
    this.#accepting = this.#accept(handle);
  }

  get port(): number {
    return this.listener.addr.port;
  }

  /** `host:port`, as the load balancer names the backend (`[::1]:port` for IPv6). */
  get addr(): string {
    const { hostname, port } = this.listener.addr;
    return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
  }

  async #accept(handle: (conn: Deno.TcpConn) => Promise<void>): Promise<void> {
    try {
      for await (const conn of this.listener) {
        this.conns.add(conn);
        const task = handle(conn).catch(() => {}).finally(() => {
          this.conns.delete(conn);
          try {
            conn.close();
          } catch {
            // Closed by the handler already.
          }
        });
        this.#tasks.add(task);
        task.finally(() => this.#tasks.delete(task));
      }
    } catch {
      // Closed.
    }
  }

  /** Stops accepting; connections already open stay. */
  stop(): void {
    try {
      this.listener.close();
    } catch {
      // Already closed.
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.stop();
    await this.#accepting;
    for (const conn of this.conns) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
    await Promise.all(this.#tasks);
  }
}

/**
 * A backend that greets each connection with `<name>\n` when it has a name, then echoes every
 * byte back, half-close aware: when the client ends its stream, the echo ends too. Health
 * probes of the load balancer get the greeting too, harmlessly.
 */
export class EchoBackend extends TestBackend {
  readonly name: string | undefined;

  constructor(name?: string, options: BackendListen = {}) {
    super(async (conn) => {
      if (name !== undefined) await conn.write(encoder.encode(`${name}\n`));
      const buf = new Uint8Array(64 * 1024);
      let n;
      while ((n = await conn.read(buf)) !== null) {
        let written = 0;
        while (written < n) written += await conn.write(buf.subarray(written, n));
      }
      await conn.closeWrite();
    }, options);
    this.name = name;
  }
}
