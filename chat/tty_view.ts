import type process from "node:process";
import { emitKeypressEvents } from "node:readline";
import { type Key, LineEditor } from "./line_editor.ts";
import {
  formatShownLine,
  growNameWidth,
  inputView,
  linesThatFit,
  MIN_NAME_WIDTH,
  parseShownLine,
  type ShownLine,
} from "./tty_format.ts";

/** Settings of {@linkcode TtyView}. */
export interface TtyViewOptions {
  /** The user's name: the prompt, and the mark on their own lines. */
  name: string;
  /** Lines sent that the arrow keys recall. */
  historyLines: number;
  /** Lines kept to draw the screen again after a resize. */
  scrollbackLines: number;
}

/** What the view tells its owner. */
export interface TtyViewHandlers {
  /** The user pressed Enter on `text`. */
  submit(text: string): void;
  /** The user pressed Ctrl-C, or Ctrl-D on an empty line. */
  quit(): void;
}

type Input = typeof process.stdin;
type Output = typeof process.stdout;

const CSI = "\x1b[";
/** Lines of the chat printed on the normal screen when it ends with a message. */
const LAST_LINES = 5;

/**
 * The full-screen chat at a terminal. Lines from the server scroll in the region above the
 * last row; the last row is the line being typed, which an arriving message never disturbs.
 * Uses the alternate screen, so the terminal is as it was once the view stops.
 *
 * The terminal is owned from {@linkcode start} to {@linkcode stop}: raw mode, the scroll
 * region and the alternate screen are undone by `stop`, which must be called.
 */
export class TtyView {
  readonly #input: Input;
  readonly #output: Output;
  readonly #options: TtyViewOptions;
  readonly #handlers: TtyViewHandlers;
  readonly #editor: LineEditor;
  readonly #prompt: string;
  /** Recent lines, parsed, oldest first; redrawn after a resize. */
  #lines: ShownLine[] = [];
  #nameWidth = MIN_NAME_WIDTH;
  #rows = 24;
  #columns = 80;
  #started = false;
  readonly #onKeypress = (str: string | undefined, key: Key | undefined) =>
    this.#key(str, key ?? {});
  readonly #onResize = () => this.redraw();

  constructor(input: Input, output: Output, options: TtyViewOptions, handlers: TtyViewHandlers) {
    this.#input = input;
    this.#output = output;
    this.#options = options;
    this.#handlers = handlers;
    this.#editor = new LineEditor(options.historyLines);
    this.#prompt = `${options.name}> `;
  }

  /** Takes over the terminal and draws the empty screen. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    emitKeypressEvents(this.#input);
    this.#input.setRawMode(true);
    this.#input.on("keypress", this.#onKeypress);
    this.#input.resume();
    this.#output.on("resize", this.#onResize);
    this.#output.write(`${CSI}?1049h`);
    this.redraw();
  }

  /**
   * Gives the terminal back as it was, then prints `message` (a line) if given, after the last
   * lines the screen showed (up to {@linkcode LAST_LINES}), so that why the chat ended (a
   * server's `* server shutting down`) stays in sight.
   */
  stop(message?: string): void {
    if (!this.#started) {
      if (message !== undefined) this.#output.write(message + "\n");
      return;
    }
    this.#started = false;
    this.#input.off("keypress", this.#onKeypress);
    this.#output.off("resize", this.#onResize);
    try {
      this.#input.setRawMode(false);
    } catch {
      // The terminal is already gone.
    }
    this.#input.pause();
    let after = "";
    if (message !== undefined) {
      for (const shown of this.#lines.slice(-LAST_LINES)) after += this.#format(shown) + "\n";
      after += message + "\n";
    }
    this.#output.write(`${CSI}r${CSI}?1049l${after}`);
  }

  /** Shows a line from the server (decoded, without its `\n`). */
  show(line: string): void {
    const shown = parseShownLine(line);
    this.#lines.push(shown);
    if (this.#lines.length > this.#options.scrollbackLines) this.#lines.shift();
    if (!this.#started) return;
    if (shown.name !== undefined) {
      const width = growNameWidth(this.#nameWidth, shown.name);
      if (width !== this.#nameWidth) {
        // A wider name: draw everything again so that all names stay aligned.
        this.#nameWidth = width;
        this.redraw();
        return;
      }
    }
    this.#output.write(`${CSI}?25l${this.#scrollIn(shown)}${this.#inputLine()}${CSI}?25h`);
  }

  /** Shows a notice of the client's own (`* reconnecting ...`), dim like server notices. */
  status(text: string): void {
    this.show(text);
  }

  /** Draws the whole screen again at the terminal's current size. */
  redraw(): void {
    if (!this.#started) return;
    this.#rows = Math.max(2, this.#output.rows ?? 24);
    this.#columns = Math.max(4, this.#output.columns ?? 80);
    const formatted = this.#lines.map((shown) => this.#format(shown));
    const fit = linesThatFit(formatted, this.#rows - 1, this.#columns);
    let out = `${CSI}?25l${CSI}r${CSI}2J${CSI}1;${this.#rows - 1}r`;
    for (const line of formatted.slice(formatted.length - fit)) {
      out += `${CSI}${this.#rows - 1};1H\n${line}`;
    }
    this.#output.write(out + this.#inputLine() + `${CSI}?25h`);
  }

  #format(shown: ShownLine): string {
    return formatShownLine(shown, { self: this.#options.name, nameWidth: this.#nameWidth });
  }

  /** Scrolls the message region up and writes `shown` on its last row. */
  #scrollIn(shown: ShownLine): string {
    return `${CSI}${this.#rows - 1};1H\n${this.#format(shown)}`;
  }

  /** Draws the input row and puts the cursor where the user types. */
  #inputLine(): string {
    const view = inputView(this.#prompt, this.#editor.text, this.#editor.cursor, this.#columns);
    return `${CSI}${this.#rows};1H${CSI}2K${view.line}${CSI}${this.#rows};${
      view.cursorColumn + 1
    }H`;
  }

  #key(str: string | undefined, key: Key): void {
    if (!this.#started) return;
    const action = this.#editor.key(str, key);
    switch (action.kind) {
      case "quit":
        this.#handlers.quit();
        return;
      case "redraw":
        this.redraw();
        return;
      case "submit":
        this.#output.write(this.#inputLine());
        this.#handlers.submit(action.text);
        return;
      case "edit":
        this.#output.write(this.#inputLine());
        return;
    }
  }
}
