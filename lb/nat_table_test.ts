import assert from "node:assert/strict";
import type { Addr, Direction } from "../net/mod.ts";
import { copyRow, jitter, type NatEntry, NatTable, sweep } from "./nat_table.ts";

const entry = (port: number) => ({
  client: { hostname: "127.0.0.1", port },
  local: { hostname: "127.0.0.1", port: port + 1 },
  backend: { hostname: "127.0.0.1", port: 10010 },
  backendId: 1,
});

Deno.test("NatTable removes a row once, when both directions have finished", () => {
  const nat = new NatTable();
  const row = nat.open(entry(1000), 0);
  assert.equal(nat.size, 1);
  assert.equal(nat.finish(row.id, "up"), false);
  assert.equal(nat.finish(row.id, "up"), false);
  assert.equal(nat.finish(row.id, "down"), true);
  assert.equal(nat.size, 0);
  assert.equal(nat.finish(row.id, "down"), false);
  assert.equal(nat.remove(row.id), false);
  const other = nat.open(entry(2000), 0);
  assert.notEqual(other.id, row.id);
  assert.equal(nat.remove(other.id), true);
  assert.equal(nat.get(other.id), undefined);
});

Deno.test("sweep() closes a row with no traffic for the idle timeout", () => {
  const nat = new NatTable();
  const row = nat.open(entry(1000), 1000);
  const limits = { idleTimeoutMs: 300, maxLifetimeMs: 0 };
  assert.deepEqual(sweep(nat.rows(), 1000, limits), []);
  assert.deepEqual(sweep(nat.rows(), 1299, limits), []);
  assert.deepEqual(sweep(nat.rows(), 1300, limits), [{ row, reason: "idle" }]);
});

Deno.test("sweep() counts traffic in either direction as activity", () => {
  const nat = new NatTable();
  const row = nat.open(entry(1000), 0);
  const limits = { idleTimeoutMs: 300, maxLifetimeMs: 0 };
  // Traffic seen at each sweep, 200 ms apart: never idle, however long it goes on.
  for (let now = 200; now <= 10_000; now += 200) {
    if ((now / 200) % 2 === 0) row.bytesUp += 1;
    else row.bytesDown += 5;
    assert.deepEqual(sweep(nat.rows(), now, limits), [], `at ${now} ms`);
  }
  // Then silence: idle 300 ms after the last sweep that saw traffic.
  assert.deepEqual(sweep(nat.rows(), 10_200, limits), []);
  assert.deepEqual(sweep(nat.rows(), 10_300, limits), [{ row, reason: "idle" }]);
});

Deno.test("sweep() closes rows past the maximum lifetime plus at most 20% jitter", () => {
  const nat = new NatTable();
  const rows = Array.from({ length: 200 }, (_, i) => nat.open(entry(1000 + i), 0));
  const limits = { idleTimeoutMs: 0, maxLifetimeMs: 1000 };
  const closedAt = new Map<number, number>();
  for (let now = 0; now <= 1300; now += 10) {
    for (const row of rows) row.bytesUp++; // busy rows close too
    for (const { row, reason } of sweep(nat.rows(), now, limits)) {
      assert.equal(reason, "lifetime");
      if (!closedAt.has(row.id)) closedAt.set(row.id, now);
    }
  }
  assert.equal(closedAt.size, rows.length, "every row closes");
  const times = [...closedAt.values()];
  assert.ok(Math.min(...times) >= 1000, `none before the lifetime: ${Math.min(...times)}`);
  assert.ok(Math.max(...times) <= 1200, `none after lifetime + 20%: ${Math.max(...times)}`);
  // Spread over the window, not all at once.
  assert.ok(new Set(times).size >= 15, `${new Set(times).size} distinct close times`);
  // Each row's deadline is fixed: a later sweep still reports it.
  assert.equal(sweep(nat.rows(), 5000, limits).length, rows.length);
});

Deno.test("sweep() reports idle before lifetime, and nothing when both are off", () => {
  const nat = new NatTable();
  const row = nat.open(entry(1000), 0);
  assert.deepEqual(sweep(nat.rows(), 1_000_000, { idleTimeoutMs: 0, maxLifetimeMs: 0 }), []);
  assert.deepEqual(
    sweep(nat.rows(), 5000, { idleTimeoutMs: 100, maxLifetimeMs: 100 }),
    [{ row, reason: "idle" }],
  );
});

Deno.test("jitter() is in [0, 1) and spread evenly over ids", () => {
  const buckets = new Array(10).fill(0);
  for (let id = 1; id <= 10_000; id++) {
    const value = jitter(id);
    assert.ok(value >= 0 && value < 1, `${id}: ${value}`);
    buckets[Math.floor(value * 10)]++;
  }
  for (const count of buckets) assert.ok(count > 900 && count < 1100, String(buckets));
  assert.equal(jitter(7), jitter(7));
});

const ENTRY: NatEntry = {
  client: { hostname: "127.0.0.1", port: 40001 },
  local: { hostname: "127.0.0.1", port: 50001 },
  backend: { hostname: "127.0.0.1", port: 10010 },
  backendId: 1,
};

type Step = "up" | "down" | "remove";

function apply(table: NatTable, id: number, step: Step): boolean {
  return step === "remove" ? table.remove(id) : table.finish(id, step as Direction);
}

/** Every ordering of `items` (all permutations). */
function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  return items.flatMap((item, i) =>
    permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest])
  );
}

/** What each step of `steps` must return: true exactly for the one that removes the row. */
function expected(steps: readonly Step[]): boolean[] {
  let up = false;
  let down = false;
  let gone = false;
  return steps.map((step) => {
    if (gone) return false;
    if (step === "remove") return gone = true;
    if (step === "up") up = true;
    else down = true;
    return gone = up && down;
  });
}

Deno.test("NatTable.open() adds a row with a fresh id, zero byte counts and the time given", () => {
  const table = new NatTable();
  const first = table.open(ENTRY, 1_000);
  const second = table.open({ ...ENTRY, client: { hostname: "127.0.0.1", port: 40002 } }, 2_000);
  assert.equal(table.size, 2);
  assert.notEqual(first.id, second.id);
  assert.deepEqual(
    [first.client, first.local, first.backend, first.backendId],
    [ENTRY.client, ENTRY.local, ENTRY.backend, ENTRY.backendId],
  );
  assert.deepEqual(
    [first.openedAtMs, first.bytesUp, first.bytesDown, first.upDone, first.downDone],
    [1_000, 0, 0, false, false],
  );
  assert.equal(table.get(second.id), second);
  assert.deepEqual([...table.rows()].map((row) => row.id), [first.id, second.id]);
});

Deno.test("NatTable.open() with a function for local calls it once, when local is first read", () => {
  const table = new NatTable();
  let calls = 0;
  const row = table.open({ ...ENTRY, local: () => (calls++, ENTRY.local as Addr) }, 1_000);
  assert.equal(calls, 0, "not found before anyone asks");
  row.bytesUp += 5;
  assert.deepEqual([row.local, row.local], [ENTRY.local, ENTRY.local]);
  assert.equal(calls, 1);
  const copy = copyRow(row);
  assert.deepEqual(copy, {
    id: row.id,
    client: ENTRY.client,
    local: ENTRY.local,
    backend: ENTRY.backend,
    backendId: 1,
    openedAtMs: 1_000,
    bytesUp: 5,
    bytesDown: 0,
    upDone: false,
    downDone: false,
    lastActiveMs: 1_000,
    lastBytes: 0,
  });
  assert.deepEqual(structuredClone(copy), copy, "the copy survives postMessage");
});

Deno.test("NatTable removes a row exactly once under every order of finish(up), finish(down) and remove", () => {
  const orders: Step[][] = [
    ...permutations<Step>(["up", "down", "remove"]),
    ...permutations<Step>(["up", "down"]),
    ...permutations<Step>(["up", "remove"]),
    ...permutations<Step>(["down", "remove"]),
    // Repeats: a direction reported twice, a second remove (reset after an error).
    ["up", "up", "down", "down"],
    ["remove", "remove", "up", "down"],
    ["down", "down", "remove", "up", "remove"],
  ];
  for (const steps of orders) {
    const table = new NatTable();
    const other = table.open(ENTRY, 0);
    const row = table.open(ENTRY, 0);
    const results = steps.map((step) => apply(table, row.id, step));
    const label = steps.join(", ");
    assert.deepEqual(results, expected(steps), label);
    assert.equal(results.filter(Boolean).length, 1, `${label}: removed exactly once`);
    assert.equal(table.get(row.id), undefined, label);
    assert.equal(table.size, 1, `${label}: the other row stays`);
    assert.equal(table.get(other.id), other, label);
  }
});

Deno.test("NatTable.finish() of one direction keeps the row and marks that direction", () => {
  const table = new NatTable();
  const row = table.open(ENTRY, 0);
  assert.equal(table.finish(row.id, "down"), false);
  assert.equal(table.size, 1);
  assert.equal(row.downDone, true);
  assert.equal(row.upDone, false);
});

Deno.test("NatTable calls about an unknown id return false and change nothing", () => {
  const table = new NatTable();
  table.open(ENTRY, 0);
  assert.equal(table.finish(999, "up"), false);
  assert.equal(table.remove(999), false);
  assert.equal(table.get(999), undefined);
  assert.equal(table.size, 1);
});

Deno.test("NatTable never reuses an id after a row is removed", () => {
  const table = new NatTable();
  const ids = new Set<number>();
  for (let i = 0; i < 5; i++) {
    const row = table.open(ENTRY, i);
    assert.equal(ids.has(row.id), false);
    ids.add(row.id);
    table.remove(row.id);
  }
  assert.equal(table.size, 0);
});
