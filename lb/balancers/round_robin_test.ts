import assert from "node:assert/strict";
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
