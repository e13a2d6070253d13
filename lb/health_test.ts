import assert from "node:assert/strict";
import { type HealthChange, HealthState, nextCheckMs } from "./health.ts";

/** Feeds `results` one per `stepMs` from `startMs`; returns what each observe() returned. */
function feed(
  state: HealthState,
  results: readonly boolean[],
  options: { startMs?: number; stepMs?: number } = {},
): (HealthChange | undefined)[] {
  const { startMs = 0, stepMs = 1000 } = options;
  return results.map((ok, i) => state.observe(ok, startMs + i * stepMs));
}

Deno.test("HealthState starts alive, with no check and no transition time", () => {
  const state = new HealthState({ fall: 3, rise: 2 });
  assert.equal(state.alive, true);
  assert.equal(state.lastCheckMs, undefined);
  assert.equal(state.lastOk, undefined);
  assert.equal(state.sinceMs, undefined);
});

Deno.test("HealthState.observe() returns down only on the fall-th failure in a row", () => {
  const state = new HealthState({ fall: 3, rise: 2 });
  assert.deepEqual(feed(state, [false, false, false, false]), [
    undefined,
    undefined,
    "down",
    undefined,
  ]);
  assert.equal(state.alive, false);
  assert.equal(state.sinceMs, 2000);
  assert.equal(state.lastCheckMs, 3000);
  assert.equal(state.lastOk, false);
});

Deno.test("HealthState.observe() returns up only on the rise-th success in a row", () => {
  const state = new HealthState({ fall: 1, rise: 3 });
  assert.equal(state.observe(false, 0), "down");
  assert.deepEqual(feed(state, [true, true, true, true], { startMs: 100 }), [
    undefined,
    undefined,
    "up",
    undefined,
  ]);
  assert.equal(state.alive, true);
  assert.equal(state.sinceMs, 2100);
  assert.equal(state.lastOk, true);
});

Deno.test("HealthState.observe() resets the failure streak on a success", () => {
  const state = new HealthState({ fall: 3, rise: 1 });
  assert.deepEqual(feed(state, [false, false, true, false, false, true]), [
    undefined,
    undefined,
    undefined,
    undefined,
    undefined,
    undefined,
  ]);
  assert.equal(state.alive, true);
  assert.equal(state.sinceMs, undefined);
  assert.deepEqual(feed(state, [false, false, false], { startMs: 10_000 }), [
    undefined,
    undefined,
    "down",
  ]);
  assert.equal(state.sinceMs, 12_000);
});

Deno.test("HealthState.observe() resets the success streak on a failure while dead", () => {
  const state = new HealthState({ fall: 1, rise: 2 });
  assert.equal(state.observe(false, 0), "down");
  assert.deepEqual(feed(state, [true, false, true, false, true, true], { startMs: 1 }), [
    undefined,
    undefined,
    undefined,
    undefined,
    undefined,
    "up",
  ]);
  assert.equal(state.sinceMs, 5001);
});

Deno.test("HealthState with fall 1 and rise 1 flips on every change of result", () => {
  const state = new HealthState({ fall: 1, rise: 1 });
  assert.deepEqual(feed(state, [true, false, false, true, true, false]), [
    undefined,
    "down",
    undefined,
    "up",
    undefined,
    "down",
  ]);
  assert.equal(state.sinceMs, 5000);
});

Deno.test("nextCheckMs() keeps a fixed cadence and never overlaps checks", () => {
  const cases: [started: number, finished: number, interval: number, next: number][] = [
    [0, 0, 5000, 5000],
    [0, 2000, 5000, 5000], // a check that timed out does not push the next one back
    [1000, 1001, 200, 1200],
    [0, 7000, 5000, 7000], // longer than the interval: the next starts at once
  ];
  for (const [started, finished, interval, next] of cases) {
    assert.equal(nextCheckMs(started, finished, interval), next, `${[started, finished]}`);
  }
});

/**
 * Simulates the checks of one backend that dies at `diesAtMs`: checks start at 0 and follow
 * nextCheckMs(); a check of a live backend succeeds after `okMs`, one of a dead backend fails
 * after `failMs` (a refused connect fails at once, a black hole after the timeout). Returns
 * the time at which observe() said "down".
 */
function simulateDeath(options: {
  intervalMs: number;
  timeoutMs: number;
  fall: number;
  diesAtMs: number;
  okMs: number;
  failMs: number;
}): number {
  const { intervalMs, fall, diesAtMs, okMs, failMs } = options;
  const state = new HealthState({ fall, rise: 1 });
  let startMs = 0;
  for (let check = 0; check < 10_000; check++) {
    const ok = startMs < diesAtMs;
    const finishedMs = startMs + (ok ? okMs : failMs);
    if (state.observe(ok, finishedMs) === "down") return finishedMs;
    startMs = nextCheckMs(startMs, finishedMs, intervalMs);
  }
  throw new Error("never marked down");
}

Deno.test("HealthState with checks every I ms, fall F, timeout T: a dead backend is down by I*F+T", () => {
  for (const [intervalMs, timeoutMs, fall] of [[200, 200, 2], [5000, 2000, 3], [1000, 10, 5]]) {
    for (const failMs of [0, 1, timeoutMs]) {
      for (let diesAtMs = 1; diesAtMs < 3 * intervalMs; diesAtMs += intervalMs / 8) {
        const downAtMs = simulateDeath({
          intervalMs,
          timeoutMs,
          fall,
          diesAtMs,
          okMs: 1,
          failMs,
        });
        const label = `I=${intervalMs} T=${timeoutMs} F=${fall} fail after ${failMs} ms, ` +
          `dies at ${diesAtMs}, down at ${downAtMs}`;
        assert.ok(downAtMs > diesAtMs, label);
        assert.ok(downAtMs - diesAtMs <= intervalMs * fall + timeoutMs, label);
      }
    }
  }
});

Deno.test("HealthState with checks every I ms and rise R: a revived backend is up by I*R", () => {
  const intervalMs = 5000;
  const rise = 2;
  const state = new HealthState({ fall: 1, rise });
  assert.equal(state.observe(false, 0), "down");
  const revivedAtMs = 7_500;
  let startMs = nextCheckMs(0, 0, intervalMs);
  let upAtMs: number | undefined;
  while (upAtMs === undefined) {
    const ok = startMs >= revivedAtMs;
    if (state.observe(ok, startMs) === "up") upAtMs = startMs;
    startMs = nextCheckMs(startMs, startMs, intervalMs);
  }
  assert.equal(upAtMs, 15_000);
  assert.ok(upAtMs - revivedAtMs <= intervalMs * rise);
  assert.equal(state.sinceMs, 15_000);
});
