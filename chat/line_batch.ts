/**
 * The lines said to a room since it last delivered, kept as the one chunk every client is
 * then given. A chat server adds the lines of each read as it comes and delivers once all the
 * reads of a wake-up are in: each client gets one write for all of them, and the chunk is
 * built once for all the clients, however many reads it came from.
 */
export class LineBatch {
  readonly #initialBytes: number;
  #buf: Uint8Array;
  #length = 0;

  /** `initialBytes` is the buffer kept between batches; it grows as one batch needs. */
  constructor(initialBytes = 4096) {
    this.#initialBytes = initialBytes;
    this.#buf = new Uint8Array(initialBytes);
  }

  /** Whether nothing was added since the last take. */
  get empty(): boolean {
    return this.#length === 0;
  }

  /** Adds each of `lines` (without its `\n`) followed by a `\n`. The lines are copied. */
  addLines(lines: readonly Uint8Array[]): void {
    let length = 0;
    for (const line of lines) length += line.length + 1;
    const buf = this.#room(length);
    let offset = this.#length;
    for (const line of lines) {
      buf.set(line, offset);
      offset += line.length;
      buf[offset++] = 0x0a;
    }
    this.#length = offset;
  }

  /** Adds `bytes` as they are (whole lines, each with its `\n`). They are copied. */
  addBytes(bytes: Uint8Array): void {
    this.#room(bytes.length).set(bytes, this.#length);
    this.#length += bytes.length;
  }

  /** Everything added since the last take, as a new buffer; undefined if nothing was. */
  take(): Uint8Array | undefined {
    if (this.#length === 0) return undefined;
    const out = this.#buf.slice(0, this.#length);
    this.#length = 0;
    // A burst's buffer is not kept.
    if (this.#buf.length > this.#initialBytes) this.#buf = new Uint8Array(this.#initialBytes);
    return out;
  }

  /** The buffer, with room for `more` bytes after what it holds. */
  #room(more: number): Uint8Array {
    const needed = this.#length + more;
    if (needed <= this.#buf.length) return this.#buf;
    let size = this.#buf.length * 2;
    while (size < needed) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.#buf.subarray(0, this.#length));
    this.#buf = grown;
    return grown;
  }
}
