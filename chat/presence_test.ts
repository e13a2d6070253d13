import assert from "node:assert/strict";
import { formatPresenceEntry, joinedNotice, leftNotice, sumPresence } from "./presence.ts";

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
