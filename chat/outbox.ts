/**
 * The bytes owed to one chat client, waiting to be written. Bounded: a push that would take
 * the pending total past `maxBytes` is refused, and the shell then disconnects that client,
 * so one client that stops reading costs at most `maxBytes` and delays nobody else.
 */
export class Outbox {
  readonly #maxBytes: number;
  /** The first chunk pending; the usual case (one chunk between writes) allocates nothing. */
  #first: Uint8Array | undefined = undefined;
  /** The chunks after the first. */
  #more: Uint8Array[] = [];
  #bytes = 0;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** Bytes waiting to be written. */
  get pendingBytes(): number {
    return this.#bytes;
  }

  /**
   * Queues `bytes` (kept by reference: the caller must not change them). Returns false, and
   * queues nothing, when that would pass the limit.
   */
  push(bytes: Uint8Array): boolean {
    if (this.#bytes + bytes.length > this.#maxBytes) return false;
    if (this.#first === undefined) this.#first = bytes;
    else this.#more.push(bytes);
    this.#bytes += bytes.length;
    return true;
  }

  /** Takes everything pending as one buffer (one write per wake-up), or undefined if empty. */
  take(): Uint8Array | undefined {
    const first = this.#first;
    if (first === undefined) return undefined;
    let out = first;
    const more = this.#more;
    if (more.length > 0) {
      out = new Uint8Array(this.#bytes);
      out.set(first);
      let offset = first.length;
      for (const chunk of more) {
        out.set(chunk, offset);
        offset += chunk.length;
      }
      more.length = 0;
    }
    this.#first = undefined;
    this.#bytes = 0;
    return out;
  }
}
