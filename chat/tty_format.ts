/**
 * What the full-screen client shows, as strings: chat lines with aligned, coloured names,
 * the input line cut to the terminal's width. Widths are terminal columns, measured with
 * `string-width` (Korean, other CJK and most emoji take two). Pure: no terminal here.
 */
import stringWidth from "string-width";
import { graphemes } from "./line_editor.ts";

/** Foreground colours that names are drawn in: red, green, yellow, blue, magenta, cyan. */
export const NAME_COLORS = [31, 32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96] as const;
/** The narrowest name column. */
export const MIN_NAME_WIDTH = 8;
/** The widest name column; longer names are cut. */
export const MAX_NAME_WIDTH = 20;

const RESET = "\x1b[0m";
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/g;
const CHAT_LINE = /^\[([^\]\r\n]{1,64})\] ?(.*)$/s;

/** The width of `text` in terminal columns. */
export function displayWidth(text: string): number {
  return stringWidth(text);
}

/**
 * `text` made safe to print: tabs become spaces, other control characters (escape
 * sequences a peer might send to move the cursor or recolour the screen) are removed.
 */
export function sanitize(text: string): string {
  return text.replace(CONTROL, "").replaceAll("\t", "    ");
}

/** The colour (an SGR foreground code) of `name`: the same name always gets the same one. */
export function nameColor(name: string): number {
  // FNV-1a over the UTF-16 code units.
  let hash = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    hash ^= name.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return NAME_COLORS[hash % NAME_COLORS.length];
}

/** `text` cut to at most `columns` columns, by whole grapheme clusters. */
export function cutToWidth(text: string, columns: number): string {
  if (displayWidth(text) <= columns) return text;
  let out = "";
  let width = 0;
  for (const g of graphemes(text)) {
    const w = displayWidth(g);
    if (width + w > columns) break;
    out += g;
    width += w;
  }
  return out;
}

/** A line from the server, parsed for display. */
export interface ShownLine {
  /** The sender's name, for `[name] text` lines. */
  name?: string;
  /** The message (or the whole line when it is not a chat line), sanitized. */
  text: string;
  /** A server notice (`* ...`). */
  notice: boolean;
}

/** Parses a line as the server sent it (decoded, without its `\n`). */
export function parseShownLine(line: string): ShownLine {
  const clean = sanitize(line);
  const match = CHAT_LINE.exec(clean);
  if (match !== null) return { name: match[1], text: match[2], notice: false };
  return { text: clean, notice: clean.startsWith("* ") };
}

/** Options of {@linkcode formatShownLine}. */
export interface FormatOptions {
  /** The user's own name: their lines are marked with `>`. */
  self: string;
  /** The name column's width, in terminal columns. */
  nameWidth: number;
}

/**
 * A line as the screen shows it: a mark column (`>` for the user's own lines), the name in
 * its colour padded to `nameWidth` columns, then the message. Notices are dim. Ends with an
 * SGR reset.
 */
export function formatShownLine(shown: ShownLine, options: FormatOptions): string {
  if (shown.name === undefined) {
    return shown.notice ? `\x1b[2m${shown.text}${RESET}` : shown.text;
  }
  const own = shown.name === options.self;
  const name = displayWidth(shown.name) > options.nameWidth
    ? cutToWidth(shown.name, options.nameWidth - 1) + "~"
    : shown.name;
  const pad = " ".repeat(Math.max(0, options.nameWidth - displayWidth(name)));
  const style = own ? `\x1b[1;${nameColor(shown.name)}m` : `\x1b[${nameColor(shown.name)}m`;
  return `${own ? ">" : " "} ${style}${name}${RESET}${pad} ${shown.text}${RESET}`;
}

/** The name column wide enough for `name` as well, between the minimum and maximum. */
export function growNameWidth(current: number, name: string): number {
  return Math.min(MAX_NAME_WIDTH, Math.max(current, MIN_NAME_WIDTH, displayWidth(name)));
}

/** The input line fitted to the terminal: what to print and where the cursor goes. */
export interface InputView {
  /** Prompt and text, at most `columns - 1` columns wide. */
  line: string;
  /** The cursor's column, from 0. */
  cursorColumn: number;
}

/**
 * Fits the prompt and the text being typed into `columns - 1` columns (the last column stays
 * empty, so the terminal never wraps or scrolls), scrolling sideways to keep the cursor (a
 * UTF-16 index into `text`) in view.
 */
export function inputView(
  prompt: string,
  text: string,
  cursor: number,
  columns: number,
): InputView {
  const room = Math.max(1, columns - 1);
  let shownPrompt = prompt;
  if (displayWidth(prompt) > room / 2) shownPrompt = "> ";
  const promptWidth = displayWidth(shownPrompt);
  const before = graphemes(sanitize(text.slice(0, cursor)));
  const after = graphemes(sanitize(text.slice(cursor)));
  // Drop from the left until what is before the cursor fits, leaving room for the cursor.
  let beforeWidth = before.reduce((sum, g) => sum + displayWidth(g), 0);
  while (before.length > 0 && promptWidth + beforeWidth + 1 > room) {
    beforeWidth -= displayWidth(before.shift()!);
  }
  let line = shownPrompt + before.join("");
  let width = promptWidth + beforeWidth;
  for (const g of after) {
    const w = displayWidth(g);
    if (width + w > room) break;
    line += g;
    width += w;
  }
  return { line, cursorColumn: promptWidth + beforeWidth };
}

/**
 * How many of the last lines of `lines` (formatted, possibly with SGR codes) fill at most
 * `rows` terminal rows of `columns` columns, counting the rows a long line wraps onto.
 */
export function linesThatFit(lines: readonly string[], rows: number, columns: number): number {
  let used = 0;
  let count = 0;
  for (let i = lines.length - 1; i >= 0; i--) {
    const need = Math.max(1, Math.ceil(displayWidth(lines[i]) / Math.max(1, columns)));
    if (used + need > rows) break;
    used += need;
    count++;
  }
  return count;
}
