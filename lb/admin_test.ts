import assert from "node:assert/strict";
import { type Addr, formatAddr } from "../net/mod.ts";
import {
  adminHandler,
  type AdminLb,
  type AdminOptions,
  chooseAdminToken,
  isLoopback,
  timingSafeEqual,
} from "./admin.ts";
import { type BackendConfig, BackendPool, reconcile } from "./backend.ts";
import { defaultConfig, type LbConfig } from "./config.ts";
import { ConfigFileError } from "./config_file.ts";
import { LbMonitor } from "./monitor.ts";
import { NatTable } from "./nat_table.ts";

const addr = (port: number, hostname = "127.0.0.1"): Addr => ({ hostname, port });

/** An admin handler over a load balancer made of the real pool and NAT table, no sockets. */
function setup(
  options: AdminOptions & { balance?: string; backends?: BackendConfig[] } = {},
) {
  let nowMs = 1_000_000;
  let config: LbConfig = defaultConfig(
    addr(20000),
    options.backends ?? [{ addr: addr(10001) }, { addr: addr(10002) }, { addr: addr(10003) }],
  );
  config.balance = options.balance ?? "round-robin";
  const resolve = (c: LbConfig) => c.backends.map((b) => ({ name: formatAddr(b.addr), config: b }));
  const pool = new BackendPool();
  reconcile(pool, resolve(config), nowMs);
  const nat = new NatTable();
  const monitor = new LbMonitor({ nowMs: () => nowMs, keepAliveMs: 0 });
  monitor.watch(pool);
  const closed: { id: number; reason?: string }[] = [];
  const reloads: LbConfig[] = [];
  const close = (id: number, reason?: string) => {
    const row = nat.get(id);
    if (row === undefined || !nat.remove(id)) return false;
    const backend = pool.get(row.backendId)!;
    monitor.hooks.closed?.(row, backend, reason ?? "closed");
    pool.closed(backend, row.bytesUp, row.bytesDown);
    closed.push({ id, reason });
    return true;
  };
  const lb: AdminLb = {
    pool,
    nat,
    get config() {
      return config;
    },
    reload(next) {
      reloads.push(next);
      config = next;
      const result = reconcile(pool, resolve(next), nowMs);
      monitor.hooks.reloaded?.(result);
      return Promise.resolve(result);
    },
    closeConnection: close,
    closeBackendConnections(id, reason) {
      const ids = [...nat.rows()].filter((row) => row.backendId === id).map((row) => row.id);
      for (const rowId of ids) close(rowId, reason);
      return ids.length;
    },
  };
  const handler = adminHandler({ lb, monitor }, options);
  const request = (
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ) =>
    handler(
      new Request(`http://127.0.0.1:8404${path}`, {
        method,
        headers,
        body: body === undefined
          ? undefined
          : typeof body === "string"
          ? body
          : JSON.stringify(body),
      }),
    );
  /** Opens a connection from `client` to backend `id`, as the proxy would. */
  const open = (id: number, client = addr(50000, "192.0.2.1")) => {
    const backend = pool.get(id)!;
    const row = nat.open(
      { client, local: addr(40000 + nat.size), backend: backend.addr, backendId: id },
      nowMs,
    );
    pool.opened(backend);
    monitor.hooks.opened?.(row, backend, 2);
    return row;
  };
  return {
    lb,
    pool,
    nat,
    monitor,
    request,
    open,
    closed,
    reloads,
    advance: (ms: number) => nowMs += ms,
  };
}

async function body(response: Response): Promise<Record<string, unknown>> {
  return await response.json();
}

async function expectError(response: Promise<Response>, status: number, pattern: RegExp) {
  const res = await response;
  assert.equal(res.status, status);
  assert.match(res.headers.get("content-type") ?? "", /application\/json/);
  const { error } = await body(res);
  assert.match(String(error), pattern);
}

/** Reads SSE messages from `stream` until one of `type` arrives; returns its data. */
async function nextEvent(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  type: string,
): Promise<Record<string, unknown>> {
  const decoder = new TextDecoder();
  let buffer = "";
  for (let i = 0; i < 100; i++) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`stream ended before a ${type} event`);
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) !== -1) {
      const message = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (message.includes(`event: ${type}\n`)) {
        return JSON.parse(message.split("\n").find((l) => l.startsWith("data: "))!.slice(6));
      }
    }
  }
  throw new Error(`no ${type} event in 100 chunks`);
}

Deno.test("adminHandler() GET /api/backends lists every backend with its counters", async () => {
  const { request, open, advance } = setup();
  const row = open(2);
  row.bytesUp = 10;
  row.bytesDown = 32;
  advance(5);
  const res = await request("GET", "/api/backends");
  assert.equal(res.status, 200);
  const { balance, backends } = await body(res) as {
    balance: string;
    backends: Record<string, unknown>[];
  };
  assert.equal(balance, "round-robin");
  assert.deepEqual(backends.map((b) => b.address), [
    "127.0.0.1:10001",
    "127.0.0.1:10002",
    "127.0.0.1:10003",
  ]);
  const second = backends[1];
  assert.equal(second.id, 2);
  assert.equal(second.state, "ready");
  assert.equal(second.health, "up");
  assert.equal(second.weight, 1);
  assert.equal(second.active, 1);
  assert.equal(second.total, 1);
  assert.equal(second.bytesUp, 10);
  assert.equal(second.bytesDown, 32);
  assert.equal(second.failures, 0);
  assert.equal(second.lastCheck, null);
  assert.deepEqual((await body(await request("GET", "/api/backends/2"))).id, 2);
  await expectError(request("GET", "/api/backends/9"), 404, /No backend 9/);
});

Deno.test("adminHandler() GET /api/connections returns rows, filtered and limited", async () => {
  const { request, open, advance } = setup();
  const first = open(1, addr(50001, "192.0.2.1"));
  open(2, addr(50002, "192.0.2.2"));
  open(2, addr(50003, "192.0.2.3"));
  advance(1000);
  first.bytesUp = 5;
  first.upDone = true;
  const all = await body(await request("GET", "/api/connections"));
  assert.equal(all.total, 3);
  assert.equal(all.matched, 3);
  const rows = all.connections as Record<string, unknown>[];
  assert.deepEqual(rows[0], {
    id: 1,
    client: "192.0.2.1:50001",
    local: "127.0.0.1:40000",
    backend: "127.0.0.1:10001",
    backendId: 1,
    openedAtMs: 1_000_000,
    ageMs: 1000,
    idleMs: 0,
    bytesUp: 5,
    bytesDown: 0,
    state: "client-done",
  });
  assert.equal(rows[1].idleMs, 1000);
  const ids = async (query: string) =>
    ((await body(await request("GET", `/api/connections${query}`))).connections as {
      id: number;
    }[]).map((row) => row.id);
  assert.deepEqual(await ids("?backend=2"), [2, 3]);
  assert.deepEqual(await ids("?backend=127.0.0.1:10001"), [1]);
  assert.deepEqual(await ids("?client=192.0.2.3"), [3]);
  assert.deepEqual(await ids("?backend=2&limit=1"), [2]);
  assert.deepEqual(await ids("?backend=7"), []);
  assert.equal((await body(await request("GET", "/api/connections/2"))).client, "192.0.2.2:50002");
  await expectError(request("GET", "/api/connections?limit=0"), 400, /\?limit "0"/);
  await expectError(request("GET", "/api/connections?limit=abc"), 400, /whole number/);
  await expectError(request("GET", "/api/connections/77"), 404, /No connection 77/);
});

Deno.test("adminHandler() DELETE /api/connections closes one or a backend's", async () => {
  const { request, open, closed } = setup();
  open(1);
  open(2);
  open(2);
  const one = await request("DELETE", "/api/connections/1");
  assert.equal(one.status, 200);
  assert.deepEqual(await body(one), { closed: 1 });
  assert.deepEqual(closed, [{ id: 1, reason: "closed by admin" }]);
  await expectError(request("DELETE", "/api/connections/1"), 404, /No connection 1/);
  await expectError(request("DELETE", "/api/connections/x1"), 400, /connection id "x1"/);
  await expectError(request("DELETE", "/api/connections"), 400, /\?backend=/);
  await expectError(request("DELETE", "/api/connections?backend=9"), 404, /No backend 9/);
  const many = await request("DELETE", "/api/connections?backend=2");
  assert.deepEqual(await body(many), { closed: 2, spreadMs: 0 });
  assert.deepEqual(closed.map((c) => c.id), [1, 2, 3]);
});

Deno.test("adminHandler() POST /api/backends adds a backend through a reload", async () => {
  const { request, reloads, pool } = setup();
  const res = await request("POST", "/api/backends", {
    address: "127.0.0.1:10004",
    weight: 3,
    state: "maint",
    maxconn: 5,
    "send-proxy": "v2",
  });
  assert.equal(res.status, 201);
  const { backends } = await body(res) as { backends: Record<string, unknown>[] };
  assert.equal(backends[0].id, 4);
  assert.equal(backends[0].state, "maint");
  assert.equal(reloads.length, 1);
  assert.deepEqual(reloads[0].backends[3], {
    addr: addr(10004),
    weight: 3,
    state: "maint",
    maxConn: 5,
    sendProxy: 2,
  });
  assert.equal(pool.all().length, 4);
  await expectError(
    request("POST", "/api/backends", { address: "127.0.0.1:10004" }),
    409,
    /already configured/,
  );
  await expectError(request("POST", "/api/backends", { address: "nope" }), 400, /host:port/);
  await expectError(request("POST", "/api/backends", {}), 400, /Missing "address"/);
  await expectError(
    request("POST", "/api/backends", { address: "127.0.0.1:1", weight: 0 }),
    400,
    /weight "0": expected 1\.\.1000/,
  );
  await expectError(
    request("POST", "/api/backends", { address: "127.0.0.1:1", colour: "red" }),
    400,
    /Unknown key "colour"/,
  );
  await expectError(
    request("POST", "/api/backends", { address: "127.0.0.1:1", "send-proxy": "v3" }),
    400,
    /v1 or v2/,
  );
  await expectError(request("POST", "/api/backends", "{not json"), 400, /expected a JSON object/);
  await expectError(request("POST", "/api/backends", "[1]"), 400, /expected a JSON object/);
  await expectError(request("POST", "/api/backends", "null"), 400, /expected a JSON object/);
  await expectError(request("POST", "/api/backends", ""), 400, /expected a JSON object/);
  await expectError(
    request("POST", "/api/backends", { address: "x".repeat(70 * 1024) }),
    413,
    /Body over 65536 bytes/,
  );
  assert.equal(reloads.length, 1);
});

Deno.test("adminHandler() PATCH /api/backends/<id> sets weight and state", async () => {
  const { request, pool, reloads } = setup();
  const res = await request("PATCH", "/api/backends/2", { weight: "4", state: "drain" });
  assert.equal(res.status, 200);
  const view = await body(res);
  assert.equal(view.weight, 4);
  assert.equal(view.state, "drain");
  assert.equal(pool.get(2)!.state, "drain");
  assert.deepEqual(reloads.at(-1)!.backends[1], { addr: addr(10002), weight: 4, state: "drain" });
  assert.equal(
    (await body(await request("PATCH", "/api/backends/2", { state: "ready" }))).state,
    "ready",
  );
  await expectError(request("PATCH", "/api/backends/2", {}), 400, /Give weight, state or maxconn/);
  await expectError(request("PATCH", "/api/backends/2", { state: "off" }), 400, /state "off"/);
  await expectError(request("PATCH", "/api/backends/2", { weight: [1] }), 400, /expected a value/);
  await expectError(request("PATCH", "/api/backends/2", { weight: 2.5 }), 400, /whole number/);
  await expectError(
    request("PATCH", "/api/backends/2", { weight: 2, deadlineMs: 10 }),
    400,
    /go with "state": "drain"/,
  );
  await expectError(request("PATCH", "/api/backends/9", { weight: 2 }), 404, /No backend 9/);
  await expectError(request("PATCH", "/api/backends/0", { weight: 2 }), 400, /backend id "0"/);
});

Deno.test("adminHandler() a drain deadline closes the backend's remaining connections", async () => {
  const { request, open, closed, monitor } = setup();
  open(1);
  open(3);
  open(3);
  const events = monitor.events.subscribe().getReader();
  const res = await request("PATCH", "/api/backends/3", { state: "drain", deadlineMs: 1 });
  assert.equal(res.status, 200);
  assert.equal(typeof (await body(res)).drainDeadlineMs, "number");
  const event = await nextEvent(events, "drain-deadline");
  assert.equal(event.id, 3);
  assert.equal(event.closed, 2);
  assert.deepEqual(closed.map((c) => [c.id, c.reason]), [[2, "drain deadline"], [
    3,
    "drain deadline",
  ]]);
  await events.cancel();
});

Deno.test("adminHandler() a drain deadline is cancelled by ready and by the signal", async () => {
  const controller = new AbortController();
  const { request, open, closed } = setup({ signal: controller.signal });
  open(1);
  await request("PATCH", "/api/backends/1", { state: "drain", deadlineMs: 60_000 });
  const ready = await body(await request("PATCH", "/api/backends/1", { state: "ready" }));
  assert.equal(ready.drainDeadlineMs, null);
  await request("PATCH", "/api/backends/1", { state: "drain", deadlineMs: 60_000 });
  controller.abort();
  assert.equal((await body(await request("GET", "/api/backends/1"))).drainDeadlineMs, null);
  assert.deepEqual(closed, []);
});

Deno.test("adminHandler() DELETE /api/backends/<id> drains then removes", async () => {
  const { request, open, pool, nat, reloads, lb } = setup();
  open(2);
  const res = await request("DELETE", "/api/backends/2");
  assert.equal(res.status, 200);
  assert.deepEqual(await body(res), { id: 2, removed: true, draining: 1, gone: false });
  assert.equal(pool.get(2)!.removing, true);
  assert.deepEqual(reloads.at(-1)!.backends.map((b) => b.addr.port), [10001, 10003]);
  await expectError(request("DELETE", "/api/backends/2"), 409, /being removed/);
  await expectError(request("PATCH", "/api/backends/2", { weight: 2 }), 409, /being removed/);
  lb.closeConnection([...nat.rows()][0].id);
  assert.equal(pool.get(2), undefined);
  assert.deepEqual(await body(await request("DELETE", "/api/backends/3")), {
    id: 3,
    removed: true,
    draining: 0,
    gone: true,
  });
  await expectError(request("DELETE", "/api/backends/1"), 409, /last backend/);
});

Deno.test("adminHandler() GET /api/backends/<id>/impact previews a removal or a reweight", async () => {
  for (const balance of ["maglev", "source-hash"]) {
    const { request, open } = setup({ balance });
    open(1, addr(1, "192.0.2.1"));
    open(1, addr(2, "192.0.2.1"));
    open(1, addr(3, "192.0.2.9"));
    const removal = await body(await request("GET", "/api/backends/1/impact"));
    assert.equal(removal.change, "remove");
    assert.equal(removal.connections, 3);
    assert.equal(removal.clients, 2);
    const share = removal.movedShare as number;
    assert.ok(share > 0.2 && share < 0.5, `${balance}: ${share}`);
    const reweight = await body(await request("GET", "/api/backends/1/impact?weight=2"));
    assert.equal(reweight.change, "reweight");
    assert.equal(reweight.newWeight, 2);
    assert.ok((reweight.movedShare as number) > 0);
    const same = await body(await request("GET", "/api/backends/1/impact?weight=1"));
    assert.equal(same.movedShare, 0);
  }
  const { request } = setup();
  const roundRobin = await body(await request("GET", "/api/backends/1/impact"));
  assert.equal(roundRobin.movedShare, null);
  assert.match(String(roundRobin.note), /does not pin clients/);
  await expectError(request("GET", "/api/backends/1/impact?weight=0"), 400, /\?weight/);
  await expectError(request("GET", "/api/backends/5/impact"), 404, /No backend 5/);
});

Deno.test("adminHandler() GET /metrics is Prometheus text that follows the hooks", async () => {
  const { request, open, lb, monitor, pool } = setup();
  const row = open(1);
  row.bytesUp = 7;
  monitor.hooks.checked?.(pool.get(1)!, true);
  monitor.hooks.refused?.(addr(1, "192.0.2.1"), "max-conns");
  lb.closeConnection(row.id);
  const res = await request("GET", "/metrics");
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  assert.match(text, /^l4chat_connections_opened_total\{backend="127\.0\.0\.1:10001"\} 1$/m);
  assert.match(text, /^l4chat_connections_closed_total\{backend="127\.0\.0\.1:10001"\} 1$/m);
  assert.match(
    text,
    /^l4chat_bytes_total\{backend="127\.0\.0\.1:10001",direction="up"\} 7$/m,
  );
  assert.match(text, /^l4chat_refused_total\{reason="max-conns"\} 1$/m);
  assert.match(
    text,
    /^l4chat_health_checks_total\{backend="127\.0\.0\.1:10001",result="ok"\} 1$/m,
  );
  assert.match(
    text,
    /^l4chat_backend_connect_seconds_bucket\{backend="127\.0\.0\.1:10001",le="0\.0025"\} 1$/m,
  );
  assert.match(
    text,
    /^l4chat_connection_duration_seconds_count\{backend="127\.0\.0\.1:10001"\} 1$/m,
  );
});

Deno.test("adminHandler() GET /api/events streams connection events", async () => {
  const { request, open, lb } = setup();
  const res = await request("GET", "/api/events");
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type")!, /^text\/event-stream/);
  const reader = res.body!.getReader();
  const row = open(2, addr(50123, "192.0.2.5"));
  const opened = await nextEvent(reader, "open");
  assert.equal(opened.id, row.id);
  assert.equal(opened.client, "192.0.2.5:50123");
  lb.closeConnection(row.id);
  const closed = await nextEvent(reader, "close");
  assert.equal(closed.reason, "closed");
  assert.equal(typeof closed.durationMs, "number");
  await request("PATCH", "/api/backends/2", { state: "maint" });
  const changed = await nextEvent(reader, "backend");
  assert.equal(changed.state, "maint");
  await reader.cancel();
  const recent = await body(await request("GET", "/api/events/recent"));
  assert.ok((recent.events as unknown[]).length >= 3);
});

Deno.test("adminHandler() with a token refuses requests without it", async () => {
  const { request } = setup({ token: "s3cret" });
  const attempts: Record<string, string>[] = [
    {},
    { authorization: "Bearer wrong" },
    { authorization: "s3cret" },
  ];
  for (const headers of attempts) {
    const res = await request("GET", "/api/backends", undefined, headers);
    assert.equal(res.status, 401);
    assert.equal(res.headers.get("www-authenticate"), "Bearer");
    assert.deepEqual(await body(res), { error: "unauthorized" });
  }
  await expectError(request("GET", "/metrics"), 401, /unauthorized/);
  await expectError(request("GET", "/api/events"), 401, /unauthorized/);
  await expectError(request("GET", "/api/events?token=s3cret"), 401, /unauthorized/);
  const ok = await request("GET", "/api/backends", undefined, { authorization: "Bearer s3cret" });
  assert.equal(ok.status, 200);
  await ok.body?.cancel();
  // The page itself holds no data: it asks for the token.
  const page = await request("GET", "/");
  assert.equal(page.status, 200);
  assert.match(await page.text(), /Admin token/);
});

Deno.test("adminHandler() without a token serves everything", async () => {
  const { request } = setup();
  const page = await request("GET", "/");
  assert.match(page.headers.get("content-type")!, /^text\/html/);
  assert.match(page.headers.get("content-security-policy")!, /default-src 'none'/);
  assert.match(await page.text(), /<title>l4chat lb<\/title>/);
  const head = await request("HEAD", "/");
  assert.equal(head.status, 200);
  await expectError(request("POST", "/"), 405, /Method POST not allowed/);
  const put = await request("PUT", "/api/backends");
  assert.equal(put.headers.get("allow"), "GET, POST");
  await put.body?.cancel();
  await expectError(request("GET", "/api/nothing"), 404, /No route \/api\/nothing/);
  await expectError(request("GET", "/api/backends/1/impact/more"), 404, /No route/);
  await expectError(request("GET", "/etc/passwd"), 404, /No route/);
  await expectError(request("GET", "/api/backends/99999999999999999999"), 400, /backend id/);
});

Deno.test("adminHandler() writes changes through saveConfig before reloading", async () => {
  let file = defaultConfig(addr(20000), [{ addr: addr(10001) }, { addr: addr(10002) }]);
  const saved: LbConfig[] = [];
  let broken = false;
  const { request, reloads } = setup({
    saveConfig: (change) => {
      if (broken) return Promise.reject(new ConfigFileError("Cannot change lb.jsonc: bad"));
      file = change(file);
      saved.push(file);
      return Promise.resolve(file);
    },
    backends: [{ addr: addr(10001) }, { addr: addr(10002) }],
  });
  await request("PATCH", "/api/backends/1", { weight: 9 });
  assert.equal(saved.length, 1);
  assert.equal(saved[0].backends[0].weight, 9);
  assert.equal(reloads[0], saved[0]);
  broken = true;
  await expectError(request("PATCH", "/api/backends/1", { weight: 8 }), 409, /lb\.jsonc: bad/);
  assert.equal(reloads.length, 1);
});

Deno.test("timingSafeEqual() compares whole strings", () => {
  const cases: [string, string, boolean][] = [
    ["abc", "abc", true],
    ["abd", "abc", false],
    ["ab", "abc", false],
    ["abcd", "abc", false],
    ["", "abc", false],
    ["", "", true],
    ["ключ", "ключ", true],
    ["ключ", "клюк", false],
  ];
  for (const [given, expected, equal] of cases) {
    assert.equal(timingSafeEqual(given, expected), equal, `${given} vs ${expected}`);
  }
});

Deno.test("isLoopback() accepts loopback addresses only", () => {
  for (const host of ["127.0.0.1", "127.1.2.3", "::1", "localhost", "::ffff:127.0.0.1"]) {
    assert.equal(isLoopback(host), true, host);
  }
  for (
    const host of ["0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "example.com", "127.0.0.1.nip.io"]
  ) {
    assert.equal(isLoopback(host), false, host);
  }
});

Deno.test("chooseAdminToken() prefers the flag, then the environment", () => {
  assert.deepEqual(chooseAdminToken("flag", () => "env"), { token: "flag" });
  assert.deepEqual(chooseAdminToken(undefined, () => "env"), { token: "env" });
  assert.deepEqual(chooseAdminToken(undefined, () => ""), {});
  assert.deepEqual(chooseAdminToken(undefined, () => undefined), {});
  assert.deepEqual(
    chooseAdminToken(undefined, () => {
      throw new Error("Requires env access");
    }),
    { envError: "Requires env access" },
  );
});
