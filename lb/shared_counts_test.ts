import assert from "node:assert/strict";
import fc from "fast-check";
import { SharedCounts } from "./shared_counts.ts";

Deno.test("SharedCounts counts connections, NAT rows and backend loads in shared memory", () => {
  const counts = SharedCounts.create({ backendSlots: 4, ipSlots: 16 });
  assert.equal(counts.addActive(1), 1);
  assert.equal(counts.addActive(1), 2);
  assert.equal(counts.addActive(-1), 1);
  assert.equal(counts.addNatRows(1), 1);
  counts.addLoad(2, 3);
  counts.setFailing(2, true);
  // A second view of the same memory, as a worker has, sees every change.
  const worker = new SharedCounts(counts.buffer);
  assert.equal(worker.active, 1);
  assert.equal(worker.load(2), 3);
  assert.equal(worker.load(1), 0);
  assert.equal(worker.failing(2), true);
  worker.resetSlot(2);
  assert.equal(counts.load(2), 0);
  assert.equal(counts.failing(2), false);
  assert.equal(counts.backendSlots, 4);
});

Deno.test("SharedCounts.addIp() counts per client IP like a map, freeing slots at zero", () => {
  const ips = ["127.0.0.1", "127.0.0.2", "::1", "10.0.0.1", "192.0.2.7", "::ffff:127.0.0.1"];
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.constantFrom(...ips), fc.constantFrom(1, -1)), { maxLength: 200 }),
      (ops) => {
        // Few slots, so that probe runs collide and deletions move entries back.
        const counts = SharedCounts.create({ backendSlots: 0, ipSlots: 8 });
        const model = new Map<string, number>();
        for (const [ip, delta] of ops) {
          const want = Math.max(0, (model.get(ip) ?? 0) + delta);
          if (want === 0) model.delete(ip);
          else model.set(ip, want);
          assert.equal(counts.addIp(ip, delta), want, `${ip} ${delta}`);
        }
        assert.equal(counts.ipCount(), model.size);
        for (const ip of ips) assert.equal(counts.addIp(ip, 0), 0 + (model.get(ip) ?? 0));
      },
    ),
  );
});

Deno.test("SharedCounts.addIp() returns -1 for a new IP when the table is full", () => {
  const counts = SharedCounts.create({ backendSlots: 0, ipSlots: 16 });
  for (let i = 0; i < 16; i++) assert.equal(counts.addIp(`10.0.0.${i}`, 1), 1);
  assert.equal(counts.addIp("10.0.1.1", 1), -1);
  // IPs already counted still count.
  assert.equal(counts.addIp("10.0.0.3", 1), 2);
  assert.equal(counts.addIp("10.0.0.3", -2), 0);
  assert.equal(counts.addIp("10.0.1.1", 1), 1);
});
