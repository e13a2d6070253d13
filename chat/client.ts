import process from "node:process";
import { createInterface } from "node:readline";
import { type Addr, type Conn, formatAddr, type Net, NetError } from "../net/mod.ts";
import { backoffMs } from "./backoff.ts";
import { LineSplitter } from "./lines.ts";
import { formatChatLine, isQuit } from "./protocol.ts";
import { TtyView } from "./tty_view.ts";

/** Settings of {@linkcode runClnt}; the command line fills them in. */
export interface ClntOptions {
  /** The chat server or load balancer to connect to. */
  server: Addr;
  /** The name put in front of every line sent, as `[name] `. */
  name: string;
  /** How long to wait for the connection, in ms. */
  connectTimeoutMs: number;
  /** Whether to connect again, with backoff and jitter, when the connection drops. */
  reconnect?: boolean;
  /** The ceiling of the first reconnect wait, in ms (it doubles up to `reconnectMaxMs`). */
  reconnectMinMs?: number;
  /** The longest wait between two reconnect attempts, in ms. */
  reconnectMaxMs?: number;
  /** At a terminal: lines sent that the arrow keys recall. */
  historyLines?: number;
  /** At a terminal: lines kept to draw the screen again after a resize. */
  scrollbackLines?: number;
}

const READ_BUFFER_BYTES = 16 * 1024;
/** Longest line the terminal view holds while waiting for its end; longer ones are cut. */
const TTY_MAX_LINE = 64 * 1024;

/** Words for the reasons a connect fails, as the user reads them. */
export function describeConnectError(err: unknown): string {
  if (!(err instanceof NetError)) return String((err as Error)?.message ?? err);
  switch (err.code) {
    case "ConnectionRefused":
      return "connection refused";
    case "TimedOut":
      return "timed out";
    case "NotFound":
      return "host not found";
    case "ConnectionReset":
      return "connection reset";
    case "PermissionDenied":
      return "permission denied";
    default:
      return err.message;
  }
}

/** Where the client shows what arrives and reads what the user types. */
interface Display {
  /** Starts reading input: `typed` for each line, `ended` once at end of input. */
  start(typed: (text: string) => void, ended: () => void): void;
  /** A new connection: forget any partial line of the last one. */
  connected(): void;
  /** Bytes from the server. */
  received(bytes: Uint8Array): void;
  /** A line of the client's own, such as `* reconnecting ...`. */
  status(text: string): void;
  /** Stops reading input and gives the terminal back; then prints `message` if given. */
  stop(message?: string): void;
}

/** Piped: the original's line-for-line client. Server bytes go to stdout unchanged. */
class PlainDisplay implements Display {
  #rl: ReturnType<typeof createInterface> | undefined;
  #midLine = false;

  start(typed: (text: string) => void, ended: () => void): void {
    this.#rl = createInterface({ input: process.stdin, terminal: false });
    this.#rl.on("line", typed);
    this.#rl.on("close", ended);
  }

  connected(): void {}

  received(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    process.stdout.write(bytes);
    this.#midLine = bytes[bytes.length - 1] !== 0x0a;
  }

  status(text: string): void {
    process.stdout.write(`${this.#midLine ? "\n" : ""}${text}\n`);
    this.#midLine = false;
  }

  stop(message?: string): void {
    const rl = this.#rl;
    this.#rl = undefined;
    rl?.removeAllListeners("close");
    rl?.close();
    if (message !== undefined) this.status(message);
  }
}

/** At a terminal: the full-screen view, fed whole lines. */
class FullScreenDisplay implements Display {
  readonly #options: ClntOptions;
  #view: TtyView | undefined;
  #splitter = new LineSplitter(TTY_MAX_LINE);
  #decoder = new TextDecoder();

  constructor(options: ClntOptions) {
    this.#options = options;
  }

  start(typed: (text: string) => void, ended: () => void): void {
    this.#view = new TtyView(process.stdin, process.stdout, {
      name: this.#options.name,
      historyLines: this.#options.historyLines ?? 200,
      scrollbackLines: this.#options.scrollbackLines ?? 1000,
    }, { submit: typed, quit: ended });
    this.#view.start();
  }

  connected(): void {
    this.#splitter = new LineSplitter(TTY_MAX_LINE);
  }

  received(bytes: Uint8Array): void {
    for (const frame of this.#splitter.push(bytes)) {
      if (frame.kind === "line") this.#view?.show(this.#decoder.decode(frame.bytes));
    }
  }

  status(text: string): void {
    this.#view?.status(text);
  }

  stop(message?: string): void {
    this.#view?.stop(message);
  }
}

/** Resolves after `ms`, or as soon as `cancel` is signalled. */
function sleep(ms: number, cancel: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    cancel.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      cancel.removeEventListener("abort", done);
      resolve();
    }
  });
}

/**
 * Runs the chat client on this process's stdin and stdout until the user quits (`q`, `Q`,
 * `/quit` or end of input: resolves 0), the server goes away (prints
 * `Server disconnected ...`: resolves 1) or the first connect fails (resolves 1).
 *
 * Piped, it is the original's line-for-line client: each input line is sent as
 * `[name] line`, and whatever the server sends is written to stdout unchanged. At a terminal
 * it is a full-screen chat ({@linkcode TtyView}). With `reconnect`, a dropped connection is
 * announced (`* connection lost ...`), retried with backoff and jitter until it is back
 * (`* reconnected to ...`) or the user quits; lines typed meanwhile are not sent, and the
 * user is told so.
 */
export async function runClnt(net: Net, options: ClntOptions): Promise<number> {
  const target = formatAddr(options.server);
  let conn: Conn | undefined;
  try {
    conn = await net.connect(options.server, { timeoutMs: options.connectTimeoutMs });
  } catch (err) {
    process.stderr.write(`cannot connect to ${target}: ${describeConnectError(err)}\n`);
    return 1;
  }
  const tty = Boolean(process.stdin.isTTY && process.stdout.isTTY);
  const display: Display = tty ? new FullScreenDisplay(options) : new PlainDisplay();

  let finish!: (code: number) => void;
  const finished = new Promise<number>((resolve) => finish = resolve);
  const quitSignal = new AbortController();
  let quitting = false;
  let sending: Promise<void> = Promise.resolve();

  const quit = async (code: number) => {
    if (quitting) return;
    quitting = true;
    quitSignal.abort();
    // Lines already typed still go out, but a stuck server does not hold the quit forever.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([sending, new Promise((resolve) => timer = setTimeout(resolve, 2000))]);
    clearTimeout(timer);
    conn?.close();
    display.stop();
    finish(code);
  };
  const onSignal = () => quit(0);
  if (tty) process.on("SIGTERM", onSignal);

  display.start((typed) => {
    if (quitting) return;
    if (isQuit(typed)) {
      quit(0);
      return;
    }
    const target = conn;
    if (target === undefined) {
      display.status("* not connected: line not sent");
      return;
    }
    const line = formatChatLine(options.name, typed);
    sending = sending.then(() => target.writeAll(line)).catch(() => {});
  }, () => quit(0));

  /** Reads `c` until it ends; resolves true if anything arrived. */
  const readAll = async (c: Conn): Promise<boolean> => {
    const buf = new Uint8Array(READ_BUFFER_BYTES);
    let got = false;
    try {
      while (true) {
        const n = await c.read(buf);
        if (n === null) break;
        got = true;
        display.received(buf.slice(0, n));
      }
    } catch {
      // A reset means the server is gone, as an end of stream does.
    }
    return got;
  };

  const minMs = options.reconnectMinMs ?? 500;
  const maxMs = options.reconnectMaxMs ?? 10_000;
  const running = (async () => {
    let attempt = 0;
    while (conn !== undefined) {
      const current = conn;
      display.connected();
      // A connection that delivered something was a real one: the backoff starts over.
      if (await readAll(current)) attempt = 0;
      current.close();
      if (quitting) return;
      conn = undefined;
      if (!options.reconnect) {
        quitting = true;
        display.stop("Server disconnected ...");
        finish(1);
        return;
      }
      display.status(`* connection lost: reconnecting to ${target} ...`);
      while (!quitting && conn === undefined) {
        attempt++;
        await sleep(
          backoffMs(attempt, { minMs, maxMs, random: Math.random() }),
          quitSignal.signal,
        );
        if (quitting) return;
        try {
          conn = await net.connect(options.server, { timeoutMs: options.connectTimeoutMs });
        } catch {
          // Still away; the next try waits longer.
        }
      }
      if (quitting) {
        conn?.close();
        return;
      }
      display.status(`* reconnected to ${target}`);
    }
  })();

  const code = await finished;
  if (tty) process.off("SIGTERM", onSignal);
  await running;
  return code;
}
