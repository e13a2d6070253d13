import assert from "node:assert/strict";
import { countPicks, fakeBackends, fakeConn, testBalancer } from "./_contract.ts";
import { WeightedRoundRobin } from "./weighted_round_robin.ts";

testBalancer("WeightedRoundRobin", () => new WeightedRoundRobin());

Deno.test("WeightedRoundRobin.pick() gives weights 5, 1, 1 nginx's a a b a c a a", () => {
  const balancer = new WeightedRoundRobin();
  const backends = fakeBackends([5, 1, 1]);
  const names = " abc";
  const sequence = Array.from(
    { length: 14 },
    (_, i) => names[balancer.pick(fakeConn(i), backends)!.id],
  ).join(" ");
  assert.equal(sequence, "a a b a c a a a a b a c a a");
});

Deno.test("WeightedRoundRobin.pick() gives each backend exactly its weight per round", () => {
  const counts = countPicks(new WeightedRoundRobin(), fakeBackends([1, 2, 3, 4]), 1000);
  assert.deepEqual([1, 2, 3, 4].map((id) => counts.get(id)), [100, 200, 300, 400]);
});

Deno.test("WeightedRoundRobin.pick() never picks one backend twice in a row with weights 2, 2, 1", () => {
  const balancer = new WeightedRoundRobin();
  const backends = fakeBackends([2, 2, 1]);
  let last = 0;
  for (let i = 0; i < 100; i++) {
    const id = balancer.pick(fakeConn(i), backends)!.id;
    assert.notEqual(id, last, `pick ${i}`);
    last = id;
  }
});

Deno.test("WeightedRoundRobin.pick() keeps the weights after a backend leaves and returns", () => {
  const balancer = new WeightedRoundRobin();
  const [a, b, c] = fakeBackends([2, 1, 1]);
  countPicks(balancer, [a, b, c], 5);
  const without = countPicks(balancer, [a, b], 301);
  assert.equal(without.get(3), undefined);
  assert.ok(Math.abs(without.get(1)! - 2 * without.get(2)!) <= 2);
  // Back: within one round of the ideal 200, 100, 100 over 400 picks.
  const back = countPicks(balancer, [a, b, c], 400);
  for (const [id, ideal] of [[1, 200], [2, 100], [3, 100]]) {
    assert.ok(Math.abs(back.get(id)! - ideal) <= 4, `backend ${id}: ${back.get(id)}`);
  }
});
