/**
 * End-to-end tests of `lb --workers`: clients spread over the workers, one NAT table and one
 * set of limits across them, health shared, and a clear error where workers cannot start.
 * (The byte-exact, half-close and many-connection tests run on two workers too: see
 * `DATA_PATHS` in `_helpers.ts`.)
 *
 * @module
 */
import assert from "node:assert/strict";
import { api, startAdminLb } from "./_admin.ts";
import {
  closedEmpty,
  connectFrom,
  connectGreeted,
  deadline,
  EchoBackend,
  L4chat,
  RawClient,
  RUN_PERMISSIONS,
  RUNS_WITH_DENO_PERMISSIONS,
  startLb,
  WORKER_PERMISSIONS,
  WORKERS_OK,
} from "./_helpers.ts";

const TWO_WORKERS = ["--workers", "2"];

/**
 * Holds two clients through the load balancer on `port`, then checks that six more are closed
 * at once, whichever worker takes them. Returns the two held, for the caller to dispose of.
 */
async function holdTwoThenRefuseSix(port: number): Promise<RawClient[]> {
  const held = [(await connectGreeted(port))[0], (await connectGreeted(port))[0]];
  for (let i = 0; i < 6; i++) {
    using over = await RawClient.connect(port);
    assert.equal(await closedEmpty(over), true, `client ${i + 3} was let in`);
  }
  return held;
}

Deno.test({
  name: "lb --workers 2: clients reach both workers, and --admin shows one NAT table",
  ignore: !WORKERS_OK,
}, async () => {
  await using backend = new EchoBackend("a");
  const { proc, port, adminPort } = await startAdminLb(
    ["127.0.0.1", "127.0.0.1", String(backend.port), "--port", "0", ...TWO_WORKERS],
    WORKER_PERMISSIONS,
  );
  await using _proc = proc;
  await proc.stderr.waitFor(/load balancer listening on .* workers: 2\)$/);
  const clients: RawClient[] = [];
  try {
    for (let i = 0; i < 24; i++) clients.push((await connectGreeted(port))[0]);
    const listed = await api(adminPort, "GET", "/api/connections");
    assert.equal(listed.status, 200);
    assert.equal(listed.json.total, 24);
    const ids: number[] = listed.json.connections.map((row: { id: number }) => row.id);
    // Worker k numbers its rows k + 1, k + 1 + N, ...: both parities mean both workers served.
    // The kernel spreads by a hash of the client's port: all 24 on one worker is 2^-23 likely.
    assert.ok(ids.some((id) => id % 2 === 1), `ids ${ids}`);
    assert.ok(ids.some((id) => id % 2 === 0), `ids ${ids}`);
    // Byte counters are live: each client's greeting went down.
    assert.ok(listed.json.connections.every((row: { bytesDown: number }) => row.bytesDown === 2));
    // A row of each worker can be closed through the one table.
    for (const id of [ids.find((id) => id % 2 === 1)!, ids.find((id) => id % 2 === 0)!]) {
      const row = listed.json.connections.find((r: { id: number }) => r.id === id);
      const closed = await api(adminPort, "DELETE", `/api/connections/${id}`);
      assert.equal(closed.status, 200, closed.text);
      const client = clients.find((c) => row.client.endsWith(`:${c.conn.localAddr.port}`))!;
      assert.equal(await client.closedByPeer(5000), true);
    }
    const after = await api(adminPort, "GET", "/api/connections");
    assert.equal(after.json.total, 22);
    const backends = await api(adminPort, "GET", "/api/backends");
    assert.equal(backends.json.backends[0].active, 22);
  } finally {
    for (const client of clients) client[Symbol.dispose]();
  }
  // Every worker logs into the one table length.
  await proc.stderr.waitFor(/Current NAT table length : 0$/);
});

Deno.test({
  name: "lb --workers 2 --max-conns counts every worker's connections",
  ignore: !WORKERS_OK,
}, async () => {
  await using backend = new EchoBackend("a");
  const { proc: lb, port } = await startLb(
    [backend.port],
    [...TWO_WORKERS, "--max-conns", "2"],
    WORKER_PERMISSIONS,
  );
  await using _lb = lb;
  const [first, second] = await holdTwoThenRefuseSix(port);
  using _second = second;
  await lb.stderr.waitForCount(/refused: max-conns$/, 6);
  first[Symbol.dispose]();
  await lb.stderr.waitFor(/terminated$/);
  // The place was given back before that line (and before the sockets closed), so whichever
  // worker takes the next client lets it in.
  using third = await RawClient.connect(port);
  assert.equal(await third.readLine(5000), "a");
  assert.equal(lb.stderr.count(/refused: max-conns$/), 6);
});

Deno.test({
  name: "lb --workers 2 --max-conns-per-ip counts one client IP across workers",
  ignore: !WORKERS_OK,
}, async () => {
  await using backend = new EchoBackend("a");
  const { proc: lb, port } = await startLb(
    [backend.port],
    [...TWO_WORKERS, "--max-conns-per-ip", "2"],
    WORKER_PERMISSIONS,
  );
  await using _lb = lb;
  const held = await holdTwoThenRefuseSix(port);
  using _first = held[0];
  using _second = held[1];
  // Another client IP has its own allowance.
  const other = await connectFrom("127.0.0.2", port);
  try {
    const greeting = new Promise<string>((resolve) => other.once("data", (d) => resolve(`${d}`)));
    assert.equal(await deadline(greeting, 5000, "127.0.0.2 got no greeting"), "a\n");
  } finally {
    other.destroy();
  }
  assert.equal(lb.stderr.count(/refused: max-conns-per-ip$/), 6);
});

Deno.test({
  name: "lb --workers 2: a dead backend is avoided by every worker",
  ignore: !WORKERS_OK,
}, async () => {
  const alive = new EchoBackend("alive");
  await using _alive = alive;
  const doomed = new EchoBackend("doomed");
  const { proc: lb, port } = await startLb(
    [alive.port, doomed.port],
    [...TWO_WORKERS, "--hc-interval", "100ms", "--hc-timeout", "100ms", "--hc-fall", "1"],
    WORKER_PERMISSIONS,
  );
  await using _lb = lb;
  await doomed[Symbol.asyncDispose]();
  await lb.stderr.waitFor(new RegExp(`port : ${doomed.port} dead`));
  for (let i = 0; i < 12; i++) {
    const [client, name] = await connectGreeted(port);
    client[Symbol.dispose]();
    assert.equal(name, "alive");
  }
});

Deno.test({
  name: "lb --workers under deno run without read access says so in one line, exit 1",
  ignore: !RUNS_WITH_DENO_PERMISSIONS || !WORKERS_OK,
  fn: async () => {
    await using lb = new L4chat(["lb", "127.0.0.1", "1", "--port", "0", ...TWO_WORKERS], {
      permissions: RUN_PERMISSIONS,
    });
    assert.equal(await lb.exited(), 1);
    assert.match(lb.stderr.lines.at(-1) ?? "", /^l4chat lb: Cannot start worker 1: .*allow-read/);
  },
});
