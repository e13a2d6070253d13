import assert from "node:assert/strict";
import { Deadlines } from "./_deadlines.ts";

function taken(queue: Deadlines<string>, nowMs: number): string[] {
  const out: string[] = [];
  queue.takeDue(nowMs, (item) => out.push(item));
  return out;
}

Deno.test("Deadlines.takeDue() takes what is due, first in first, and leaves the rest", () => {
  const queue = new Deadlines<string>();
  queue.push("a", 10);
  queue.push("b", 20);
  queue.push("c", 30);
  assert.deepEqual(taken(queue, 5), []);
  assert.deepEqual(taken(queue, 20), ["a", "b"]);
  assert.equal(queue.size, 1);
  queue.push("d", 25);
  assert.deepEqual(taken(queue, Infinity), ["c", "d"]);
  assert.equal(queue.size, 0);
});

Deno.test("Deadlines.takeDue() lets a deadline put in out of order wait for the one before", () => {
  const queue = new Deadlines<string>();
  queue.push("late", 100);
  queue.push("early", 1);
  assert.deepEqual(taken(queue, 50), []);
  assert.deepEqual(taken(queue, 100), ["late", "early"]);
});

Deno.test("Deadlines.takeDue() may be called again from its callback, and clear() drops all", () => {
  const queue = new Deadlines<string>();
  queue.push("a", 1);
  queue.push("b", 2);
  const out: string[] = [];
  queue.takeDue(5, (item) => {
    out.push(item);
    if (item === "a") queue.push("c", 3);
  });
  assert.deepEqual(out, ["a", "b", "c"]);
  queue.push("d", 1);
  queue.clear();
  assert.equal(queue.size, 0);
  assert.deepEqual(taken(queue, Infinity), []);
});
