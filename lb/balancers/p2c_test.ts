import assert from "node:assert/strict";
import { countPicks, fakeBackends, fakeConn, seededRandom, testBalancer } from "./_contract.ts";
import { PowerOfTwoChoices } from "./p2c.ts";

testBalancer("PowerOfTwoChoices", () => new PowerOfTwoChoices({ random: seededRandom(1) }));

/** A random source that returns `values` in turn, then fails the test. */
function fixed(values: number[]): () => number {
  return () => {
    assert.ok(values.length > 0, "random called more often than expected");
    return values.shift()!;
  };
}

Deno.test("PowerOfTwoChoices.pick() takes the less loaded of the two it draws", () => {
  const backends = fakeBackends([1, 1, 1]);
  [5, 9, 2].forEach((active, i) => backends[i].active = active);
  // 0.0 draws backend 1; then, among 2 and 3, 0.0 draws backend 2: 5 < 9, so 1.
  assert.equal(new PowerOfTwoChoices({ random: fixed([0, 0]) }).pick(fakeConn(1), backends)?.id, 1);
  // 0.5 draws backend 2; then, among 1 and 3, 0.9 draws backend 3: 2 < 9, so 3.
  assert.equal(
    new PowerOfTwoChoices({ random: fixed([0.5, 0.9]) }).pick(fakeConn(1), backends)?.id,
    3,
  );
});

Deno.test("PowerOfTwoChoices.pick() never draws the same backend twice", () => {
  const backends = fakeBackends([1, 1]);
  backends[0].active = 4;
  // Both draws at 0.0: the first is backend 1, the second can only be backend 2.
  assert.equal(new PowerOfTwoChoices({ random: fixed([0, 0]) }).pick(fakeConn(1), backends)?.id, 2);
});

Deno.test("PowerOfTwoChoices.pick() keeps the first drawn on a tie and weighs by weight", () => {
  const backends = fakeBackends([1, 3]);
  // Weights 1 and 3: 0.3 * 4 = 1.2 falls in backend 2's part; both idle, so backend 2.
  assert.equal(
    new PowerOfTwoChoices({ random: fixed([0.3, 0]) }).pick(fakeConn(1), backends)?.id,
    2,
  );
  // 3 connections on weight 3 is as loaded as 1 on weight 1: the first drawn wins.
  backends[0].active = 1;
  backends[1].active = 3;
  assert.equal(
    new PowerOfTwoChoices({ random: fixed([0.1, 0]) }).pick(fakeConn(1), backends)?.id,
    1,
  );
  // 4 on weight 3 is more loaded than 1 on weight 1.
  backends[1].active = 4;
  assert.equal(
    new PowerOfTwoChoices({ random: fixed([0.9, 0]) }).pick(fakeConn(1), backends)?.id,
    1,
  );
});

Deno.test("PowerOfTwoChoices.pick() copes with a random source that returns 1 or NaN", () => {
  const backends = fakeBackends([1, 1, 1]);
  for (const values of [[1, 1], [NaN, NaN], [-1, 2]]) {
    const picked = new PowerOfTwoChoices({ random: fixed(values) }).pick(fakeConn(1), backends);
    assert.ok(picked !== undefined && backends.includes(picked));
  }
});

Deno.test("PowerOfTwoChoices.pick() spreads idle picks by weight within 2 points", () => {
  const picks = 12_000;
  const counts = countPicks(
    new PowerOfTwoChoices({ random: seededRandom(42) }),
    fakeBackends([1, 2, 3]),
    picks,
  );
  for (const [id, share] of [[1, 1 / 6], [2, 2 / 6], [3, 3 / 6]]) {
    assert.ok(Math.abs(counts.get(id)! / picks - share) < 0.02, `backend ${id}: ${counts.get(id)}`);
  }
});

Deno.test("PowerOfTwoChoices.pick() keeps open connections in proportion to weights", () => {
  const balancer = new PowerOfTwoChoices({ random: seededRandom(7) });
  const backends = fakeBackends([1, 2, 3]);
  for (let i = 0; i < 3000; i++) {
    const picked = balancer.pick(fakeConn(i), backends)!;
    picked.active++;
  }
  // Ideal 500, 1000, 1500; two choices keep every backend within 2% of its share.
  for (const [index, ideal] of [[0, 500], [1, 1000], [2, 1500]]) {
    const active = backends[index].active;
    assert.ok(Math.abs(active - ideal) <= ideal * 0.02, `backend ${index + 1}: ${active}`);
  }
});
