import assert from "node:assert/strict";
import {
  formatPresenceEntry,
  joinedNotice,
  leftNotice,
  PresenceQueue,
  sumPresence,
} from "./presence.ts";

Deno.test("joinedNotice() and leftNotice() word the notices as the issue shows them", () => {
  assert.equal(joinedNotice("127.0.0.1:53422", 3), "127.0.0.1:53422 joined, 3 online");
  assert.equal(leftNotice("[::1]:53422", 2), "[::1]:53422 left, 2 online");
});

Deno.test("sumPresence() adds the live entries and lists the expired ones", () => {
  const now = 1_000_000;
  const fields = {
    a: formatPresenceEntry(3, now + 1),
    b: formatPresenceEntry(2, now + 30_000),
    dead: formatPresenceEntry(7, now),
    older: formatPresenceEntry(1, now - 5),
  };
  assert.deepEqual(sumPresence(fields, now), { online: 5, stale: ["dead", "older"] });
});

Deno.test("sumPresence() treats unreadable entries as stale, never throws", () => {
  const fields = { a: "x", b: "3", c: "-1 99999999", d: "", e: "2 99999999" };
  assert.deepEqual(sumPresence(fields, 0), { online: 2, stale: ["a", "b", "c", "d"] });
  assert.deepEqual(sumPresence({}, 0), { online: 0, stale: [] });
});

Deno.test("PresenceQueue takes the clients due, in the order they joined, all at once", () => {
  const queue = new PresenceQueue<string>(500);
  assert.equal(queue.nextDueMs(), undefined);
  queue.add("a", 1000);
  queue.add("b", 1001);
  queue.add("c", 1003);
  queue.add("d", 1200);
  assert.equal(queue.nextDueMs(), 1500);
  assert.deepEqual(queue.takeDue(1499), []);
  // A timer that fires late finds everything due by then, not just the client it was set for.
  assert.deepEqual(queue.takeDue(1503), ["a", "b", "c"]);
  assert.equal(queue.nextDueMs(), 1700);
  assert.equal(queue.size, 1);
  assert.deepEqual(queue.takeDue(1700), ["d"]);
  assert.equal(queue.nextDueMs(), undefined);
});

Deno.test("PresenceQueue never announces a client that left while waiting", () => {
  const queue = new PresenceQueue<string>(0);
  queue.add("a", 10);
  queue.add("b", 11);
  assert.equal(queue.remove("a"), true);
  assert.equal(queue.remove("a"), false);
  assert.equal(queue.nextDueMs(), 11);
  assert.deepEqual(queue.takeDue(100), ["b"]);
});
