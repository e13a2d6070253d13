/**
 * Relay buffers sized to the traffic, as Netty's adaptive receive buffer: every direction
 * owns one small buffer, which is all an idle or chatty connection holds while it waits for
 * data; a read that fills it switches the direction to a large buffer taken from a shared
 * pool, and a read that does not fill the large one gives it back (the socket was drained, so
 * the next read may wait for a long time). HAProxy does the same: an idle connection owns no
 * large buffer at all.
 *
 * @module
 */

/** Bytes of the buffer every relay direction owns, and waits on while idle. */
export const RELAY_BUFFER_MIN = 1024;

/** Bytes of the pooled buffers that bulk flows read into. */
export const RELAY_BUFFER_MAX = 64 * 1024;

/** Large buffers kept for reuse; past this many, returned ones are left to the collector. */
const POOL_MAX = 64;

const pool: Uint8Array<ArrayBuffer>[] = [];

/** A large buffer ({@linkcode RELAY_BUFFER_MAX} bytes), from the pool when it has one. */
export function takeLargeBuffer(): Uint8Array<ArrayBuffer> {
  return pool.pop() ?? new Uint8Array(RELAY_BUFFER_MAX);
}

/** Returns `buf`, taken with {@linkcode takeLargeBuffer} and no longer in use, to the pool. */
export function giveLargeBuffer(buf: Uint8Array<ArrayBuffer>): void {
  if (pool.length < POOL_MAX) pool.push(buf);
}
