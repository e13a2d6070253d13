/**
 * End-to-end tests of `l4chat lb` in production use: connection limits, idle timeout and
 * maximum lifetime, drain, config file reload under load, `--check`, graceful stop, host
 * names and IPv6. Real processes on loopback; every wait is bounded.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  closedEmpty,
  connectFrom,
  connectGreeted,
  deadline,
  EchoBackend,
  L4chat,
  RawClient,
  runLb,
  startLb,
} from "./_helpers.ts";

/** `lb --config` reads (and watches) its file. */
/**
 * What lb --config needs: the network, and reading the config file's directory, which it
 * watches so that a file renamed over the config is seen (reading the file alone is enough
 * to run; see tests/faults_test.ts).
 */
function configPermissions(path: string): string[] {
  return ["--allow-net", `--allow-read=${path.slice(0, path.lastIndexOf("/"))}`];
}

/** The client's local port, as the load balancer logs it in `<ip,port>`. */
function localPort(client: RawClient): number {
  return (client.conn.localAddr as Deno.NetAddr).port;
}

/** Sends a line and expects it echoed back. */
async function echoes(client: RawClient, line: string): Promise<void> {
  await client.send(`${line}\n`);
  assert.equal(await client.readLine(5000), line);
}

/** Lines that betray an uncaught error. */
const STACK_TRACE = /^\s+at |Uncaught|^error: /;

Deno.test("lb --max-conns closes the client over the limit at once; the others keep working", async () => {
  await using backend = new EchoBackend("a");
  const { proc: lb, port } = await startLb([backend.port], ["--max-conns", "2"]);
  await using _lb = lb;
  const [first] = await connectGreeted(port);
  using _first = first;
  const [second] = await connectGreeted(port);
  using _second = second;
  using over = await RawClient.connect(port);
  assert.equal(await closedEmpty(over), true);
  await lb.stderr.waitFor(
    new RegExp(`client <127\\.0\\.0\\.1,${localPort(over)}> refused: max-conns$`),
  );
  await echoes(first, "first still here");
  await echoes(second, "second still here");
  // A place frees up when a client leaves.
  first[Symbol.dispose]();
  await lb.stderr.waitFor(new RegExp(`client <127\\.0\\.0\\.1,${localPort(first)}> terminated$`));
  const [third, name] = await connectGreeted(port);
  using _third = third;
  assert.equal(name, "a");
  await echoes(third, "third gets in");
});

Deno.test("lb --max-conns-per-ip limits one client IP, not the others", async () => {
  await using backend = new EchoBackend("a");
  const { proc: lb, port } = await startLb([backend.port], ["--max-conns-per-ip", "1"]);
  await using _lb = lb;
  const [first] = await connectGreeted(port);
  using _first = first;
  using over = await RawClient.connect(port);
  assert.equal(await closedEmpty(over), true);
  await lb.stderr.waitFor(
    new RegExp(`client <127\\.0\\.0\\.1,${localPort(over)}> refused: max-conns-per-ip$`),
  );
  // Another client IP has its own allowance.
  const other = await connectFrom("127.0.0.2", port);
  try {
    const lines: string[] = [];
    let pending = "";
    const got = new Promise<void>((resolve) => {
      other.on("data", (chunk) => {
        pending += String(chunk);
        while (pending.includes("\n")) {
          lines.push(pending.slice(0, pending.indexOf("\n")));
          pending = pending.slice(pending.indexOf("\n") + 1);
          if (lines.length === 2) resolve();
        }
      });
    });
    other.write("from 127.0.0.2\n");
    await deadline(got, 5000, "no greeting and echo for 127.0.0.2");
    assert.deepEqual(lines, ["a", "from 127.0.0.2"]);
    await lb.stderr.waitFor(/client <127\.0\.0\.2,\d+> -> 127\.0\.0\.1:\d+$/);
  } finally {
    other.destroy();
  }
  await echoes(first, "first still here");
  assert.equal(lb.stderr.count(/refused/), 1);
});

Deno.test("lb per-backend maxconn sends the next clients to another backend", async () => {
  await using a = new EchoBackend("a");
  await using b = new EchoBackend("b");
  const { proc: lb, port } = await startLb([`${a.port},maxconn=1`, b.port]);
  await using _lb = lb;
  const clients: RawClient[] = [];
  try {
    const names: string[] = [];
    for (let i = 0; i < 4; i++) {
      const [client, name] = await connectGreeted(port);
      clients.push(client);
      names.push(name);
    }
    // Round robin would give a every other client; a holds one at most.
    assert.deepEqual(names.toSorted(), ["a", "b", "b", "b"]);
    const holder = clients[names.indexOf("a")];
    await echoes(holder, "a's only client");
    holder[Symbol.dispose]();
    await lb.stderr.waitFor(
      new RegExp(`client <127\\.0\\.0\\.1,${localPort(holder)}> terminated$`),
    );
    // Room again at a: one of the next two clients (round robin) gets it.
    const next: string[] = [];
    for (let i = 0; i < 2; i++) {
      const [client, name] = await connectGreeted(port);
      clients.push(client);
      next.push(name);
    }
    assert.ok(next.includes("a"), next.join(","));
  } finally {
    for (const client of clients) client[Symbol.dispose]();
  }
});

Deno.test("lb --idle-timeout closes an idle tunnel but not one with steady traffic", async () => {
  await using backend = new EchoBackend("a");
  const { proc: lb, port } = await startLb([backend.port], ["--idle-timeout", "300ms"]);
  await using _lb = lb;
  const [idle] = await connectGreeted(port);
  using _idle = idle;
  const [busy] = await connectGreeted(port);
  using _busy = busy;
  let pumping = true;
  let echoed = 0;
  const pump = (async () => {
    while (pumping) {
      await echoes(busy, `tick ${echoed}`);
      echoed++;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  try {
    assert.equal(await idle.closedByPeer(5000), true);
    await lb.stderr.waitFor(new RegExp(`client <127\\.0\\.0\\.1,${localPort(idle)}> terminated$`));
    // Its NAT row is gone: the line after says one row is left.
    const index = lb.stderr.lines.findIndex((line) =>
      line.endsWith(`client <127.0.0.1,${localPort(idle)}> terminated`)
    );
    await lb.stderr.waitFor(/Current NAT table length/, { from: index + 1 });
    assert.match(lb.stderr.lines[index + 1], /^.* {3}Current NAT table length : 1$/);
    // The busy tunnel lives on for three more idle timeouts' worth of ticks.
    const target = echoed + 18;
    await deadline(
      (async () => {
        while (echoed < target) await new Promise((resolve) => setTimeout(resolve, 50));
      })(),
      10_000,
      "the busy tunnel stalled",
    );
  } finally {
    pumping = false;
    await pump;
  }
  await echoes(busy, "still open");
  assert.equal(lb.stderr.count(new RegExp(`<127\\.0\\.0\\.1,${localPort(busy)}> terminated`)), 0);
});

Deno.test("lb --max-lifetime closes even a busy connection once it is old enough", async () => {
  await using backend = new EchoBackend("a");
  const { proc: lb, port } = await startLb([backend.port], ["--max-lifetime", "500ms"]);
  await using _lb = lb;
  const started = performance.now();
  const [client] = await connectGreeted(port);
  using _client = client;
  // Keep it busy: lifetime, not idleness, must close it.
  let closed = false;
  try {
    while (true) {
      await client.send("ping\n");
      if ((await client.readLine(5000)) === null) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.ConnectionReset || err instanceof Deno.errors.BrokenPipe)) {
      throw err;
    }
  }
  closed = true;
  const elapsed = performance.now() - started;
  assert.ok(closed);
  // Never before the lifetime; the 20% jitter bound is tested in lb/nat_table_test.ts.
  assert.ok(elapsed >= 500, `closed after ${elapsed} ms`);
  await lb.stderr.waitFor(new RegExp(`client <127\\.0\\.0\\.1,${localPort(client)}> terminated$`));
});

/** A temporary config file for one test. */
class ConfigFile implements AsyncDisposable {
  readonly dir: string;
  readonly path: string;

  private constructor(dir: string) {
    this.dir = dir;
    this.path = `${dir}/l4chat.jsonc`;
  }

  static async create(text: string): Promise<ConfigFile> {
    const file = new ConfigFile(await Deno.makeTempDir({ prefix: "l4chat-lb-" }));
    await file.write(text);
    return file;
  }

  async write(text: string): Promise<void> {
    await Deno.writeTextFile(this.path, text);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Deno.remove(this.dir, { recursive: true });
  }
}

/** A config file's text: listen on 127.0.0.1 port 0, these backends. */
function configText(backends: unknown[], extra = ""): string {
  return `// written by tests/lb_prod_test.ts
{
  "listen": "127.0.0.1:0",${extra}
  "backends": ${JSON.stringify(backends, null, 2)},
}
`;
}

Deno.test("lb --config: a backend set to drain by a reload keeps its connection; new clients avoid it", async () => {
  await using a = new EchoBackend("a");
  await using b = new EchoBackend("b");
  await using file = await ConfigFile.create(configText([a.addr, b.addr]));
  const { proc: lb, port } = await runLb(["--config", file.path], {
    permissions: configPermissions(file.path),
  });
  await using _lb = lb;
  const [held, heldName] = await connectGreeted(port);
  using _held = held;
  const [drained, other] = heldName === "a" ? [a, b] : [b, a];
  await file.write(configText([
    { address: drained.addr, state: "drain" },
    { address: other.addr },
  ]));
  const mark = lb.stderr.mark;
  lb.kill("SIGHUP");
  await lb.stderr.waitFor(/config applied: 2 servers \(0 added, 0 removed\)$/, { from: mark });
  const clients: RawClient[] = [];
  try {
    for (let i = 0; i < 4; i++) {
      const [client, name] = await connectGreeted(port);
      clients.push(client);
      assert.equal(name, other.name, `client ${i} went to the drained backend`);
    }
    await echoes(held, "still served while draining");
  } finally {
    for (const client of clients) client[Symbol.dispose]();
  }
});

/** Reads a greeting line from `conn` byte by byte, so that no echoed byte is consumed. */
async function readGreeting(conn: Deno.TcpConn): Promise<string> {
  const byte = new Uint8Array(1);
  let line = "";
  while (true) {
    const n = await conn.read(byte);
    if (n === null) throw new Error(`closed after "${line}"`);
    const c = String.fromCharCode(byte[0]);
    if (c === "\n") return line;
    line += c;
  }
}

const TRANSFER_BYTES = 64 * 1024 * 1024;
const CHUNK_BYTES = 64 * 1024;

Deno.test("lb --config reload during a 64 MiB transfer: byte-exact, removed backend drained, bad config refused", async () => {
  await using a = new EchoBackend("a");
  await using b = new EchoBackend("b");
  await using c = new EchoBackend("c");
  await using file = await ConfigFile.create(configText([a.addr, b.addr]));
  const { proc: lb, port } = await runLb(["--config", file.path], {
    permissions: configPermissions(file.path),
  });
  await using _lb = lb;

  // Round robin: the transfer goes to a, a held connection to b.
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    assert.equal(await deadline(readGreeting(conn), 5000, "no greeting"), "a");
    const [held, heldName] = await connectGreeted(port);
    using _held = held;
    assert.equal(heldName, "b");

    const sent = createHash("sha256");
    const received = createHash("sha256");
    let receivedBytes = 0;
    let halfEchoed!: () => void;
    const half = new Promise<void>((resolve) => halfEchoed = resolve);
    const reading = (async () => {
      const buf = new Uint8Array(CHUNK_BYTES);
      let n;
      while ((n = await conn.read(buf)) !== null) {
        received.update(buf.subarray(0, n));
        receivedBytes += n;
        if (receivedBytes >= TRANSFER_BYTES / 2) halfEchoed();
      }
    })();
    let reloaded!: () => void;
    const reloadDone = new Promise<void>((resolve) => reloaded = resolve);
    const writing = (async () => {
      const chunk = new Uint8Array(CHUNK_BYTES);
      for (let offset = 0; offset < TRANSFER_BYTES; offset += CHUNK_BYTES) {
        // The second half waits for the reload, so the reload lands mid-transfer.
        if (offset === TRANSFER_BYTES / 2) await reloadDone;
        crypto.getRandomValues(chunk);
        sent.update(chunk);
        let written = 0;
        while (written < chunk.length) written += await conn.write(chunk.subarray(written));
      }
      await conn.closeWrite();
    })();
    const transfer = Promise.all([reading, writing]);
    transfer.catch(() => {}); // awaited below; a failure must not go unhandled meanwhile

    await deadline(half, 60_000, "half the transfer did not come back");
    // A valid change: b removed, c added. The file watch may notice it too; either way one
    // reload applies it.
    await file.write(configText([a.addr, c.addr]));
    lb.kill("SIGHUP");
    await lb.stderr.waitFor(/config applied: 3 servers \(1 added, 1 removed\)$/);
    await lb.stderr.waitFor(
      new RegExp(`server 127\\.0\\.0\\.1:${b.port} removed: draining 1 connections$`),
    );
    await lb.stderr.waitFor(new RegExp(`server ip :127\\.0\\.0\\.1 port : ${c.port} operating$`));
    reloaded();

    // b keeps its connection but gets no new one.
    await echoes(held, "b drains, still served");
    const names: string[] = [];
    for (let i = 0; i < 4; i++) {
      const [client, name] = await connectGreeted(port);
      names.push(name);
      client[Symbol.dispose]();
    }
    assert.deepEqual(names.toSorted(), ["a", "a", "c", "c"]);

    await deadline(transfer, 120_000, "the transfer did not finish");
    assert.equal(receivedBytes, TRANSFER_BYTES);
    assert.equal(received.digest("hex"), sent.digest("hex"));
    // b leaves the pool with its last connection.
    held[Symbol.dispose]();
    await lb.stderr.waitFor(new RegExp(`server 127\\.0\\.0\\.1:${b.port} drained: removed$`));

    // An invalid config is refused; the running one stays.
    const mark = lb.stderr.mark;
    await file.write(configText([a.addr, { address: c.addr, weight: 0 }], '\n  "colour": 1,'));
    lb.kill("SIGHUP");
    await lb.stderr.waitFor(
      /config .*l4chat\.jsonc refused \((SIGHUP|file changed)\): keeping the running config$/,
      { from: mark },
    );
    assert.ok(lb.stderr.count(/l4chat\.jsonc:4:13: colour: unknown setting/, mark) >= 1);
    assert.ok(
      lb.stderr.count(
        /l4chat\.jsonc:\d+:\d+: backends\[1\]\.weight: Cannot use weight "0"/,
        mark,
      ) >= 1,
    );
    const after: string[] = [];
    for (let i = 0; i < 2; i++) {
      const [client, name] = await connectGreeted(port);
      await echoes(client, "traffic still flows");
      after.push(name);
      client[Symbol.dispose]();
    }
    assert.deepEqual(after.toSorted(), ["a", "c"]);
    assert.equal(lb.stderr.count(STACK_TRACE), 0, lb.stderr.lines.join("\n"));
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
});

Deno.test("lb --config FILE --check prints every problem as file:line:col: path: message, exit 2", async () => {
  await using file = await ConfigFile.create(`{
  "listen": "127.0.0.1:0",
  "max-conns": "lots",
  "backends": [
    "127.0.0.1:10010",
    { "address": "127.0.0.1:10011", "state": "sleeping" },
    "127.0.0.1:10010",
  ],
}
`);
  await using check = new L4chat(["lb", "--config", file.path, "--check"], {
    permissions: configPermissions(file.path),
  });
  assert.equal(await check.exited(), 2);
  assert.deepEqual(check.stderr.lines, [
    `${file.path}:3:16: max-conns: Cannot parse max-conns "lots": expected a whole number`,
    `${file.path}:6:46: backends[1].state: expected ready, drain, maint`,
    `${file.path}:7:5: backends[2]: duplicate backend 127.0.0.1:10010`,
  ]);
  assert.deepEqual(check.stdout.lines, []);

  // Started for real, the same file stops it with the same lines, and no stack trace.
  await using run = new L4chat(["lb", "--config", file.path], {
    permissions: configPermissions(file.path),
  });
  assert.equal(await run.exited(), 2);
  assert.equal(run.stderr.lines.length, 3);
  assert.match(run.stderr.lines[0], /^l4chat lb: .*:3:16: max-conns: /);

  await file.write(configText(["127.0.0.1:10010", { address: "[::1]:10011", weight: 2 }]));
  await using good = new L4chat(["lb", "--config", file.path, "--check"], {
    permissions: configPermissions(file.path),
  });
  assert.equal(await good.exited(), 0);
  assert.deepEqual(good.stdout.lines, [`${file.path}: OK (2 backends)`]);
  assert.deepEqual(good.stderr.lines, []);
});

Deno.test("lb --config with a missing file or a bad JSONC file says so on one line, exit 2", async () => {
  await using file = await ConfigFile.create('{\n  "backends": [\n    "127.0.0.1:1"\n  \n');
  const cases: [string[], RegExp][] = [
    [
      ["--config", `${file.dir}/nope.jsonc`, "--check"],
      /^Cannot read .*nope\.jsonc: no such file$/,
    ],
    [["--config", file.path, "--check"], /l4chat\.jsonc:5:1: expected "," or "\]"$/],
    [
      ["--config", file.path, "--max-conns", "x"],
      /^l4chat lb: Cannot parse --max-conns "x": expected a whole number$/,
    ],
  ];
  for (const [args, line] of cases) {
    await using lb = new L4chat(["lb", ...args], {
      permissions: configPermissions(args[args.indexOf("--config") + 1]),
    });
    assert.equal(await lb.exited(), 2, args.join(" "));
    assert.match(lb.stderr.lines[0], line);
    assert.equal(lb.stderr.count(STACK_TRACE), 0, lb.stderr.lines.join("\n"));
  }
});

Deno.test("lb graceful stop: SIGTERM refuses new clients, lets the open one finish until --grace, exit 0", async () => {
  await using backend = new EchoBackend("a");
  const { proc: lb, port } = await startLb([backend.port], ["--grace", "500ms"]);
  await using _lb = lb;
  const [client] = await connectGreeted(port);
  using _client = client;
  const signalled = performance.now();
  lb.kill("SIGTERM");
  await lb.stderr.waitFor(/waiting up to 500 ms for 1 connections to finish$/);
  await echoes(client, "still served during the grace period");
  await assert.rejects(
    deadline(Deno.connect({ hostname: "127.0.0.1", port }), 5000, "connect hung"),
    Deno.errors.ConnectionRefused,
  );
  assert.equal(await client.closedByPeer(5000), true);
  assert.ok(performance.now() - signalled >= 500, "closed before the grace period ended");
  assert.equal(await lb.exited(), 0);
  await lb.stderr.waitFor(/grace period over: closing 1 connections/);
  await lb.stderr.waitFor(/load balancer stopped$/);
  assert.equal(lb.stderr.count(STACK_TRACE), 0, lb.stderr.lines.join("\n"));
});

Deno.test("lb graceful stop: a connection that ends within the grace period lets lb exit at once", async () => {
  await using backend = new EchoBackend("a");
  const { proc: lb, port } = await startLb([backend.port], ["--grace", "30s"]);
  await using _lb = lb;
  const [client] = await connectGreeted(port);
  lb.kill("SIGTERM");
  await lb.stderr.waitFor(/waiting up to 30000 ms for 1 connections to finish$/);
  client[Symbol.dispose]();
  assert.equal(await lb.exited(5000), 0);
  assert.equal(lb.stderr.count(/grace period over/), 0);
});

Deno.test("lb graceful stop: a second SIGTERM stops at once", async () => {
  await using backend = new EchoBackend("a");
  const { proc: lb, port } = await startLb([backend.port], ["--grace", "30s"]);
  await using _lb = lb;
  const [client] = await connectGreeted(port);
  using _client = client;
  lb.kill("SIGTERM");
  await lb.stderr.waitFor(/waiting up to 30000 ms/);
  lb.kill("SIGTERM");
  assert.equal(await lb.exited(5000), 0);
  assert.equal(await client.closedByPeer(5000), true);
  await lb.stderr.waitFor(/SIGTERM again: stopping now$/);
  assert.equal(lb.stderr.count(STACK_TRACE), 0, lb.stderr.lines.join("\n"));
});

Deno.test("lb resolves a backend host name and makes each address a backend", async () => {
  // Here /etc/hosts maps localhost to 127.0.0.1 only, so it resolves to one address; where
  // it also gives ::1, the backend listens there too and both become backends.
  await using v4 = new EchoBackend("v4");
  let v6: EchoBackend | undefined;
  try {
    v6 = new EchoBackend("v6", { hostname: "::1", port: v4.port });
  } catch {
    // No IPv6 loopback, or the port is taken there.
  }
  try {
    const { proc: lb, port } = await runLb([
      "127.0.0.1",
      "localhost",
      String(v4.port),
      "--port",
      "0",
    ]);
    await using _lb = lb;
    const match = await lb.stderr.waitFor(
      new RegExp(
        `server localhost:${v4.port} resolves to (\\d+) address(?:es)?: (.*?)(?:, one backend each)?$`,
      ),
    );
    const addresses = match[2].split(", ");
    assert.equal(Number(match[1]), addresses.length);
    assert.ok(addresses.includes("127.0.0.1"), match[0]);
    assert.equal(lb.stderr.count(new RegExp(` port : ${v4.port} operating$`)), addresses.length);
    for (const address of addresses) {
      assert.equal(
        lb.stderr.count(
          new RegExp(`server ip :${address.replaceAll(".", "\\.")} port : ${v4.port} operating$`),
        ),
        1,
      );
    }
    const [client, name] = await connectGreeted(port);
    using _client = client;
    assert.match(name, /^v[46]$/);
    await echoes(client, "via localhost");
  } finally {
    await v6?.[Symbol.asyncDispose]();
  }
});

Deno.test("lb listens on IPv6 and relays to IPv6 and IPv4 backends", async () => {
  await using v6 = new EchoBackend("v6", { hostname: "::1" });
  await using v4 = new EchoBackend("v4");
  const { proc: lb, port } = await runLb([
    "::1",
    "[::1]",
    String(v6.port),
    "127.0.0.1",
    String(v4.port),
    "--port",
    "0",
  ]);
  await using _lb = lb;
  await lb.stderr.waitFor(new RegExp(`load balancer listening on \\[::1\\]:${port} `));
  const names: string[] = [];
  const clients: RawClient[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const [client, name] = await connectGreeted(port, "::1");
      clients.push(client);
      names.push(name);
      await echoes(client, `over IPv6 to ${name}`);
      await lb.stderr.waitFor(
        new RegExp(
          `client <::1,${localPort(client)}> -> ${
            name === "v6" ? `\\[::1\\]:${v6.port}` : `127\\.0\\.0\\.1:${v4.port}`
          }$`,
        ),
      );
    }
    assert.deepEqual(names.toSorted(), ["v4", "v6"]);
  } finally {
    for (const client of clients) client[Symbol.dispose]();
  }
});

Deno.test("lb --config reloads when the file changes, also when a new file is renamed over it", async () => {
  await using a = new EchoBackend("a");
  await using b = new EchoBackend("b");
  await using file = await ConfigFile.create(configText([a.addr]));
  const { proc: lb, port } = await runLb(["--config", file.path], {
    permissions: configPermissions(file.path),
  });
  await using _lb = lb;
  // Written in place: a reload without SIGHUP.
  await file.write(configText([b.addr]));
  await lb.stderr.waitFor(/reloading .*l4chat\.jsonc \(file changed\)$/);
  await lb.stderr.waitFor(/config applied: 1 servers \(1 added, 1 removed\)$/);
  const [first, firstName] = await connectGreeted(port);
  first[Symbol.dispose]();
  assert.equal(firstName, "b");
  // Replaced by a rename, as editors and deploy tools do: still noticed.
  const mark = lb.stderr.mark;
  await Deno.writeTextFile(`${file.dir}/next.jsonc`, configText([a.addr]));
  await Deno.rename(`${file.dir}/next.jsonc`, file.path);
  await lb.stderr.waitFor(/config applied: 1 servers \(1 added, 1 removed\)$/, { from: mark });
  const [second, secondName] = await connectGreeted(port);
  second[Symbol.dispose]();
  assert.equal(secondName, "a");
});
