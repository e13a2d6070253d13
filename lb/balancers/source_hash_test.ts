import assert from "node:assert/strict";
import {
  assignments,
  clientIp,
  CLIENTS,
  fakeBackend,
  fakeBackends,
  fakeConn,
  testBalancer,
  testHashBalancer,
} from "./_contract.ts";
import { SourceHash, sourceHashMovedShare } from "./source_hash.ts";

testBalancer("SourceHash", () => new SourceHash());
testHashBalancer("SourceHash", () => new SourceHash());

Deno.test("SourceHash.pick() treats an IPv4-mapped IPv6 client as its IPv4 address", () => {
  const balancer = new SourceHash();
  const backends = fakeBackends([1, 1, 1, 1]);
  for (let i = 0; i < 200; i++) {
    assert.equal(
      balancer.pick(fakeConn(i, `::ffff:${clientIp(i)}`), backends),
      balancer.pick(fakeConn(i), backends),
    );
  }
});

Deno.test("SourceHash.pick() moves only the removed backend's clients", () => {
  const balancer = new SourceHash();
  const backends = fakeBackends([1, 1, 1, 1, 1]);
  const before = assignments(balancer, backends);
  const after = assignments(balancer, backends.filter((backend) => backend.id !== 3));
  for (let i = 0; i < CLIENTS; i++) {
    if (before[i] === 3) assert.notEqual(after[i], 3);
    else assert.equal(after[i], before[i], `client ${clientIp(i)}`);
  }
  // And back: every client returns to where it was.
  assert.deepEqual(assignments(balancer, backends), before);
});

Deno.test("SourceHash.pick() moves only the clients a new backend wins", () => {
  const balancer = new SourceHash();
  const backends = fakeBackends([1, 1, 1, 1]);
  const before = assignments(balancer, backends);
  const after = assignments(balancer, [...backends, fakeBackend(5)]);
  for (let i = 0; i < CLIENTS; i++) {
    if (after[i] !== 5) assert.equal(after[i], before[i]);
  }
});

Deno.test("SourceHash.pick() shares client IPs by weight within 1 point", () => {
  const counts = new Map<number, number>();
  for (const id of assignments(new SourceHash(), fakeBackends([1, 2, 3, 4]))) {
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  for (const id of [1, 2, 3, 4]) {
    const share = counts.get(id)! / CLIENTS;
    assert.ok(Math.abs(share - id / 10) < 0.01, `backend ${id}: ${share}`);
  }
});

Deno.test("sourceHashMovedShare() matches the share of clients that really move", () => {
  const balancer = new SourceHash();
  const backends = fakeBackends([1, 1, 2, 4]);
  const before = assignments(balancer, backends);
  const cases: [number, number][] = [[2, 0], [4, 0], [1, 3], [4, 1]];
  for (const [id, newWeight] of cases) {
    const changed = backends
      .map((backend) => backend.id === id ? fakeBackend(id, { weight: newWeight }) : backend)
      .filter((backend) => backend.weight > 0);
    const after = assignments(balancer, changed);
    const moved = before.filter((picked, i) => after[i] !== picked).length / CLIENTS;
    const estimate = sourceHashMovedShare(backends, id, newWeight);
    assert.ok(Math.abs(moved - estimate) < 0.01, `${id} -> ${newWeight}: ${moved} vs ${estimate}`);
  }
  assert.equal(sourceHashMovedShare(backends, 2, 0), 1 / 8);
  assert.equal(sourceHashMovedShare(backends, 99, 0), 0);
  assert.equal(sourceHashMovedShare(fakeBackends([3]), 1, 0), 1);
});
