import assert from "node:assert/strict";
import {
  type Backend,
  type BackendConfig,
  BackendPool,
  rampFraction,
  reconcile,
  type ResolvedBackend,
} from "./backend.ts";

const at = (port: number, extra: Omit<BackendConfig, "addr"> = {}): BackendConfig => ({
  addr: { hostname: "127.0.0.1", port },
  ...extra,
});
const ports = (backends: readonly Backend[]) => backends.map((backend) => backend.addr.port);
const resolved = (...configs: BackendConfig[]): ResolvedBackend[] =>
  configs.map((config) => ({ name: `127.0.0.1:${config.addr.port}`, config }));

Deno.test("BackendPool.add() fills in defaults and numbers backends from 1", () => {
  const pool = new BackendPool([at(1), at(2, { weight: 3, state: "drain", maxConn: 5 })]);
  const [a, b] = pool.all();
  assert.deepEqual(
    [a.id, a.name, a.weight, a.state, a.maxConn, a.alive, a.active, a.removing],
    [1, "127.0.0.1:1", 1, "ready", 0, true, 0, false],
  );
  assert.deepEqual([b.id, b.weight, b.state, b.maxConn], [2, 3, "drain", 5]);
  assert.equal(a.upSinceMs, undefined);
  assert.equal(pool.get(2), b);
  assert.equal(pool.get(3), undefined);
});

Deno.test("BackendPool.candidates() keeps only alive, ready backends under maxConn", () => {
  const pool = new BackendPool([
    at(1),
    at(2, { state: "drain" }),
    at(3, { state: "maint" }),
    at(4, { maxConn: 2 }),
    at(5),
    at(6),
  ]);
  const [, , , limited, dead, removed] = pool.all();
  pool.setAlive(dead, false);
  pool.opened(removed);
  pool.remove(removed);
  assert.deepEqual(ports(pool.candidates()), [1, 4]);
  pool.opened(limited);
  assert.deepEqual(ports(pool.candidates()), [1, 4]);
  pool.opened(limited);
  assert.deepEqual(ports(pool.candidates()), [1], "at maxconn");
  pool.closed(limited);
  assert.deepEqual(ports(pool.candidates()), [1, 4], "below maxconn again");
  assert.deepEqual(ports(pool.candidates({ exclude: new Set([1]) })), [4]);
  pool.setAlive(dead, true, 0);
  assert.deepEqual(ports(pool.candidates()), [1, 4, 5]);
});

Deno.test("BackendPool.candidates() draws ramping backends by their slow-start share", () => {
  const pool = new BackendPool([at(1), at(2)]);
  const [, ramping] = pool.all();
  pool.setAlive(ramping, false);
  pool.setAlive(ramping, true, 1000);
  const options = { nowMs: 1000 + 2500, slowstartMs: 10_000 };
  // A quarter of the way through: kept for draws below 0.25.
  assert.deepEqual(ports(pool.candidates({ ...options, random: 0.2 })), [1, 2]);
  assert.deepEqual(ports(pool.candidates({ ...options, random: 0.3 })), [1]);
  // Without a draw, or without slow start, no filtering.
  assert.deepEqual(ports(pool.candidates({ nowMs: 3500, slowstartMs: 10_000 })), [1, 2]);
  assert.deepEqual(ports(pool.candidates({ ...options, slowstartMs: 0, random: 0.9 })), [1, 2]);
  // Past the ramp: always kept.
  assert.deepEqual(ports(pool.candidates({ ...options, nowMs: 11_000, random: 0.99 })), [1, 2]);
});

Deno.test("BackendPool.candidates() never lets slow start leave a client with no backend", () => {
  const pool = new BackendPool([at(1), at(2)]);
  for (const backend of pool.all()) {
    pool.setAlive(backend, false);
    pool.setAlive(backend, true, 0);
  }
  assert.deepEqual(
    ports(pool.candidates({ nowMs: 100, slowstartMs: 10_000, random: 0.99 })),
    [1, 2],
  );
});

Deno.test("BackendPool.candidates() spreads a ramping backend's share over many draws", () => {
  const pool = new BackendPool([at(1), at(2)]);
  const [, ramping] = pool.all();
  pool.setAlive(ramping, false);
  pool.setAlive(ramping, true, 0);
  let picked = 0;
  const draws = 1000;
  for (let i = 0; i < draws; i++) {
    const candidates = pool.candidates({ nowMs: 4000, slowstartMs: 10_000, random: i / draws });
    if (candidates.includes(ramping)) picked++;
  }
  assert.equal(picked, 400);
});

Deno.test("rampFraction() rises from 5% to 1 over the slow start", () => {
  const pool = new BackendPool();
  const backend = pool.add(at(1), undefined, 1000);
  assert.equal(rampFraction(backend, 1000, 10_000), 0.05, "floor just after coming up");
  assert.equal(rampFraction(backend, 1000 + 300, 10_000), 0.05);
  assert.equal(rampFraction(backend, 1000 + 5000, 10_000), 0.5);
  assert.equal(rampFraction(backend, 1000 + 10_000, 10_000), 1);
  assert.equal(rampFraction(backend, 1000 + 99_000, 10_000), 1);
  assert.equal(rampFraction(backend, 1000, 0), 1, "slow start off");
  assert.equal(rampFraction(pool.add(at(2)), 1000, 10_000), 1, "never came up: full share");
});

Deno.test("BackendPool.remove() drops a backend only when its last connection closes", () => {
  const pool = new BackendPool([at(1), at(2)]);
  const [busy, idle] = pool.all();
  assert.equal(pool.remove(idle), true, "no connection: gone at once");
  assert.deepEqual(ports(pool.all()), [1]);
  pool.opened(busy);
  pool.opened(busy);
  assert.equal(pool.remove(busy), false);
  assert.equal(busy.state, "drain");
  assert.equal(busy.removing, true);
  assert.deepEqual(ports(pool.candidates()), [], "takes no new connection");
  pool.closed(busy, 10, 20);
  assert.deepEqual(ports(pool.all()), [1], "one connection left");
  pool.closed(busy, 1, 2);
  assert.deepEqual(ports(pool.all()), []);
  assert.deepEqual([busy.active, busy.total, busy.bytesUp, busy.bytesDown], [0, 2, 11, 22]);
});

Deno.test("BackendPool.update() changes only the fields it is given", () => {
  const pool = new BackendPool([at(1, { weight: 2, maxConn: 3, sendProxy: 2 })]);
  const [backend] = pool.all();
  pool.update(backend, { weight: 5 });
  assert.deepEqual(
    [backend.weight, backend.state, backend.maxConn, backend.sendProxy],
    [5, "ready", 3, 2],
  );
  pool.update(backend, { state: "maint", sendProxy: undefined });
  assert.deepEqual(
    [backend.weight, backend.state, backend.maxConn, backend.sendProxy],
    [5, "maint", 3, undefined],
  );
});

Deno.test("reconcile() adds, updates in place and removes, keeping counters", () => {
  const pool = new BackendPool();
  const first = reconcile(pool, resolved(at(1), at(2, { weight: 2 }), at(3)), undefined);
  assert.deepEqual(ports(first.added), [1, 2, 3]);
  assert.equal(first.added[0].upSinceMs, undefined, "the first load does not ramp");
  const [one, two, three] = pool.all();
  pool.opened(two);
  pool.closed(two, 100, 200);
  pool.opened(two);
  pool.opened(three);
  pool.connectFailed(one);
  pool.setAlive(one, false);

  const result = reconcile(
    pool,
    resolved(at(2, { weight: 4, state: "drain", maxConn: 9, sendProxy: 1 }), at(4)),
    5000,
  );
  assert.deepEqual(ports(result.updated), [2]);
  assert.deepEqual(ports(result.added), [4]);
  assert.deepEqual(ports(result.removed), [1, 3]);
  assert.equal(result.added[0].upSinceMs, 5000, "added on reload: slow start applies");
  assert.equal(result.added[0].id, 4, "ids are never reused");
  // 1 had no connection: gone; 3 drains its one connection.
  assert.deepEqual(ports(pool.all()), [2, 3, 4]);
  assert.equal(pool.get(2), two, "the same object: connections and counters stay");
  assert.deepEqual(
    [two.weight, two.state, two.maxConn, two.sendProxy, two.active, two.total, two.bytesUp],
    [4, "drain", 9, 1, 1, 2, 100],
  );
  assert.deepEqual([three.state, three.removing], ["drain", true]);
  pool.closed(three);
  assert.deepEqual(ports(pool.all()), [2, 4]);

  // Settings left out of the next config go back to their defaults.
  reconcile(pool, resolved(at(2), at(4)), 6000);
  assert.deepEqual(
    [two.weight, two.state, two.maxConn, two.sendProxy, two.active],
    [1, "ready", 0, undefined, 1],
  );
});

Deno.test("reconcile() takes back a backend that is still draining", () => {
  const pool = new BackendPool();
  reconcile(pool, resolved(at(1), at(2)), undefined);
  const [, two] = pool.all();
  pool.opened(two);
  reconcile(pool, resolved(at(1)), 1000);
  assert.equal(two.removing, true);
  const result = reconcile(pool, resolved(at(1), at(2)), 2000);
  assert.deepEqual(ports(result.updated), [1, 2]);
  assert.deepEqual(result.added, []);
  assert.deepEqual([two.removing, two.state], [false, "ready"]);
  pool.closed(two);
  assert.deepEqual(ports(pool.all()), [1, 2], "not dropped by its last close any more");
});

Deno.test("reconcile() tells backends apart by name and address", () => {
  const pool = new BackendPool();
  const wanted: ResolvedBackend[] = [
    { name: "db.example:5", config: at(5) },
    { name: "127.0.0.1:5", config: at(5) },
    { name: "127.0.0.1:5", config: at(5) }, // listed twice: one backend
  ];
  assert.equal(reconcile(pool, wanted, undefined).added.length, 2);
  const again = reconcile(pool, wanted, 1000);
  assert.deepEqual([again.added.length, again.updated.length, again.removed.length], [0, 2, 0]);
  // The name now resolves to another address: the old one is removed, the new one added.
  const moved = reconcile(
    pool,
    [{ name: "db.example:5", config: at(6) }, wanted[1]],
    2000,
  );
  assert.deepEqual(ports(moved.added), [6]);
  assert.deepEqual(moved.removed.map((backend) => backend.name), ["db.example:5"]);
});

Deno.test("BackendPool.setAlive() returns true only when the health changes", () => {
  const pool = new BackendPool([at(1), at(2)]);
  const backend = pool.get(1)!;
  assert.equal(pool.setAlive(backend, true, 10), false);
  assert.equal(pool.setAlive(backend, false, 20), true);
  assert.equal(backend.alive, false);
  assert.deepEqual(ports(pool.candidates()), [2]);
  assert.equal(pool.setAlive(backend, false, 30), false);
  assert.equal(pool.setAlive(backend, true, 40), true);
  assert.equal(backend.alive, true);
  assert.equal(backend.upSinceMs, 40);
  assert.deepEqual(ports(pool.candidates()), [1, 2]);
});

Deno.test("BackendPool counts opened, closed and failed connections per backend", () => {
  const pool = new BackendPool([at(1), at(2)]);
  const backend = pool.get(1)!;
  pool.opened(backend);
  pool.opened(backend);
  pool.closed(backend, 5, 7);
  pool.connectFailed(backend);
  assert.deepEqual(
    [backend.active, backend.total, backend.connectFailures, backend.bytesUp, backend.bytesDown],
    [1, 2, 1, 5, 7],
  );
  assert.equal(pool.get(2)!.total, 0);
});
