import assert from "node:assert/strict";
import { bulkReadSize, type DestinationLook, MIN_READ, STALL_MS } from "./_read_size.ts";

const KIB = 1024;
const MIB = 1024 * KIB;

function newLook(): DestinationLook {
  return { givenSeen: 0, unsentSeen: 0, movedAtMs: 0 };
}

Deno.test("bulkReadSize() reads in full for a destination that sends on, however much it holds", () => {
  const look = newLook();
  // Its peer is the slower side: 1.5 MiB waits unsent, yet some of each read goes on.
  let given = 0;
  for (let t = 0; t < 10 * STALL_MS; t += 10) {
    given += MIB;
    assert.equal(bulkReadSize(look, given, 1.5 * MIB - (t % 20) * KIB, 4 * MIB, t, MIB), MIB);
  }
});

Deno.test("bulkReadSize() counts what the destination holds unsent twice against its buffer", () => {
  const look = newLook();
  assert.equal(bulkReadSize(look, MIB, 0, 4 * MIB, 1000, MIB), MIB);
  assert.equal(bulkReadSize(look, 2 * MIB, 1.5 * MIB, 4 * MIB, 1000, MIB), MIB);
  assert.equal(bulkReadSize(look, 3 * MIB, 1900 * KIB, 4 * MIB, 1000, MIB), 296 * KIB);
  assert.equal(bulkReadSize(look, 3 * MIB, 2.5 * MIB, 4 * MIB, 1000, MIB), MIN_READ);
});

Deno.test("bulkReadSize() reads the minimum once the destination has sent nothing on for a while", () => {
  const look = newLook();
  const start = 1000;
  // Its peer stopped: all it is given stays unsent.
  assert.equal(bulkReadSize(look, 100 * KIB, 0, 4 * MIB, start, MIB), MIB);
  assert.equal(bulkReadSize(look, 200 * KIB, 100 * KIB, 4 * MIB, start + 1, MIB), MIB);
  assert.equal(bulkReadSize(look, 300 * KIB, 200 * KIB, 4 * MIB, start + STALL_MS - 1, MIB), MIB);
  assert.equal(bulkReadSize(look, 400 * KIB, 300 * KIB, 4 * MIB, start + STALL_MS, MIB), MIN_READ);
  assert.equal(
    bulkReadSize(look, 420 * KIB, 320 * KIB, 4 * MIB, start + 5 * STALL_MS, MIB),
    MIN_READ,
  );
  // It reads again: some of what it held goes on, and reads are full at once.
  assert.equal(bulkReadSize(look, 440 * KIB, 40 * KIB, 4 * MIB, start + 6 * STALL_MS, MIB), MIB);
});
