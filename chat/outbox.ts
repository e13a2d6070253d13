/**
 * The bytes owed to one chat client, waiting to be written. Bounded: a push that would take
 * the pending total past `maxBytes` is refused, and the shell then disconnects that client,
 * so one client that stops reading costs at most `maxBytes` and delays nobody else.
 */
export class Outbox {
  readonly #maxBytes: number;
  #chunks: Uint8Array[] = [];
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
    this.#chunks.push(bytes);
    this.#bytes += bytes.length;
    return true;
  }

  /** Takes everything pending as one buffer (one write per wake-up), or undefined if empty. */
  take(): Uint8Array | undefined {
    if (this.#bytes === 0) return undefined;
    const chunks = this.#chunks;
    let out: Uint8Array;
    if (chunks.length === 1) {
      out = chunks[0];
    } else {
      out = new Uint8Array(this.#bytes);
      let offset = 0;
      for (const chunk of chunks) {
        out.set(chunk, offset);
        offset += chunk.length;
      }
    }
    this.#chunks = [];
    this.#bytes = 0;
    return out;
  }
}
