/**
 * Drives a program at a real terminal: a detached `tmux` session of a fixed size on a tmux
 * server of its own, typed into with `send-keys` and read with `capture-pane`. Fails with a
 * clear message when the Debian package `tmux` is missing (`.ci/run` installs it).
 *
 * @module
 */
import { deadline } from "./_helpers.ts";

const DEFAULT_TIMEOUT_MS = 15_000;
/** How often the screen is read while waiting for it to show something. */
const POLL_MS = 50;

/** `text` quoted for a POSIX shell. */
function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

async function tmux(socket: string, args: string[]): Promise<string> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command("tmux", { args: ["-L", socket, ...args], stdin: "null" })
      .output();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new Error(
        "tmux is not installed: the terminal tests need it (apt-get install tmux; .ci/run installs it)",
      );
    }
    throw err;
  }
  const text = new TextDecoder().decode(output.stdout);
  if (!output.success) {
    throw new Error(`tmux ${args.join(" ")} failed: ${new TextDecoder().decode(output.stderr)}`);
  }
  return text;
}

/** A program running in a detached tmux session. Dispose of it to end the tmux server. */
export class TmuxSession implements AsyncDisposable {
  readonly #socket: string;

  private constructor(socket: string) {
    this.#socket = socket;
  }

  /**
   * Starts `cmd args...` in a `columns` x `rows` terminal. When the program exits, the pane
   * shows `exit=<code>` and stays open.
   */
  static async start(
    cmd: string,
    args: string[],
    options: { columns: number; rows: number; env?: Record<string, string> },
  ): Promise<TmuxSession> {
    const socket = `l4chat-test-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
    const env = Object.entries({ TERM: "xterm-256color", LANG: "C.UTF-8", ...options.env })
      .map(([key, value]) => `${key}=${shellQuote(value)}`).join(" ");
    const line = `env ${env} ${[cmd, ...args].map(shellQuote).join(" ")}; ` +
      `echo "exit=$?"; sleep 600`;
    await tmux(socket, [
      "-f",
      "/dev/null",
      "new-session",
      "-d",
      "-s",
      "main",
      "-x",
      String(options.columns),
      "-y",
      String(options.rows),
      line,
    ]);
    return new TmuxSession(socket);
  }

  /** Types `text` literally (no key names). */
  async type(text: string): Promise<void> {
    await tmux(this.#socket, ["send-keys", "-t", "main", "-l", text]);
  }

  /** Presses keys by name: `Enter`, `Up`, `C-u`, ... */
  async press(...keys: string[]): Promise<void> {
    await tmux(this.#socket, ["send-keys", "-t", "main", ...keys]);
  }

  /** Resizes the terminal. */
  async resize(columns: number, rows: number): Promise<void> {
    await tmux(this.#socket, [
      "resize-window",
      "-t",
      "main",
      "-x",
      String(columns),
      "-y",
      String(rows),
    ]);
  }

  /** The screen's rows, as plain text (trailing spaces removed). */
  async screen(): Promise<string[]> {
    const text = await tmux(this.#socket, ["capture-pane", "-p", "-t", "main"]);
    return text.replace(/\n$/, "").split("\n").map((row) => row.trimEnd());
  }

  /** The cursor's position, from 0. */
  async cursor(): Promise<{ x: number; y: number }> {
    const text = await tmux(this.#socket, [
      "display-message",
      "-p",
      "-t",
      "main",
      "#{cursor_x},#{cursor_y}",
    ]);
    const [x, y] = text.trim().split(",").map(Number);
    return { x, y };
  }

  /**
   * Reads the screen until `check` returns true for it (the screen has no event to await,
   * so this polls), within `timeoutMs`. Returns that screen.
   */
  async waitForScreen(
    check: (rows: string[]) => boolean,
    what: string,
    timeoutMs = DEFAULT_TIMEOUT_MS,
  ): Promise<string[]> {
    let last: string[] = [];
    let stop = false;
    const poll = async () => {
      while (!stop) {
        last = await this.screen();
        if (check(last)) return last;
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      }
      return last;
    };
    try {
      return await deadline(poll(), timeoutMs, `the screen never showed ${what}`);
    } catch (err) {
      stop = true;
      throw new Error(`${(err as Error).message}; it showed:\n${last.join("\n")}`);
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await tmux(this.#socket, ["kill-server"]).catch(() => {});
  }
}
