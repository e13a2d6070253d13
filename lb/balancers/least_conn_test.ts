import assert from "node:assert/strict";
import { fakeBackends, fakeConn, testBalancer } from "./_contract.ts";
import { LeastConn } from "./least_conn.ts";

testBalancer("LeastConn", () => new LeastConn());

Deno.test("LeastConn.pick() picks the backend with the fewest connections", () => {
  const backends = fakeBackends([1, 1, 1]);
  [3, 1, 2].forEach((active, i) => backends[i].active = active);
  assert.equal(new LeastConn().pick(fakeConn(1), backends)?.id, 2);
});

Deno.test("LeastConn.pick() weighs connections by the backend's weight", () => {
  const backends = fakeBackends([1, 3]);
  backends[0].active = 1; // 1 per unit of weight
  backends[1].active = 2; // 2/3 per unit of weight
  assert.equal(new LeastConn().pick(fakeConn(1), backends)?.id, 2);
  backends[1].active = 3; // a tie: rotation, starting after the last pick
  const balancer = new LeastConn();
  assert.deepEqual([1, 2, 3, 4].map((i) => balancer.pick(fakeConn(i), backends)?.id), [
    1,
    2,
    1,
    2,
  ]);
});

Deno.test("LeastConn.pick() rotates among idle backends instead of always taking the first", () => {
  const balancer = new LeastConn();
  const backends = fakeBackends([1, 1, 1]);
  const ids = Array.from({ length: 7 }, (_, i) => balancer.pick(fakeConn(i), backends)?.id);
  assert.deepEqual(ids, [1, 2, 3, 1, 2, 3, 1]);
});

Deno.test("LeastConn.pick() fills backends in proportion to their weights", () => {
  const balancer = new LeastConn();
  const backends = fakeBackends([1, 2, 3]);
  for (let i = 0; i < 600; i++) {
    const picked = balancer.pick(fakeConn(i), backends)!;
    picked.active++;
  }
  assert.deepEqual(backends.map((backend) => backend.active), [100, 200, 300]);
  // Closing some on one backend sends the next clients there.
  backends[2].active -= 30;
  for (let i = 0; i < 30; i++) {
    const picked = balancer.pick(fakeConn(i), backends)!;
    assert.equal(picked.id, 3);
    picked.active++;
  }
});

Deno.test("LeastConn.pick() counts connects still in flight as load", () => {
  const [a, b] = fakeBackends([1, 1]);
  a.connecting = 2;
  b.active = 1;
  const balancer = new LeastConn();
  assert.equal(balancer.pick(fakeConn(1), [a, b]), b);
});
