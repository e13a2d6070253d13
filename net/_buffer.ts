/**
 * Relay buffers sized to the traffic, as Netty's adaptive receive buffer: every direction
 * owns one small buffer, which is all an idle or chatty connection holds while it waits for
 * data. A read that fills it switches the direction to a large buffer taken from a shared
 * pool; reads that fill that one step up a size class, reads that use under a quarter of it
 * step down. A read that does not fill the large buffer gives it back at once (the socket was
 * drained, so the next read may wait for a long time) and the next read goes into the small
 * buffer again, remembering the class for when it fills. HAProxy does the same: an idle
 * connection owns no large buffer at all.
 *
 * @module
 */

/** Bytes of the buffer every relay direction owns, and waits on while idle. */
export const RELAY_BUFFER_MIN = 1024;

/** Sizes (bytes) of the pooled buffers bulk flows read into, smallest first. */
export const RELAY_BUFFER_CLASSES: readonly number[] = [64 * 1024, 256 * 1024, 1024 * 1024];

/** Bytes of the largest pooled buffer. */
export const RELAY_BUFFER_MAX = RELAY_BUFFER_CLASSES[RELAY_BUFFER_CLASSES.length - 1];

/** Buffers kept for reuse per class; past this many, returned ones are left to the collector. */
const POOL_MAX = [32, 8, 4];

const pools: Uint8Array<ArrayBuffer>[][] = RELAY_BUFFER_CLASSES.map(() => []);

/** A buffer of size class `level` (index into {@linkcode RELAY_BUFFER_CLASSES}). */
export function takeLargeBuffer(level: number): Uint8Array<ArrayBuffer> {
  return pools[level].pop() ?? new Uint8Array(RELAY_BUFFER_CLASSES[level]);
}

/** Returns `buf`, taken with {@linkcode takeLargeBuffer} and no longer in use, to its pool. */
export function giveLargeBuffer(buf: Uint8Array<ArrayBuffer>, level: number): void {
  if (pools[level].length < POOL_MAX[level]) pools[level].push(buf);
}
