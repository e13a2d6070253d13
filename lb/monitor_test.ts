import assert from "node:assert/strict";
import type { Addr } from "../net/mod.ts";
import { BackendPool, reconcile } from "./backend.ts";
import { LbMonitor } from "./monitor.ts";
import { NatTable } from "./nat_table.ts";

const addr = (port: number): Addr => ({ hostname: "127.0.0.1", port });

Deno.test("LbMonitor's open and close events say what was so then, however late they are read", () => {
  let nowMs = 1_000_000;
  const pool = new BackendPool();
  reconcile(pool, [{ name: "b", config: { addr: addr(10001) } }], nowMs);
  const backend = pool.all()[0];
  const monitor = new LbMonitor({ nowMs: () => nowMs, keepAliveMs: 0 });
  const nat = new NatTable();
  // The socket's address can be looked up only while it is open.
  let socketOpen = true;
  const row = nat.open({
    client: addr(40000),
    local: () => socketOpen ? addr(50000) : { hostname: "", port: 0 },
    backend: backend.addr,
    backendId: backend.id,
  }, nowMs);
  nowMs += 5;
  monitor.hooks.opened!(row, backend, 1);
  nowMs += 100;
  row.bytesUp = 10;
  row.bytesDown = 20;
  row.upDone = true;
  row.downDone = true;
  nat.remove(row.id);
  monitor.hooks.closed!(row, backend, "done");
  socketOpen = false;
  nowMs += 1000;
  const [opened, closed] = monitor.events.recent();
  assert.deepEqual(opened, {
    type: "open",
    timeMs: 1_000_005,
    data: {
      id: row.id,
      client: "127.0.0.1:40000",
      local: "127.0.0.1:50000",
      backend: "127.0.0.1:10001",
      backendId: backend.id,
      openedAtMs: 1_000_000,
      ageMs: 5,
      idleMs: 5,
      bytesUp: 0,
      bytesDown: 0,
      state: "open",
    },
  });
  assert.deepEqual(closed, {
    type: "close",
    timeMs: 1_000_105,
    data: {
      id: row.id,
      client: "127.0.0.1:40000",
      backend: "127.0.0.1:10001",
      backendId: backend.id,
      durationMs: 105,
      bytesUp: 10,
      bytesDown: 20,
      reason: "done",
    },
  });
});
