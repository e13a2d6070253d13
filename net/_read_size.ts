/**
 * How much a bulk flow of the epoll engine reads at once: about what its destination's send
 * buffer takes, and little once the destination's peer has stopped reading, so that what the
 * kernel refuses of the last read, which the relay must then hold in a copy, is small.
 *
 * @module
 */

/** What a bulk flow reads at least, however full its destination looks. */
export const MIN_READ = 16 * 1024;
/**
 * How long a destination sends nothing on before the reads for it are all {@linkcode MIN_READ}:
 * longer than a busy machine keeps a reader that keeps up off the CPU (at 2 ms, 10% to 18% of
 * the reads of one iperf3 stream through the proxy fell to the minimum on the benchmark
 * machine, whose three processes share two cores).
 */
export const STALL_MS = 50;

/** What a bulk flow remembers of its destination from one read to the next. */
export interface DestinationLook {
  /** Bytes the flow had given the destination at the last look. */
  givenSeen: number;
  /** Bytes the destination held unsent then. */
  unsentSeen: number;
  /** When the destination last sent on some of what it was given. */
  movedAtMs: number;
}

/**
 * What a destination's send buffer of `sendBuffer` bytes has room for while it holds `unsent`
 * bytes unsent: those count twice, as the kernel counts its bookkeeping per packet against the
 * buffer too (about as much again as the bytes, on loopback).
 */
export function sendRoom(sendBuffer: number, unsent: number): number {
  return sendBuffer - 2 * unsent;
}

/**
 * What a bulk flow reads next, up to `max`, and {@linkcode MIN_READ} at least, to move on:
 * {@linkcode sendRoom} of `sendBuffer` (the destination's `SO_SNDBUF`) and what it holds
 * `unsent`; and only the minimum once it has sent nothing on for {@linkcode STALL_MS}. `given`
 * is every byte the flow has given it so far. A destination whose peer keeps up, even one that
 * holds a lot unsent because its peer is the slower side, gets full reads; one whose peer has
 * stopped reading holds on to all it is given, and its reads are small before its buffer fills.
 * Updates `look`.
 */
export function bulkReadSize(
  look: DestinationLook,
  given: number,
  unsent: number,
  sendBuffer: number,
  nowMs: number,
  max: number,
): number {
  if (unsent === 0 || given - look.givenSeen + look.unsentSeen > unsent) look.movedAtMs = nowMs;
  look.givenSeen = given;
  look.unsentSeen = unsent;
  if (nowMs - look.movedAtMs >= STALL_MS) return MIN_READ;
  return Math.min(max, Math.max(sendRoom(sendBuffer, unsent), MIN_READ));
}
