/** A key as `node:readline`'s `keypress` event describes it. */
export interface Key {
  /** `"return"`, `"backspace"`, `"left"`, `"a"`, ... */
  name?: string;
  ctrl?: boolean;
  meta?: boolean;
  shift?: boolean;
  /** The bytes the terminal sent, decoded. */
  sequence?: string;
}

/** What the terminal view does after a key. */
export type EditorAction =
  /** Nothing to do but redraw the input line (it may not even have changed). */
  | { kind: "edit" }
  /** The user pressed Enter on `text` (which may be empty). */
  | { kind: "submit"; text: string }
  /** The user asked to leave (Ctrl-C, or Ctrl-D on an empty line). */
  | { kind: "quit" }
  /** The user asked for the whole screen to be drawn again (Ctrl-L). */
  | { kind: "redraw" };

const segmenter = new Intl.Segmenter(undefined, { granularity: "grapheme" });
// C0 controls, DEL and C1 controls: never part of the line being typed.
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

/** The grapheme clusters of `text`, in order. */
export function graphemes(text: string): string[] {
  return Array.from(segmenter.segment(text), (s) => s.segment);
}

/**
 * The line being typed at the terminal: its text, a cursor that moves by grapheme cluster
 * (a Korean syllable, an emoji with its modifiers, a letter with its accents), and the
 * history of submitted lines that the up and down arrows recall. Holds at most
 * `maxHistory` lines. Pure: keys in, actions out, no terminal.
 */
export class LineEditor {
  readonly #maxHistory: number;
  #text = "";
  /** Cursor, as a UTF-16 index that is always on a grapheme boundary. */
  #cursor = 0;
  #history: string[] = [];
  /** While browsing history: the index shown, else `history.length`. */
  #browse = 0;
  /** The line being typed when browsing started, restored past the newest entry. */
  #draft = "";

  constructor(maxHistory = 200) {
    this.#maxHistory = maxHistory;
  }

  /** The text typed so far. */
  get text(): string {
    return this.#text;
  }

  /** The cursor as a UTF-16 index into {@linkcode text}. */
  get cursor(): number {
    return this.#cursor;
  }

  /** The lines submitted, oldest first. */
  get history(): readonly string[] {
    return this.#history;
  }

  /** Inserts `text` at the cursor; control characters are dropped. */
  insert(text: string): void {
    const clean = text.replace(CONTROL, "");
    if (clean === "") return;
    this.#text = this.#text.slice(0, this.#cursor) + clean + this.#text.slice(this.#cursor);
    this.#cursor += clean.length;
  }

  /** Handles one key press (`str` is what it typed, if anything). */
  key(str: string | undefined, key: Key): EditorAction {
    const name = key.name;
    if (key.ctrl) {
      switch (name) {
        case "c":
          return { kind: "quit" };
        case "d":
          if (this.#text === "") return { kind: "quit" };
          this.#deleteRight();
          return { kind: "edit" };
        case "a":
          this.#cursor = 0;
          return { kind: "edit" };
        case "e":
          this.#cursor = this.#text.length;
          return { kind: "edit" };
        case "b":
          this.#left();
          return { kind: "edit" };
        case "f":
          this.#right();
          return { kind: "edit" };
        case "u":
          this.#text = this.#text.slice(this.#cursor);
          this.#cursor = 0;
          return { kind: "edit" };
        case "k":
          this.#text = this.#text.slice(0, this.#cursor);
          return { kind: "edit" };
        case "w":
          this.#deleteWordLeft();
          return { kind: "edit" };
        case "p":
          this.#recall(-1);
          return { kind: "edit" };
        case "n":
          this.#recall(1);
          return { kind: "edit" };
        case "l":
          return { kind: "redraw" };
        case "h":
          this.#deleteLeft();
          return { kind: "edit" };
        case "j":
        case "m":
          return this.#submit();
        default:
          return { kind: "edit" };
      }
    }
    switch (name) {
      case "return":
      case "enter":
        return this.#submit();
      case "backspace":
        if (key.meta) this.#deleteWordLeft();
        else this.#deleteLeft();
        return { kind: "edit" };
      case "delete":
        this.#deleteRight();
        return { kind: "edit" };
      case "left":
        this.#left();
        return { kind: "edit" };
      case "right":
        this.#right();
        return { kind: "edit" };
      case "home":
        this.#cursor = 0;
        return { kind: "edit" };
      case "end":
        this.#cursor = this.#text.length;
        return { kind: "edit" };
      case "up":
        this.#recall(-1);
        return { kind: "edit" };
      case "down":
        this.#recall(1);
        return { kind: "edit" };
    }
    // Escape sequences of keys not handled above (F1, PageUp, ...) type nothing.
    if (key.meta || str === undefined || str.startsWith("\x1b")) return { kind: "edit" };
    this.insert(str);
    return { kind: "edit" };
  }

  #submit(): EditorAction {
    const text = this.#text;
    if (text.trim() !== "" && this.#history[this.#history.length - 1] !== text) {
      this.#history.push(text);
      if (this.#history.length > this.#maxHistory) this.#history.shift();
    }
    this.#browse = this.#history.length;
    this.#draft = "";
    this.#text = "";
    this.#cursor = 0;
    return { kind: "submit", text };
  }

  #recall(step: -1 | 1): void {
    if (this.#browse > this.#history.length) this.#browse = this.#history.length;
    const next = this.#browse + step;
    if (next < 0 || next > this.#history.length) return;
    if (this.#browse === this.#history.length) this.#draft = this.#text;
    this.#browse = next;
    this.#text = next === this.#history.length ? this.#draft : this.#history[next];
    this.#cursor = this.#text.length;
  }

  /** Length of the grapheme just before the cursor (0 at the start). */
  #before(): number {
    const parts = graphemes(this.#text.slice(0, this.#cursor));
    return parts.length === 0 ? 0 : parts[parts.length - 1].length;
  }

  /** Length of the grapheme just after the cursor (0 at the end). */
  #after(): number {
    const first = segmenter.segment(this.#text.slice(this.#cursor))[Symbol.iterator]().next();
    return first.done ? 0 : first.value.segment.length;
  }

  #left(): void {
    this.#cursor -= this.#before();
  }

  #right(): void {
    this.#cursor += this.#after();
  }

  #deleteLeft(): void {
    const n = this.#before();
    this.#text = this.#text.slice(0, this.#cursor - n) + this.#text.slice(this.#cursor);
    this.#cursor -= n;
  }

  #deleteRight(): void {
    const n = this.#after();
    this.#text = this.#text.slice(0, this.#cursor) + this.#text.slice(this.#cursor + n);
  }

  #deleteWordLeft(): void {
    const head = this.#text.slice(0, this.#cursor);
    const kept = head.replace(/\S*\s*$/u, "");
    this.#text = kept + this.#text.slice(this.#cursor);
    this.#cursor = kept.length;
  }
}
