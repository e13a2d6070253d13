/**
 * What chat servers of one cluster tell each other through Redis pub/sub: one chat line per
 * message, tagged with the id of the server that read it and that server's sequence number.
 *
 * The wire form is a header line and the chat line's bytes, undecoded (invalid UTF-8 passes
 * through): `l4chat/1 <serverId> <seq>\n<line>\n`.
 */

/** A chat line as one server published it. */
export interface ClusterMessage {
  /** The publishing server's id: letters, digits, `-` and `_`, at most 64 characters. */
  serverId: string;
  /** 1 for the first line the server published, then one more for each line. */
  seq: number;
  /** The line as clients receive it, ending in `\n` and holding no other `\n`. */
  line: Uint8Array;
}

const MAGIC = "l4chat/1";
const LF = 0x0a;
const SERVER_ID = /^[A-Za-z0-9_-]{1,64}$/;
const SEQ = /^[1-9]\d{0,15}$/;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** True when `id` can tag a {@linkcode ClusterMessage}. */
export function isServerId(id: string): boolean {
  return SERVER_ID.test(id);
}

/** Encodes `message` for publishing. Throws RangeError for an id or line it cannot carry. */
export function encodeClusterMessage(message: ClusterMessage): Uint8Array {
  const { serverId, seq, line } = message;
  if (!isServerId(serverId)) throw new RangeError(`Cannot use server id "${serverId}"`);
  if (!Number.isSafeInteger(seq) || seq < 1) throw new RangeError(`Cannot use seq ${seq}`);
  if (line.length === 0 || line.indexOf(LF) !== line.length - 1) {
    throw new RangeError("Cannot publish a line that does not end in its only \\n");
  }
  const header = encoder.encode(`${MAGIC} ${serverId} ${seq}\n`);
  const bytes = new Uint8Array(header.length + line.length);
  bytes.set(header);
  bytes.set(line, header.length);
  return bytes;
}

/**
 * Decodes a published message. Returns undefined for anything that is not a well-formed
 * {@linkcode ClusterMessage} (another program on the channel, a newer version): the caller
 * drops it. The returned line is a view into `bytes`.
 */
export function decodeClusterMessage(bytes: Uint8Array): ClusterMessage | undefined {
  const headerEnd = bytes.indexOf(LF);
  if (headerEnd === -1 || headerEnd > 128) return undefined;
  const parts = decoder.decode(bytes.subarray(0, headerEnd)).split(" ");
  if (parts.length !== 3 || parts[0] !== MAGIC) return undefined;
  const [, serverId, seqText] = parts;
  if (!isServerId(serverId) || !SEQ.test(seqText)) return undefined;
  const seq = Number(seqText);
  if (!Number.isSafeInteger(seq)) return undefined;
  const line = bytes.subarray(headerEnd + 1);
  if (line.length === 0 || line.indexOf(LF) !== line.length - 1) return undefined;
  return { serverId, seq, line };
}

/** What {@linkcode OriginFilter.accept} decided about one message. */
export type Verdict =
  /** Deliver it. `missed` counts lines of that server never seen before it (0 normally). */
  | { deliver: true; missed: number }
  /** Drop it: this server published it (it was delivered locally already) or saw it before. */
  | { deliver: false; reason: "own" | "duplicate" };

/**
 * Decides which published messages a server delivers to its clients: not its own (they
 * were delivered when read), and each other server's lines once, in order. Remembers the
 * last sequence number of at most `maxOrigins` servers (the least recently heard from is
 * forgotten first), so memory stays bounded however often servers restart.
 */
export class OriginFilter {
  readonly #selfId: string;
  readonly #maxOrigins: number;
  #last = new Map<string, number>();

  constructor(selfId: string, maxOrigins = 1024) {
    this.#selfId = selfId;
    this.#maxOrigins = maxOrigins;
  }

  /** Servers remembered now. */
  get origins(): number {
    return this.#last.size;
  }

  /** Judges `message`, and remembers it when it is to be delivered. */
  accept(message: { serverId: string; seq: number }): Verdict {
    const { serverId, seq } = message;
    if (serverId === this.#selfId) return { deliver: false, reason: "own" };
    const last = this.#last.get(serverId);
    if (last !== undefined && seq <= last) return { deliver: false, reason: "duplicate" };
    // Re-insert so that the map's order is least recently heard from first.
    this.#last.delete(serverId);
    this.#last.set(serverId, seq);
    if (this.#last.size > this.#maxOrigins) {
      this.#last.delete(this.#last.keys().next().value!);
    }
    return { deliver: true, missed: last === undefined ? 0 : seq - last - 1 };
  }
}
