/**
 * The contract every balancer keeps, as tests that each balancer's test file runs first
 * (cf. hono's `common.case.test.ts`), and the fake backends and connections they use.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type Backend, createBackend } from "../backend.ts";
import type { Balancer, ConnInfo } from "../balancer.ts";

/**
 * A backend as `BackendPool` would make it: `127.0.0.1:<10000 + id>` unless `hostname` or
 * `port` say otherwise; alive, ready, idle.
 */
export function fakeBackend(
  id: number,
  options?: { weight?: number; hostname?: string; port?: number },
): Backend {
  const addr = { hostname: options?.hostname ?? "127.0.0.1", port: options?.port ?? 10000 + id };
  return createBackend(id, { addr, weight: options?.weight });
}

/** Backends with ids 1..`weights.length` and those weights. */
export function fakeBackends(weights: readonly number[]): Backend[] {
  return weights.map((weight, index) => fakeBackend(index + 1, { weight }));
}

/** The `index`th of a family of distinct client IPv4 addresses (10.x.y.z). */
export function clientIp(index: number): string {
  return `10.${(index >>> 16) & 0xff}.${(index >>> 8) & 0xff}.${index & 0xff}`;
}

/** A new client connection from `hostname` (port 40000 unless given). */
export function fakeConn(id: number, hostname = clientIp(id), port = 40000): ConnInfo {
  return { id, remote: { hostname, port } };
}

/** Counts `picks` picks by backend id, with a fresh client address for each. */
export function countPicks(
  balancer: Balancer,
  backends: readonly Backend[],
  picks: number,
): Map<number, number> {
  const counts = new Map<number, number>();
  for (let i = 0; i < picks; i++) {
    const picked = balancer.pick(fakeConn(i), backends);
    assert.ok(picked !== undefined);
    counts.set(picked.id, (counts.get(picked.id) ?? 0) + 1);
  }
  return counts;
}

/** Picks like the proxy does: pick, then `onOpen` with the pool's count raised first. */
function openOn(balancer: Balancer, backend: Backend): void {
  backend.active++;
  backend.total++;
  balancer.onOpen?.(backend);
}

/** Closes like the proxy does: the pool's count lowered, then `onClose`. */
function closeOn(balancer: Balancer, backend: Backend): void {
  backend.active--;
  balancer.onClose?.(backend);
}

/**
 * Registers the tests of the {@linkcode Balancer} contract for the balancer `name` (such as
 * `"Maglev"`), each on a fresh balancer from `create`: undefined for no candidates, only ever
 * one of the candidates, no throw on odd input, one backend, a changing candidate list, and
 * `onOpen`/`onClose` pairs.
 */
export function testBalancer(name: string, create: () => Balancer): void {
  Deno.test(`${name}.pick() returns undefined when there is no candidate`, () => {
    const balancer = create();
    assert.equal(balancer.pick(fakeConn(1), []), undefined);
    assert.ok(balancer.pick(fakeConn(2), fakeBackends([1, 1])) !== undefined);
    assert.equal(balancer.pick(fakeConn(3), []), undefined);
  });

  Deno.test(`${name}.pick() returns only one of the candidates`, () => {
    const balancer = create();
    const all = fakeBackends([1, 2, 3, 1, 5]);
    for (let i = 0; i < 500; i++) {
      // Every subset in turn, including the full set, as health and retries shape it.
      const subset = all.filter((_, index) => ((i % 31) + 1) & (1 << index));
      const picked = balancer.pick(fakeConn(i), subset);
      assert.ok(picked !== undefined && subset.includes(picked), `pick ${i}`);
    }
  });

  Deno.test(`${name}.pick() works with a single backend`, () => {
    const balancer = create();
    const only = fakeBackends([3]);
    for (let i = 0; i < 50; i++) {
      if (i % 5 === 0) openOn(balancer, only[0]);
      assert.equal(balancer.pick(fakeConn(i), only), only[0]);
    }
  });

  Deno.test(`${name}.pick() never throws on unusual input`, () => {
    const balancer = create();
    const odd = [
      fakeBackend(7, { hostname: "::1", port: 1, weight: 1000 }),
      fakeBackend(3, { hostname: "backend.example", port: 65535, weight: 1 }),
      fakeBackend(9, { hostname: "127.0.0.1", port: 1, weight: 1 }),
    ];
    odd[1].active = 1_000_000;
    const conns: ConnInfo[] = [
      fakeConn(1, "::ffff:192.0.2.1"),
      fakeConn(2, "2001:db8::1", 0),
      fakeConn(3, ""),
      fakeConn(4, "한국.example"),
    ];
    for (const conn of conns) {
      const picked = balancer.pick(conn, odd);
      assert.ok(picked !== undefined && odd.includes(picked));
    }
  });

  Deno.test(`${name}.pick() copes with backends leaving, returning and being replaced`, () => {
    const balancer = create();
    const [a, b, c] = fakeBackends([1, 2, 1]);
    const sets: Backend[][] = [[a, b, c], [a, c], [c], [a, b, c], [b], [], [a, b, c]];
    for (const set of sets) {
      for (let i = 0; i < 20; i++) {
        const picked = balancer.pick(fakeConn(i), set);
        if (set.length === 0) assert.equal(picked, undefined);
        else assert.ok(picked !== undefined && set.includes(picked));
      }
    }
    // New objects with the same ids (a reload) and a changed weight.
    const replaced = fakeBackends([4, 1, 1]);
    for (let i = 0; i < 20; i++) {
      const picked = balancer.pick(fakeConn(i), replaced);
      assert.ok(picked !== undefined && replaced.includes(picked));
    }
  });

  Deno.test(`${name}.onOpen() and onClose() pair up without disturbing pick()`, () => {
    const balancer = create();
    const backends = fakeBackends([1, 2, 3]);
    const open: Backend[] = [];
    for (let i = 0; i < 300; i++) {
      const picked = balancer.pick(fakeConn(i), backends);
      assert.ok(picked !== undefined && backends.includes(picked));
      openOn(balancer, picked);
      open.push(picked);
      if (i % 3 === 2) closeOn(balancer, open.shift()!);
    }
    // Close the rest, some after their backend has left the candidates.
    const remaining = backends.slice(1);
    for (const backend of open.splice(0)) closeOn(balancer, backend);
    assert.deepEqual(backends.map((backend) => backend.active), [0, 0, 0]);
    const picked = balancer.pick(fakeConn(1), remaining);
    assert.ok(picked !== undefined && remaining.includes(picked));
  });
}

/** A deterministic stand-in for `Math.random` (mulberry32), for reproducible tests. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** How many client IPs {@linkcode assignments} asks about. */
export const CLIENTS = 20_000;

/** The backend id `balancer` picks for each of {@linkcode CLIENTS} client IPs. */
export function assignments(balancer: Balancer, backends: readonly Backend[]): number[] {
  return Array.from({ length: CLIENTS }, (_, i) => balancer.pick(fakeConn(i), backends)!.id);
}

/**
 * Registers what every balancer that hashes the client IP must do, for `name`: give an IP the
 * same backend in two fresh instances (nothing seeded per process), and ignore the client's
 * port and the backends' order and ids (only their addresses count).
 */
export function testHashBalancer(name: string, create: () => Balancer): void {
  Deno.test(`${name}.pick() gives an IP the same backend in two fresh instances`, () => {
    const backends = fakeBackends([1, 1, 2, 1, 1]);
    assert.deepEqual(assignments(create(), backends), assignments(create(), backends));
  });

  Deno.test(`${name}.pick() ignores the client port and the backends' order and ids`, () => {
    const balancer = create();
    const backends = fakeBackends([1, 2, 1]);
    // The same addresses listed backwards under other ids.
    const reordered = backends.toReversed().map((backend, i) =>
      fakeBackend(10 + i, { ...backend.addr, weight: backend.weight })
    );
    for (let i = 0; i < 500; i++) {
      const picked = balancer.pick(fakeConn(i, clientIp(i), 40000), backends)!;
      assert.equal(balancer.pick(fakeConn(i, clientIp(i), 51234), backends), picked);
      assert.deepEqual(balancer.pick(fakeConn(i), reordered)!.addr, picked.addr);
    }
  });
}
