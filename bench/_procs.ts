/**
 * Processes of the benchmark: started under `sh -c 'ulimit -n ...; exec ...'` so each gets
 * the raised file-descriptor limit, tracked by PID, stopped by PID, and measured from
 * `/proc/<pid>` (CPU ticks, RSS).
 *
 * @module
 */

const decoder = new TextDecoder();

/** The file-descriptor limit the benchmark asks for; the hard limit may cap it. */
export const WANTED_FD_LIMIT = 25_000;

/** The file-descriptor limit a child gets: the wanted one, or the hard limit if lower. */
export async function fdLimit(): Promise<number> {
  const out = await runCapture("sh", ["-c", "ulimit -Hn"], 5_000);
  const hard = out.stdout.trim();
  return hard === "unlimited" ? WANTED_FD_LIMIT : Math.min(WANTED_FD_LIMIT, Number(hard));
}

/** A started process. */
export interface Proc {
  readonly name: string;
  readonly pid: number;
  readonly child: Deno.ChildProcess;
  /** Everything it wrote to stderr so far (kept short). */
  stderr(): string;
}

/** Started processes, so that a failure or Ctrl-C still stops every one of them. */
const running = new Set<Proc>();

/** Starts `cmd args` with the raised fd limit; stdout piped when `pipeStdout`. */
export async function start(
  name: string,
  cmd: string,
  args: string[],
  options: {
    pipeStdout?: boolean;
    pipeStdin?: boolean;
    cwd?: string;
    env?: Record<string, string>;
  } = {},
): Promise<Proc> {
  const limit = await fdLimit();
  const quoted = [cmd, ...args].map((part) => `'${part.replaceAll("'", "'\\''")}'`).join(" ");
  const child = new Deno.Command("sh", {
    args: ["-c", `ulimit -n ${limit}; exec ${quoted}`],
    stdin: options.pipeStdin ? "piped" : "null",
    stdout: options.pipeStdout ? "piped" : "null",
    stderr: "piped",
    cwd: options.cwd,
    env: options.env,
  }).spawn();
  let err = "";
  (async () => {
    try {
      for await (const chunk of child.stderr) {
        if (err.length < 4000) err += decoder.decode(chunk);
      }
    } catch {
      // The process is gone.
    }
  })();
  const proc: Proc = { name, pid: child.pid, child, stderr: () => err };
  running.add(proc);
  return proc;
}

/** Sends SIGTERM to `proc` by PID, then SIGKILL after `graceMs`; waits for it to exit. */
export async function stop(proc: Proc, graceMs = 3_000): Promise<void> {
  if (!running.has(proc)) return;
  running.delete(proc);
  try {
    Deno.kill(proc.pid, "SIGTERM");
  } catch {
    // Already gone.
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const killed = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      try {
        Deno.kill(proc.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
      resolve();
    }, graceMs);
  });
  await Promise.race([proc.child.status, killed]);
  await proc.child.status;
  clearTimeout(timer);
}

/** The processes running now, to stop only those started after with {@linkcode stopAllBut}. */
export function snapshot(): Set<Proc> {
  return new Set(running);
}

/** Stops every process started since `kept` was taken (after a failed or timed-out step). */
export async function stopAllBut(kept: Set<Proc>): Promise<void> {
  await Promise.all(
    [...running].filter((proc) => !kept.has(proc)).map((proc) => stop(proc, 1_000)),
  );
}

/** Stops every process still running (on failure or interrupt). */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((proc) => stop(proc, 1_000)));
}

/**
 * Until the returned function is called, Ctrl-C or SIGTERM stops every process still running
 * and exits 130: nothing started is left behind.
 */
export function stopAllOnSignal(): () => void {
  const onSignal = () => {
    stopAll().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  return () => {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  };
}

/** Runs `cmd args` to completion, killed after `timeoutMs`; returns its output. */
export async function runCapture(
  cmd: string,
  args: string[],
  timeoutMs: number,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped", stdin: "null" })
    .spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }, timeoutMs);
  try {
    const out = await child.output();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

/** True when a socket listens on `port`, from `/proc/net/tcp` (state 0A). */
function listening(port: number): boolean {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, "0")} `;
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = Deno.readTextFileSync(file);
    } catch {
      continue;
    }
    for (const line of text.split("\n")) {
      const fields = line.trim().split(/\s+/);
      if (fields[3] === "0A" && `${fields[1]} `.endsWith(hex)) return true;
    }
  }
  return false;
}

/**
 * Waits until a socket listens on `port`, up to `timeoutMs`. Reads `/proc/net/tcp` rather
 * than connecting, so that no probe connection reaches a backend (iperf3 -s serves one
 * client at a time and would take a probe for a test).
 */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (listening(port)) return;
    await sleep(50);
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A free TCP port on 127.0.0.1 (bound, read, released). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** `pid` and its descendants (nginx's master and worker). */
export function processTree(pid: number): number[] {
  const out = [pid];
  try {
    const children = Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`).trim();
    for (const child of children.split(/\s+/).filter((text) => text !== "")) {
      out.push(...processTree(Number(child)));
    }
  } catch {
    // Gone, or no children file.
  }
  return out;
}

const CLOCK_TICKS = 100;

/** CPU seconds (user + system) used so far by `pids`, from `/proc/<pid>/stat`. */
export function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // Gone.
    }
  }
  return ticks / CLOCK_TICKS;
}

/** Resident memory of `pids` in bytes, from `/proc/<pid>/status` (VmRSS). */
export function rssBytes(pids: number[]): number {
  let kb = 0;
  for (const pid of pids) {
    try {
      const match = Deno.readTextFileSync(`/proc/${pid}/status`).match(/VmRSS:\s+(\d+) kB/);
      if (match) kb += Number(match[1]);
    } catch {
      // Gone.
    }
  }
  return kb * 1024;
}
