import type { Addr } from "../../net/mod.ts";
import { formatAddr } from "../../net/mod.ts";

const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * A stable 32-bit hash of `text`: FNV-1a over its UTF-16 code units (low byte, then high byte
 * when it is not zero), with `seed` mixed into the offset basis, finished by MurmurHash3's
 * `fmix32` so that nearby inputs (`127.0.0.1`, `127.0.0.2`) land far apart.
 *
 * The same `text` and `seed` give the same result in every process, runtime and version of
 * l4chat: nothing is seeded per process. Returns an unsigned integer in `0..2**32-1`.
 */
export function hash32(text: string, seed = 0): number {
  let h = (FNV_OFFSET_BASIS ^ Math.imul(seed, 0x9e3779b1)) >>> 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    h = Math.imul(h ^ (unit & 0xff), FNV_PRIME);
    if (unit > 0xff) h = Math.imul(h ^ (unit >>> 8), FNV_PRIME);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The part of a client address that the hashing balancers use: the IP only (not the port),
 * with an IPv4-mapped IPv6 address (`::ffff:192.0.2.7`) written as plain IPv4 so a dual-stack
 * listener and an IPv4 one agree.
 */
export function clientKey(remote: Addr): string {
  const host = remote.hostname.toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(host);
  return mapped === null ? host : mapped[1];
}

/**
 * The identity of a backend for the hashing balancers: its address as `host:port`
 * (`[v6]:port`). Not its id, which depends on the order backends were configured in.
 */
export function backendKey(addr: Addr): string {
  return formatAddr(addr);
}
