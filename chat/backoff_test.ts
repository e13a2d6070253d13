import assert from "node:assert/strict";
import { backoffMs } from "./backoff.ts";

Deno.test("backoffMs() doubles its ceiling up to maxMs", () => {
  const top = (attempt: number) => backoffMs(attempt, { minMs: 100, maxMs: 1000, random: 1 });
  assert.deepEqual([1, 2, 3, 4, 5, 50].map(top), [100, 200, 400, 800, 1000, 1000]);
});

Deno.test("backoffMs() draws between half the ceiling and all of it", () => {
  const options = { minMs: 400, maxMs: 10_000 };
  assert.equal(backoffMs(1, { ...options, random: 0 }), 200);
  assert.equal(backoffMs(1, { ...options, random: 0.5 }), 300);
  assert.equal(backoffMs(3, { ...options, random: 0 }), 800);
  assert.equal(backoffMs(0, { ...options, random: 0 }), 200);
});
