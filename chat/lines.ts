/** What {@linkcode LineSplitter.push} found in a chunk. */
export type Frame =
  /** A whole line, without its `\n` (and without a `\r` before it). Bytes are not decoded. */
  | { kind: "line"; bytes: Uint8Array }
  /** A line longer than the limit; its bytes were dropped. `length` counts what was seen. */
  | { kind: "overlong"; length: number };

const LF = 0x0a;
const CR = 0x0d;

/**
 * Splits a byte stream into lines ending in `\n` (a `\r` before it is dropped too), however
 * the stream was cut into chunks. A line longer than `maxLine` bytes is reported once as
 * `overlong` and its bytes are discarded up to the next `\n`, so memory stays bounded by
 * `maxLine` whatever the peer sends. Bytes are never decoded: invalid UTF-8 passes through.
 */
export class LineSplitter {
  readonly #maxLine: number;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  /** While discarding an overlong line: how many bytes it has had so far, else -1. */
  #discarded = -1;
  /** While discarding: whether the last byte discarded was a `\r` (not counted if `\n` follows). */
  #discardedCr = false;

  constructor(maxLine: number) {
    this.#maxLine = maxLine;
  }

  /** Bytes held for a line not yet ended. */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  /** Feeds one chunk; returns the frames it completed, in order. */
  push(chunk: Uint8Array): Frame[] {
    const frames: Frame[] = [];
    let start = 0;
    while (start < chunk.length) {
      const end = chunk.indexOf(LF, start);
      if (end === -1) {
        this.#hold(chunk.subarray(start));
        break;
      }
      if (this.#discarded >= 0) {
        // Count the line as a whole line is counted: without a `\r` before its `\n`.
        const cr = end > start ? chunk[end - 1] === CR : this.#discardedCr;
        frames.push({ kind: "overlong", length: this.#discarded + end - start - (cr ? 1 : 0) });
        this.#discarded = -1;
      } else {
        const line = stripCr(this.#take(chunk.subarray(start, end)));
        frames.push(
          line.length > this.#maxLine
            ? { kind: "overlong", length: line.length }
            : { kind: "line", bytes: line },
        );
      }
      start = end + 1;
    }
    return frames;
  }

  /** Keeps a partial line, or counts it when it is already over the limit. */
  #hold(part: Uint8Array): void {
    if (this.#discarded >= 0) {
      this.#discarded += part.length;
      this.#discardedCr = part[part.length - 1] === CR;
      return;
    }
    if (this.#pendingBytes + part.length > this.#maxLine + 1) {
      // One extra byte is allowed for a `\r` that a following `\n` would drop.
      this.#discarded = this.#pendingBytes + part.length;
      this.#discardedCr = part[part.length - 1] === CR;
      this.#pending = [];
      this.#pendingBytes = 0;
      return;
    }
    // Copy: the caller may reuse its read buffer.
    this.#pending.push(part.slice());
    this.#pendingBytes += part.length;
  }

  /** Joins the held bytes with `tail` into one line. */
  #take(tail: Uint8Array): Uint8Array {
    if (this.#pendingBytes === 0) return tail.slice();
    const line = new Uint8Array(this.#pendingBytes + tail.length);
    let offset = 0;
    for (const part of this.#pending) {
      line.set(part, offset);
      offset += part.length;
    }
    line.set(tail, offset);
    this.#pending = [];
    this.#pendingBytes = 0;
    return line;
  }
}

function stripCr(line: Uint8Array): Uint8Array {
  return line.length > 0 && line[line.length - 1] === CR ? line.subarray(0, line.length - 1) : line;
}
