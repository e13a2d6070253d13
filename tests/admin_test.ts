import assert from "node:assert/strict";
import { parseConfigText } from "../lb/config.ts";
import { api, parseMetrics, startAdminLb } from "./_admin.ts";
import { deadline, EchoBackend, L4chat, RawClient } from "./_helpers.ts";

const encoder = new TextEncoder();

/** Connects through the lb, sends `text` and reads it back; returns the client. */
async function echoClient(port: number, text: string): Promise<RawClient> {
  const client = await RawClient.connect(port);
  await client.send(`${text}\n`);
  assert.equal(await client.readLine(5000), text);
  return client;
}

function clientPort(client: RawClient): number {
  return (client.conn.localAddr as Deno.NetAddr).port;
}

Deno.test("lb --admin: each route against real backends", async () => {
  await using a = new EchoBackend();
  await using b = new EchoBackend();
  const { proc, port, adminPort } = await startAdminLb([
    "127.0.0.1",
    "127.0.0.1",
    String(a.port),
    "127.0.0.1",
    `${b.port},weight=2`,
    "--port",
    "0",
    "--balance",
    "maglev",
  ]);
  await using _proc = proc;

  const backends = await api(adminPort, "GET", "/api/backends");
  assert.equal(backends.status, 200);
  assert.equal(backends.json.balance, "maglev");
  assert.deepEqual(
    backends.json.backends.map((x: { address: string; weight: number; health: string }) => [
      x.address,
      x.weight,
      x.health,
    ]),
    [[a.addr, 1, "up"], [b.addr, 2, "up"]],
  );

  using client = await echoClient(port, "hello");
  const connections = await api(adminPort, "GET", "/api/connections");
  assert.equal(connections.json.total, 1);
  const row = connections.json.connections[0];
  assert.equal(row.client, `127.0.0.1:${clientPort(client)}`);
  assert.ok([a.addr, b.addr].includes(row.backend));
  assert.equal(row.bytesUp, 6);
  assert.equal(row.bytesDown, 6);
  assert.equal(row.state, "open");
  const other = row.backendId === 1 ? 2 : 1;
  const filtered = await api(adminPort, "GET", `/api/connections?backend=${other}`);
  assert.equal(filtered.json.matched, 0);

  const impact = await api(adminPort, "GET", `/api/backends/${row.backendId}/impact`);
  assert.equal(impact.json.connections, 1);
  assert.equal(impact.json.clients, 1);
  assert.ok(impact.json.movedShare > 0 && impact.json.movedShare < 1);
  const reweight = await api(adminPort, "GET", "/api/backends/2/impact?weight=1");
  assert.ok(reweight.json.movedShare > 0);

  const mark = proc.stderr.mark;
  const closed = await api(adminPort, "DELETE", `/api/connections/${row.id}`);
  assert.deepEqual(closed.json, { closed: 1 });
  assert.ok(await client.closedByPeer(5000));
  await proc.stderr.waitFor(/client <127\.0\.0\.1,\d+> terminated/, { from: mark });
  assert.equal((await api(adminPort, "GET", "/api/connections")).json.total, 0);

  // Draining backend 1 sends every new client to backend 2.
  const drained = await api(adminPort, "PATCH", "/api/backends/1", { body: { state: "drain" } });
  assert.equal(drained.status, 200);
  assert.equal(drained.json.state, "drain");
  for (let i = 0; i < 3; i++) {
    using c = await echoClient(port, `to b ${i}`);
    const rows = (await api(adminPort, "GET", `/api/connections?client=:${clientPort(c)}`)).json;
    assert.equal(rows.connections[0].backend, b.addr);
  }

  await using c = new EchoBackend();
  const added = await api(adminPort, "POST", "/api/backends", { body: { address: c.addr } });
  assert.equal(added.status, 201);
  assert.equal(added.json.backends[0].address, c.addr);
  const id = added.json.backends[0].id;
  const removed = await api(adminPort, "DELETE", `/api/backends/${id}`);
  assert.equal(removed.status, 200);
  assert.equal(removed.json.gone, true);
  assert.equal((await api(adminPort, "GET", "/api/backends")).json.backends.length, 2);

  // Errors: JSON, never a crash.
  for (
    const [method, path, body, status] of [
      ["GET", "/api/backends/99", undefined, 404],
      ["PATCH", "/api/backends/1", { state: "sleep" }, 400],
      ["POST", "/api/backends", { address: a.addr }, 409],
      ["POST", "/api/backends", [1, 2], 400],
      ["PUT", "/api/connections", undefined, 405],
      ["GET", "/nothing", undefined, 404],
    ] as const
  ) {
    const res = await api(adminPort, method, path, { body });
    assert.equal(res.status, status, `${method} ${path}`);
    assert.equal(typeof res.json.error, "string");
  }
  const huge = await fetch(`http://127.0.0.1:${adminPort}/api/backends`, {
    method: "POST",
    body: encoder.encode("x".repeat(1024 * 1024)),
  });
  assert.equal(huge.status, 413);
  await huge.body?.cancel();
  assert.equal((await api(adminPort, "GET", "/api/backends")).status, 200);
});

Deno.test("lb --admin: /metrics counters move with real traffic", async () => {
  await using a = new EchoBackend();
  // A port with nothing behind it: connects to it fail; a high fall keeps it in rotation.
  const gone = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = gone.addr.port;
  gone.close();
  const { proc, port, adminPort } = await startAdminLb([
    "127.0.0.1",
    "127.0.0.1",
    String(a.port),
    "127.0.0.1",
    String(deadPort),
    "--port",
    "0",
    "--max-conns",
    "1",
    "--hc-fall",
    "1000",
  ]);
  await using _proc = proc;
  const metrics = async () => {
    const res = await api(adminPort, "GET", "/metrics");
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
    return parseMetrics(res.text);
  };
  const live = `{backend="${a.addr}"}`;
  const dead = `{backend="127.0.0.1:${deadPort}"}`;
  const before = await metrics();
  assert.equal(before.get(`l4chat_connections_opened_total${live}`), 0);
  assert.equal(before.get(`l4chat_backend_up${live}`), 1);
  assert.equal(before.get(`l4chat_backend_state{backend="${a.addr}",state="ready"}`), 1);

  // Two connections one after the other: round robin tries the dead backend for one of them.
  for (const text of ["first message", "second"]) {
    const mark = proc.stderr.mark;
    const client = await echoClient(port, text);
    if (text === "first message") {
      const during = await metrics();
      assert.equal(during.get(`l4chat_connections_active${live}`), 1);
      assert.equal(during.get(`l4chat_bytes_total{backend="${a.addr}",direction="up"}`), 14);
      // --max-conns 1: a second client now is refused.
      using refused = await RawClient.connect(port);
      assert.ok(await refused.closedByPeer(5000));
    }
    client.conn.close();
    await proc.stderr.waitFor(/terminated/, { from: mark });
  }
  const after = await metrics();
  assert.equal(after.get(`l4chat_connections_opened_total${live}`), 2);
  assert.equal(after.get(`l4chat_connections_closed_total${live}`), 2);
  assert.equal(after.get(`l4chat_connections_active${live}`), 0);
  assert.equal(after.get(`l4chat_bytes_total{backend="${a.addr}",direction="up"}`), 14 + 7);
  assert.equal(after.get(`l4chat_bytes_total{backend="${a.addr}",direction="down"}`), 14 + 7);
  assert.equal(after.get(`l4chat_connect_failures_total${dead}`), 1);
  assert.equal(after.get(`l4chat_refused_total{reason="max-conns"}`), 1);
  assert.equal(after.get(`l4chat_connection_duration_seconds_count${live}`), 2);
  assert.equal(after.get(`l4chat_backend_connect_seconds_count${live}`), 2);
  assert.equal(
    after.get(`l4chat_backend_connect_seconds_bucket{backend="${a.addr}",le="+Inf"}`),
    2,
  );
  assert.ok(after.get(`l4chat_health_checks_total{backend="${a.addr}",result="ok"}`)! >= 1);
});

Deno.test("lb --admin --config: API changes are written to the file and survive a reload", async () => {
  await using a = new EchoBackend();
  await using b = new EchoBackend();
  await using c = new EchoBackend();
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/lb.jsonc`;
    await Deno.writeTextFile(
      path,
      `// edited by hand\n{ "listen": "127.0.0.1:0", "hc-fall": 4, "backends": ["${a.addr}", "${b.addr}"] }\n`,
    );
    const permissions = ["--allow-net", `--allow-read=${dir}`, `--allow-write=${dir}`];
    const { proc, adminPort } = await startAdminLb(["--config", path], { permissions });
    await using _proc = proc;
    const fileConfig = async () => {
      const parsed = parseConfigText(await Deno.readTextFile(path));
      assert.ok(parsed.ok);
      return parsed.config;
    };

    assert.equal(
      (await api(adminPort, "PATCH", "/api/backends/1", { body: { weight: 5, state: "drain" } }))
        .status,
      200,
    );
    let config = await fileConfig();
    assert.equal(config.hcFall, 4);
    assert.deepEqual(config.backends[0], {
      addr: { hostname: "127.0.0.1", port: a.port },
      weight: 5,
      state: "drain",
    });
    assert.equal(
      (await api(adminPort, "POST", "/api/backends", { body: { address: c.addr } }))
        .status,
      201,
    );
    assert.equal((await api(adminPort, "DELETE", "/api/backends/2")).status, 200);
    config = await fileConfig();
    assert.deepEqual(config.backends.map((x) => x.addr.port), [a.port, c.port]);
    assert.deepEqual(
      [...Deno.readDirSync(dir)].map((entry) => entry.name),
      ["lb.jsonc"],
      "no temporary file left",
    );

    // A reload reads the file back: the API's changes are still there.
    const mark = proc.stderr.mark;
    proc.kill("SIGHUP");
    await proc.stderr.waitFor(/config applied/, { from: mark });
    const backends = (await api(adminPort, "GET", "/api/backends")).json.backends;
    assert.deepEqual(
      backends.map((x: { address: string; weight: number; state: string }) => [
        x.address,
        x.weight,
        x.state,
      ]),
      [[a.addr, 5, "drain"], [c.addr, 1, "ready"]],
    );

    // A file broken by hand: the API refuses to change it, and says why.
    await Deno.writeTextFile(path, "{ broken");
    const refused = await api(adminPort, "PATCH", "/api/backends/1", { body: { weight: 2 } });
    assert.equal(refused.status, 409);
    assert.match(refused.json.error, /fix it first/);
    assert.equal(await Deno.readTextFile(path), "{ broken");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lb --admin-token: every API request needs the bearer token", async () => {
  await using a = new EchoBackend();
  const { proc, adminPort } = await startAdminLb([
    "127.0.0.1",
    "127.0.0.1",
    String(a.port),
    "--port",
    "0",
    "--admin-token",
    "t0ken",
  ]);
  await using _proc = proc;
  assert.match(proc.stderr.lines.join("\n"), /admin listening on .* \(token required\)/);
  for (const path of ["/api/backends", "/api/connections", "/metrics", "/api/events"]) {
    const refused = await api(adminPort, "GET", path);
    assert.equal(refused.status, 401, path);
    assert.deepEqual(refused.json, { error: "unauthorized" });
    assert.equal((await api(adminPort, "GET", path, { token: "t0ke" })).status, 401, path);
  }
  const ok = await api(adminPort, "GET", "/api/backends", { token: "t0ken" });
  assert.equal(ok.status, 200);
  assert.equal((await api(adminPort, "GET", "/metrics", { token: "t0ken" })).status, 200);
  assert.equal((await api(adminPort, "GET", "/")).status, 200);
});

Deno.test("lb --admin: the token can come from L4CHAT_ADMIN_TOKEN", async () => {
  await using a = new EchoBackend();
  const { proc, adminPort } = await startAdminLb(
    ["127.0.0.1", "127.0.0.1", String(a.port), "--port", "0"],
    {
      env: { L4CHAT_ADMIN_TOKEN: "from-env" },
      permissions: ["--allow-net", "--allow-env=L4CHAT_ADMIN_TOKEN"],
    },
  );
  await using _proc = proc;
  assert.equal((await api(adminPort, "GET", "/api/backends")).status, 401);
  assert.equal((await api(adminPort, "GET", "/api/backends", { token: "from-env" })).status, 200);
});

Deno.test("lb --admin on a non-loopback address without a token exits 2 with one line", async () => {
  await using proc = new L4chat(["lb", "127.0.0.1", "1", "--admin", "0.0.0.0:0"]);
  assert.equal(await proc.exited(), 2);
  assert.equal(proc.stderr.lines.length, 1);
  assert.match(
    proc.stderr.lines[0],
    /^l4chat lb: Cannot serve --admin "0\.0\.0\.0:0" without a token: .*--admin-token/,
  );
});

Deno.test("lb --admin: /api/events streams opens and closes; a stop ends the stream", async () => {
  await using a = new EchoBackend();
  const { proc, port, adminPort } = await startAdminLb([
    "127.0.0.1",
    "127.0.0.1",
    String(a.port),
    "--port",
    "0",
    "--grace",
    "5s",
  ]);
  await using _proc = proc;
  const res = await fetch(`http://127.0.0.1:${adminPort}/api/events`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type")!, /^text\/event-stream/);
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  const next = async (type: string) => {
    while (true) {
      const end = buffer.indexOf("\n\n");
      if (end !== -1) {
        const message = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (message.includes(`event: ${type}\n`)) {
          return JSON.parse(message.split("\n").find((l) => l.startsWith("data: "))!.slice(6));
        }
        continue;
      }
      const { done, value } = await deadline(reader.read(), 5000, `no ${type} event`);
      if (done) return undefined;
      buffer += value;
    }
  };
  const client = await echoClient(port, "ping");
  const opened = await next("open");
  assert.equal(opened.client, `127.0.0.1:${clientPort(client)}`);
  client.conn.close();
  const closed = await next("close");
  assert.equal(closed.id, opened.id);
  assert.equal(closed.bytesUp, 5);
  assert.equal(closed.bytesDown, 5);
  assert.equal(typeof closed.durationMs, "number");
  // A graceful stop ends the event stream and the process.
  proc.kill("SIGTERM");
  assert.equal(await next("never"), undefined);
  assert.equal(await proc.exited(), 0);
  assert.match(proc.stderr.lines.join("\n"), /admin stopped/);
});

Deno.test("lb --log-format json: connection close events carry the access-log facts", async () => {
  await using a = new EchoBackend();
  await using proc = new L4chat([
    "lb",
    "127.0.0.1",
    "127.0.0.1",
    String(a.port),
    "--port",
    "0",
    "--log-format",
    "json",
  ]);
  const listening = await proc.stderr.waitFor(/"message":"load balancer listening on .*:(\d+) /);
  const port = Number(listening[1]);
  const client = await echoClient(port, "json please");
  const local = clientPort(client);
  client.conn.close();
  const line = await proc.stderr.waitFor(/"event":"close"/);
  const record = JSON.parse(line.input!);
  assert.equal(record.level, "info");
  assert.equal(record.category, "l4chat.lb");
  assert.equal(record.message, `client <127.0.0.1,${local}> terminated`);
  assert.equal(record.client, `<127.0.0.1,${local}>`);
  assert.equal(record.backend, a.addr);
  assert.equal(typeof record.durationMs, "number");
  assert.ok(record.durationMs >= 0);
  assert.equal(record.bytesUp, 12);
  assert.equal(record.bytesDown, 12);
  assert.equal(typeof record.time, "string");
  const open = JSON.parse((await proc.stderr.waitFor(/"event":"open"/)).input!);
  assert.equal(open.backend, a.addr);
  // The load balancer's own address toward the backend, found for the JSON line.
  assert.match(open.local, /^127\.0\.0\.1:[1-9]\d*$/);
});
