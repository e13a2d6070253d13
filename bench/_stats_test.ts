import assert from "node:assert/strict";
import { median, quantile, signTest, spread } from "./_stats.ts";

Deno.test("median, spread and quantile of a few values", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
  assert.equal(spread([9, 10, 11]), 0.2);
  assert.equal(spread([5]), 0);
  assert.equal(quantile([5, 1, 4, 2, 3], 0.99), 5);
  assert.equal(quantile([5, 1, 4, 2, 3], 0.5), 3);
});

Deno.test("signTest: the binomial tail at one half", () => {
  // Every one of 15 rounds: 1 / 2^15.
  assert.equal(signTest(15, 15), 1 / 32768);
  // 12 of 15: (C(15,12) + C(15,13) + C(15,14) + 1) / 2^15 = 576 / 32768.
  assert.equal(signTest(12, 15), 576 / 32768);
  // Half or fewer is no evidence at all.
  assert.equal(signTest(8, 15), 0.5);
  assert.ok(signTest(7, 15) > 0.5);
  assert.equal(signTest(0, 15), 1);
  assert.equal(signTest(0, 0), 1);
  assert.equal(signTest(3, 2), 0);
  // Large n stays finite and ordered.
  const p = signTest(117, 180);
  assert.ok(p > 1e-5 && p < 1e-4, String(p));
  assert.ok(signTest(110, 180) > p);
});
