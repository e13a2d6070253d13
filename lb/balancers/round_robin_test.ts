import assert from "node:assert/strict";
import { BackendPool } from "../backend.ts";
import type { Balancer, ConnInfo } from "../balancer.ts";
import { fakeBackends, fakeConn, testBalancer } from "./_contract.ts";
import { RoundRobin } from "./round_robin.ts";

testBalancer("RoundRobin", () => new RoundRobin());

Deno.test("RoundRobin.pick() skips a missing backend without disturbing the rotation", () => {
  const balancer = new RoundRobin();
  const [a, b, c] = fakeBackends([1, 1, 1]);
  const picks = [[a, b, c], [a, b, c], [a, c], [a, b, c], [a, b, c]].map((set, i) =>
    balancer.pick(fakeConn(i), set)?.id
  );
  assert.deepEqual(picks, [1, 2, 3, 1, 2]);
});

const CONN: ConnInfo = { id: 1, remote: { hostname: "127.0.0.1", port: 40000 } };

function pool(count: number): BackendPool {
  return new BackendPool(
    Array.from({ length: count }, (_, i) => ({ addr: { hostname: "127.0.0.1", port: 10010 + i } })),
  );
}

/** Picks `count` times among the live candidates of `backends`; returns the ids picked. */
function picks(balancer: Balancer, backends: BackendPool, count: number): (number | undefined)[] {
  return Array.from({ length: count }, () => balancer.pick(CONN, backends.candidates())?.id);
}

Deno.test("RoundRobin.pick() gives the backends in configuration order and wraps", () => {
  const backends = pool(3);
  assert.deepEqual(picks(new RoundRobin(), backends, 7), [1, 2, 3, 1, 2, 3, 1]);
});

Deno.test("RoundRobin.pick() returns undefined when there is no candidate", () => {
  const balancer = new RoundRobin();
  assert.equal(balancer.pick(CONN, []), undefined);
  const backends = pool(2);
  for (const backend of backends.all()) backends.setAlive(backend, false);
  assert.deepEqual(picks(balancer, backends, 2), [undefined, undefined]);
});

Deno.test("RoundRobin.pick() skips a dead backend without disturbing the rotation", () => {
  const balancer = new RoundRobin();
  const backends = pool(3);
  assert.deepEqual(picks(balancer, backends, 1), [1]);
  backends.setAlive(backends.get(2)!, false);
  // The live ones keep their order: 3 after 1, then 1 again.
  assert.deepEqual(picks(balancer, backends, 4), [3, 1, 3, 1]);
});

Deno.test("RoundRobin.pick() takes a backend back in its place once it is alive again", () => {
  const balancer = new RoundRobin();
  const backends = pool(3);
  backends.setAlive(backends.get(2)!, false);
  assert.deepEqual(picks(balancer, backends, 3), [1, 3, 1]);
  backends.setAlive(backends.get(2)!, true);
  assert.deepEqual(picks(balancer, backends, 4), [2, 3, 1, 2]);
});

Deno.test("RoundRobin.pick() continues after the last picked when that one dies", () => {
  const balancer = new RoundRobin();
  const backends = pool(4);
  assert.deepEqual(picks(balancer, backends, 2), [1, 2]);
  backends.setAlive(backends.get(2)!, false);
  backends.setAlive(backends.get(3)!, false);
  assert.deepEqual(picks(balancer, backends, 3), [4, 1, 4]);
  backends.setAlive(backends.get(3)!, true);
  assert.deepEqual(picks(balancer, backends, 3), [1, 3, 4]);
});

Deno.test("RoundRobin.pick() with one live backend always gives it, then resumes the rotation", () => {
  const balancer = new RoundRobin();
  const backends = pool(3);
  backends.setAlive(backends.get(1)!, false);
  backends.setAlive(backends.get(3)!, false);
  assert.deepEqual(picks(balancer, backends, 3), [2, 2, 2]);
  backends.setAlive(backends.get(1)!, true);
  backends.setAlive(backends.get(3)!, true);
  assert.deepEqual(picks(balancer, backends, 4), [3, 1, 2, 3]);
});

Deno.test("RoundRobin.pick() retries of one connection (tried backends excluded) move on", () => {
  // The proxy passes candidates(tried) after a failed connect: the next try is the next one.
  const balancer = new RoundRobin();
  const backends = pool(3);
  const tried = new Set<number>();
  const first = balancer.pick(CONN, backends.candidates({ exclude: tried }))!;
  tried.add(first.id);
  const second = balancer.pick(CONN, backends.candidates({ exclude: tried }))!;
  tried.add(second.id);
  const third = balancer.pick(CONN, backends.candidates({ exclude: tried }))!;
  tried.add(third.id);
  assert.deepEqual([first.id, second.id, third.id], [1, 2, 3]);
  assert.equal(balancer.pick(CONN, backends.candidates({ exclude: tried })), undefined);
  // The next connection starts after the last one tried.
  assert.deepEqual(picks(balancer, backends, 2), [1, 2]);
});
