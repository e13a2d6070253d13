import assert from "node:assert/strict";
import fc from "fast-check";
import { IdMap } from "./id_map.ts";

Deno.test("IdMap gets, replaces and deletes values by id, and counts them", () => {
  const map = new IdMap<string>();
  map.set(1, "a");
  map.set(2, "b");
  map.set(2, "B");
  assert.equal(map.size, 2);
  assert.equal(map.get(2), "B");
  assert.equal(map.delete(1), true);
  assert.equal(map.delete(1), false);
  assert.equal(map.delete(7), false);
  assert.equal(map.get(1), undefined);
  assert.equal(map.size, 1);
  map.set(1, "again");
  assert.deepEqual(map.values(), ["again", "B"]);
});

Deno.test("IdMap lists values in id order, whatever the order they were set in", () => {
  const map = new IdMap<number>();
  for (const id of [10, 30, 20, 5, 40, 25]) map.set(id, id);
  assert.deepEqual(map.values(), [5, 10, 20, 25, 30, 40]);
});

Deno.test("IdMap.values() is a copy: deleting while walking it skips nothing", () => {
  const map = new IdMap<number>();
  for (let id = 1; id <= 200; id++) map.set(id, id);
  const seen: number[] = [];
  // Enough deletions to compact the arrays midway.
  for (const value of map.values()) {
    seen.push(value);
    map.delete(value);
  }
  assert.equal(seen.length, 200);
  assert.equal(map.size, 0);
});

Deno.test("IdMap keeps its entries through compactions, with ids from a counter", () => {
  const map = new IdMap<{ id: number }>();
  const live: number[] = [];
  let next = 1;
  for (let round = 0; round < 2000; round++) {
    map.set(next, { id: next });
    live.push(next++);
    // Connections end out of order: remove one from the middle now and then.
    if (live.length > 50) {
      const at = round % 7 === 0 ? live.length >> 1 : 0;
      assert.equal(map.delete(live.splice(at, 1)[0]), true);
    }
  }
  assert.equal(map.size, live.length);
  assert.deepEqual(map.values().map((value) => value.id), live);
  for (const id of live) assert.equal(map.get(id)?.id, id);
});

Deno.test("IdMap behaves as a Map sorted by key, for any sequence of sets and deletes", () => {
  const op = fc.oneof(
    fc.record({ set: fc.integer({ min: 0, max: 60 }), value: fc.integer() }),
    fc.record({ delete: fc.integer({ min: 0, max: 60 }) }),
  );
  fc.assert(fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
    const map = new IdMap<number>();
    const model = new Map<number, number>();
    for (const step of ops) {
      if ("set" in step) {
        map.set(step.set, step.value);
        model.set(step.set, step.value);
      } else {
        assert.equal(map.delete(step.delete), model.delete(step.delete));
      }
      assert.equal(map.size, model.size);
    }
    const sorted = [...model.entries()].sort((a, b) => a[0] - b[0]);
    assert.deepEqual(map.values(), sorted.map(([, value]) => value));
    for (let id = 0; id <= 60; id++) assert.equal(map.get(id), model.get(id));
  }));
});
