import process from "node:process";
import { clearLine, createInterface, cursorTo } from "node:readline";
import { type Addr, formatAddr, type Net, NetError } from "../net/mod.ts";
import { LineSplitter } from "./lines.ts";
import { formatChatLine, isQuit, withNewline } from "./protocol.ts";

/** Settings of {@linkcode runClnt}; the command line fills them in. */
export interface ClntOptions {
  /** The chat server or load balancer to connect to. */
  server: Addr;
  /** The name put in front of every line sent, as `[name] `. */
  name: string;
  /** How long to wait for the connection, in ms. */
  connectTimeoutMs: number;
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

/**
 * Runs the chat client on this process's stdin and stdout until the user quits (`q`, `Q`,
 * `/quit` or end of input: resolves 0), the server goes away (prints
 * `Server disconnected ...`: resolves 1) or the connect fails (resolves 1).
 *
 * Piped, it is the original's line-for-line client: each input line is sent as
 * `[name] line`, and whatever the server sends is written to stdout unchanged. At a terminal,
 * the line being typed stays on the prompt while messages arrive above it.
 */
export async function runClnt(net: Net, options: ClntOptions): Promise<number> {
  const stdout = process.stdout;
  let conn;
  try {
    conn = await net.connect(options.server, { timeoutMs: options.connectTimeoutMs });
  } catch (err) {
    process.stderr.write(
      `cannot connect to ${formatAddr(options.server)}: ${describeConnectError(err)}\n`,
    );
    return 1;
  }
  const tty = Boolean(process.stdin.isTTY && stdout.isTTY);
  const rl = createInterface({
    input: process.stdin,
    output: tty ? stdout : undefined,
    terminal: tty,
    historySize: 200,
  });

  let finish!: (code: number) => void;
  const finished = new Promise<number>((resolve) => finish = resolve);
  let quitting = false;
  let sending: Promise<void> = Promise.resolve();

  const quit = async (code: number) => {
    if (quitting) return;
    quitting = true;
    // Lines already typed still go out, but a stuck server does not hold the quit forever.
    await Promise.race([sending, new Promise((resolve) => setTimeout(resolve, 2000))]);
    conn.close();
    rl.close();
    finish(code);
  };

  /** Shows a line that arrived without disturbing what the user is typing. */
  const show = (line: Uint8Array) => {
    clearLine(stdout, 0);
    cursorTo(stdout, 0);
    stdout.write(line);
    rl.prompt(true);
  };

  rl.on("line", (typed: string) => {
    if (quitting) return;
    if (isQuit(typed)) {
      quit(0);
      return;
    }
    const line = formatChatLine(options.name, typed);
    sending = sending.then(() => conn.writeAll(line)).catch(() => {});
    if (tty) rl.prompt();
  });
  rl.on("close", () => quit(0));
  rl.on("SIGINT", () => quit(0));
  if (tty) {
    rl.setPrompt(`${options.name}> `);
    rl.prompt();
  }

  const reading = (async () => {
    const buf = new Uint8Array(READ_BUFFER_BYTES);
    const splitter = tty ? new LineSplitter(TTY_MAX_LINE) : undefined;
    try {
      while (true) {
        const n = await conn.read(buf);
        if (n === null) break;
        if (splitter === undefined) {
          stdout.write(buf.slice(0, n));
          continue;
        }
        for (const frame of splitter.push(buf.subarray(0, n))) {
          if (frame.kind === "line") show(withNewline(frame.bytes));
        }
      }
    } catch {
      // A reset means the server is gone, as an end of stream does.
    }
    if (quitting) return;
    if (tty) {
      clearLine(stdout, 0);
      cursorTo(stdout, 0);
    }
    stdout.write("Server disconnected ...\n");
    quitting = true;
    conn.close();
    rl.close();
    finish(1);
  })();

  const code = await finished;
  await reading;
  return code;
}
