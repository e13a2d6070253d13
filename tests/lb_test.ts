import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  DATA_PATHS,
  deadline,
  L4chat,
  RawClient,
  startClnt,
  startLb,
  startServ,
  TestBackend,
} from "./_helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** Short health checks for the tests that kill backends. */
const FAST_HC = ["--hc-interval", "200ms", "--hc-timeout", "200ms", "--hc-fall", "2"];
/** Health checks only at start-up, for the tests that count connections. */
const ONE_HC = ["--hc-interval", "1h"];

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The lb's line for a backend at start or back in rotation. */
function operating(port: number): RegExp {
  return new RegExp(` INFO  server ip :127\\.0\\.0\\.1 port : ${port} operating$`);
}

/** The lb's line for a backend marked dead. */
function dead(port: number): RegExp {
  return new RegExp(` WARN  server ip :127\\.0\\.0\\.1 port : ${port} dead( \\(.*\\))?$`);
}

/** The lb's line for a client given a backend: groups are the client port and backend port. */
const OPENED = / INFO {2}client <127\.0\.0\.1,(\d+)> -> 127\.0\.0\.1:(\d+)$/;

/** Waits for the lb's open line of the client whose local port is `clientPort`; its backend. */
async function backendOf(lb: L4chat, clientPort: number): Promise<number> {
  const match = await lb.stderr.waitFor(
    new RegExp(` INFO  client <127\\.0\\.0\\.1,${clientPort}> -> 127\\.0\\.0\\.1:(\\d+)$`),
  );
  return Number(match[1]);
}

/** Waits for the `n`th line (from 1) of `log` matching `pattern`. */
async function waitForNth(
  log: L4chat["stderr"],
  pattern: RegExp,
  n: number,
): Promise<RegExpMatchArray> {
  let from = 0;
  let match!: RegExpMatchArray;
  for (let i = 0; i < n; i++) {
    match = await log.waitFor(pattern, { from });
    from = log.lines.findIndex((line, index) => index >= from && pattern.test(line)) + 1;
  }
  return match;
}

/** Waits for `client <127.0.0.1,port> terminated` and returns the NAT length logged after it. */
async function terminated(lb: L4chat, clientPort: number): Promise<number> {
  const pattern = new RegExp(` INFO  client <127\\.0\\.0\\.1,${clientPort}> terminated$`);
  await lb.stderr.waitFor(pattern);
  const index = lb.stderr.lines.findIndex((line) => pattern.test(line));
  const next = await lb.stderr.waitFor(/ INFO +Current NAT table length : (\d+)$/, {
    from: index + 1,
  });
  assert.equal(lb.stderr.lines.indexOf(next.input!, index + 1), index + 1, "right after");
  return Number(next[1]);
}

/** A port with nothing listening on it (bound, then released). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** Reads `conn` to end of stream; returns what came. */
async function readAll(conn: Deno.TcpConn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(16 * 1024);
  let n;
  while ((n = await conn.read(buf)) !== null) chunks.push(buf.slice(0, n));
  const all = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.length;
  }
  return all;
}

async function writeAll(conn: Deno.TcpConn, data: Uint8Array): Promise<void> {
  let written = 0;
  while (written < data.length) written += await conn.write(data.subarray(written));
}

Deno.test("lb plays the original guide: 3 servers, 4 clients, jin and sujungwef share a room", async () => {
  const servs = [await startServ(), await startServ(), await startServ()];
  await using _s1 = servs[0].proc;
  await using _s2 = servs[1].proc;
  await using _s3 = servs[2].proc;
  const ports = servs.map((serv) => serv.port);
  const { proc: lb, port } = await startLb(ports, ONE_HC);
  await using _lb = lb;
  for (const backendPort of ports) await lb.stderr.waitFor(operating(backendPort));

  // Round robin in the guide's order: jin 1st, susu 2nd, jang 3rd, sujungwef 1st again.
  const names = ["jin", "susu", "jang", "sujungwef"];
  const expectedServ = [0, 1, 2, 0];
  const clients: L4chat[] = [];
  const clientPorts: number[] = [];
  const joined = [0, 0, 0];
  try {
    for (const [i, name] of names.entries()) {
      const mark = lb.stderr.mark;
      clients.push(startClnt(port, name));
      const match = await lb.stderr.waitFor(OPENED, { from: mark });
      clientPorts.push(Number(match[1]));
      assert.equal(Number(match[2]), ports[expectedServ[i]], `${name}'s server`);
      // The server has the client in its room once it logs it (after the one health check).
      const serv = servs[expectedServ[i]].proc;
      await waitForNth(
        serv.stderr,
        /Connected client IP: 127\.0\.0\.1$/,
        1 + ++joined[expectedServ[i]],
      );
    }
    const [jin, susu, jang, sujungwef] = clients;
    await jin.type("hello\n");
    await jin.stdout.waitFor(/^\[jin\] hello$/);
    await sujungwef.stdout.waitFor(/^\[jin\] hello$/);
    await sujungwef.type("hi jins\n");
    await jin.stdout.waitFor(/^\[sujungwef\] hi jins$/);
    await sujungwef.stdout.waitFor(/^\[sujungwef\] hi jins$/);
    await jin.type("hi sujungwef\n");
    await sujungwef.stdout.waitFor(/^\[jin\] hi sujungwef$/);
    // susu and jang speak last: had they shared a room with anyone, the others' lines would
    // have reached them before their own (a server relays in the order it reads).
    await susu.type("asfas\n");
    await susu.stdout.waitFor(/^\[susu\] asfas$/);
    await jang.type("sdfsd\n");
    await jang.stdout.waitFor(/^\[jang\] sdfsd$/);
    assert.deepEqual(susu.stdout.lines.filter((l) => l.startsWith("[")), ["[susu] asfas"]);
    assert.deepEqual(jang.stdout.lines.filter((l) => l.startsWith("[")), ["[jang] sdfsd"]);
    assert.deepEqual(jin.stdout.lines.filter((l) => l.startsWith("[")), [
      "[jin] hello",
      "[sujungwef] hi jins",
      "[jin] hi sujungwef",
    ]);

    // They leave left to right; the NAT table shrinks to 0.
    for (const [i, client] of clients.entries()) {
      await client.type("q\n");
      assert.equal(await client.exited(), 0, `${names[i]} exits 0`);
      assert.equal(await terminated(lb, clientPorts[i]), names.length - 1 - i);
    }
  } finally {
    for (const client of clients) await client[Symbol.asyncDispose]();
  }
});

Deno.test("lb marks a killed backend dead, steers new clients away, and takes it back when it returns", async () => {
  const servs = [await startServ(), await startServ(), await startServ()];
  await using _s1 = servs[0].proc;
  await using _s3 = servs[2].proc;
  const ports = servs.map((serv) => serv.port);
  const { proc: lb, port } = await startLb(ports, FAST_HC);
  await using _lb = lb;

  // One raw client on each backend.
  using a = await RawClient.connect(port);
  using b = await RawClient.connect(port);
  using c = await RawClient.connect(port);
  const backends = [
    await backendOf(lb, a.conn.localAddr.port),
    await backendOf(lb, b.conn.localAddr.port),
    await backendOf(lb, c.conn.localAddr.port),
  ];
  assert.deepEqual(backends, ports);
  for (const [client, name] of [[a, "a"], [c, "c"]] as const) {
    await client.send(`[${name}] before\n`);
    assert.equal(await client.readLine(), `[${name}] before`);
  }

  // Kill the second server: dead within interval x fall + timeout (checked in health_test.ts;
  // here only bounded), and its client is closed.
  {
    await using s2 = servs[1].proc;
    const mark = lb.stderr.mark;
    s2.kill("SIGKILL");
    await s2.status;
    await lb.stderr.waitFor(dead(ports[1]), { from: mark, timeoutMs: 10_000 });
    assert.equal(await b.closedByPeer(), true);
  }

  // New clients go to the live ones only; the clients there noticed nothing.
  const extra: RawClient[] = [];
  try {
    for (let i = 0; i < 4; i++) {
      const client = await RawClient.connect(port);
      extra.push(client);
      const backend = await backendOf(lb, client.conn.localAddr.port);
      assert.notEqual(backend, ports[1], `new client ${i} went to the dead backend`);
    }
    for (const [client, name] of [[a, "a"], [c, "c"]] as const) {
      await client.send(`[${name}] after\n`);
      assert.equal(await client.readLine(), `[${name}] after`);
    }
  } finally {
    for (const client of extra) client[Symbol.dispose]();
  }

  // Restarted on the same port, it is operating again and gets new clients.
  const mark = lb.stderr.mark;
  await using s2again = new L4chat(["serv", String(ports[1]), "--host", "127.0.0.1"]);
  await s2again.stderr.waitFor(/chat server listening on /);
  await lb.stderr.waitFor(operating(ports[1]), { from: mark, timeoutMs: 10_000 });
  const later: RawClient[] = [];
  try {
    const got: number[] = [];
    for (let i = 0; i < 3; i++) {
      const client = await RawClient.connect(port);
      later.push(client);
      got.push(await backendOf(lb, client.conn.localAddr.port));
    }
    assert.deepEqual([...got].sort(), [...ports].sort(), "one new client on each backend");
    const back = later[got.indexOf(ports[1])];
    await back.send("[back] hello\n");
    assert.equal(await back.readLine(), "[back] hello");
  } finally {
    for (const client of later) client[Symbol.dispose]();
  }
});

/** Bytes each way in the large transfer test. */
const LARGE_BYTES = 256 * 1024 * 1024;
const BLOCK_BYTES = 1024 * 1024;

/** Writes `LARGE_BYTES` of a deterministic pattern (seeded by `seed`), then half-closes. */
async function sendPattern(conn: Deno.TcpConn, seed: number): Promise<string> {
  const hash = createHash("sha256");
  const block = new Uint8Array(BLOCK_BYTES);
  const words = new Uint32Array(block.buffer);
  let x = seed >>> 0 || 1;
  for (let sent = 0; sent < LARGE_BYTES; sent += BLOCK_BYTES) {
    for (let i = 0; i < words.length; i++) {
      // xorshift32: every block differs, so a lost, doubled or reordered block shows.
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      words[i] = x >>> 0;
    }
    hash.update(block);
    await writeAll(conn, block);
  }
  await conn.closeWrite();
  return hash.digest("hex");
}

/** Reads to end of stream, hashing as it goes; returns the digest and the byte count. */
async function receiveDigest(conn: Deno.TcpConn): Promise<{ digest: string; bytes: number }> {
  const hash = createHash("sha256");
  const buf = new Uint8Array(256 * 1024);
  let bytes = 0;
  let n;
  while ((n = await conn.read(buf)) !== null) {
    hash.update(buf.subarray(0, n));
    bytes += n;
  }
  return { digest: hash.digest("hex"), bytes };
}

for (const path of DATA_PATHS) {
  /** `lb` in front of `port` on this data path, with health checks out of the way. */
  const startOnPath = (port: number) => startLb([port], [...ONE_HC, ...path.args], path.options);

  Deno.test(`lb (${path.name}) carries a client's half-close: the backend's reply still arrives`, async () => {
    // The backend reads to end of stream, then answers and closes.
    await using backend = new TestBackend(async (conn) => {
      const got = await readAll(conn);
      await writeAll(conn, encoder.encode(`got ${got.length} bytes: ${decoder.decode(got)}\n`));
    });
    const { proc: lb, port } = await startOnPath(backend.port);
    await using _lb = lb;
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await writeAll(conn, encoder.encode("hello"));
      await conn.closeWrite();
      const reply = await deadline(readAll(conn), 10_000, "no reply after half-close");
      assert.equal(decoder.decode(reply), "got 5 bytes: hello\n");
    } finally {
      conn.close();
    }
    assert.equal(await terminated(lb, conn.localAddr.port), 0);
  });

  Deno.test(`lb (${path.name}) carries a backend's half-close: the client can still send`, async () => {
    // The backend greets, shuts down its write side, then reads what the client still sends.
    const received = Promise.withResolvers<string>();
    await using backend = new TestBackend(async (conn) => {
      await writeAll(conn, encoder.encode("hello from backend\n"));
      await conn.closeWrite();
      const got = decoder.decode(await readAll(conn));
      if (got !== "") received.resolve(got);
    });
    const { proc: lb, port } = await startOnPath(backend.port);
    await using _lb = lb;
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      const greeting = await deadline(readAll(conn), 10_000, "no end of stream from backend");
      assert.equal(decoder.decode(greeting), "hello from backend\n");
      await writeAll(conn, encoder.encode("still here"));
      await conn.closeWrite();
      assert.equal(await deadline(received.promise, 10_000, "backend got nothing"), "still here");
    } finally {
      conn.close();
    }
    assert.equal(await terminated(lb, conn.localAddr.port), 0);
  });

  Deno.test(`lb (${path.name}) relays 256 MiB each way at once, byte-exact`, async () => {
    const atBackend = Promise.withResolvers<
      { sent: string; got: { digest: string; bytes: number } }
    >();
    await using backend = new TestBackend(async (conn) => {
      const [sent, got] = await Promise.all([sendPattern(conn, 0xbac0), receiveDigest(conn)]);
      if (got.bytes > 0) atBackend.resolve({ sent, got });
    });
    const { proc: lb, port } = await startOnPath(backend.port);
    await using _lb = lb;
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      const [sent, got] = await deadline(
        Promise.all([sendPattern(conn, 0xc11e), receiveDigest(conn)]),
        240_000,
        "large transfer did not finish",
      );
      const server = await deadline(atBackend.promise, 10_000, "backend did not finish");
      assert.equal(got.bytes, LARGE_BYTES, "bytes to the client");
      assert.equal(server.got.bytes, LARGE_BYTES, "bytes to the backend");
      assert.equal(got.digest, server.sent, "backend -> client digest");
      assert.equal(server.got.digest, sent, "client -> backend digest");
    } finally {
      conn.close();
    }
    assert.equal(await terminated(lb, conn.localAddr.port), 0);
  });
}

Deno.test("lb tries the next backend when a connect fails", async () => {
  await using backend = new TestBackend(async (conn) => {
    await writeAll(conn, encoder.encode("welcome\n"));
    await readAll(conn);
  });
  const nothing = freePort();
  // The first backend in the rotation has nothing listening; one failed start-up check
  // and one failed connect stay under --hc-fall 3, so the client's pick is that one.
  const { proc: lb, port } = await startLb([nothing, backend.port], ONE_HC);
  await using _lb = lb;
  using client = await RawClient.connect(port);
  const clientPort = client.conn.localAddr.port;
  assert.equal(await client.readLine(), "welcome");
  assert.equal(await backendOf(lb, clientPort), backend.port);
  await lb.stderr.waitFor(
    new RegExp(
      ` WARN  cannot connect to server 127\\.0\\.0\\.1:${nothing} for client ` +
        `<127\\.0\\.0\\.1,${clientPort}>: connection refused$`,
    ),
  );
});

Deno.test("lb with no backend up closes clients at once, keeps running and recovers", async () => {
  const backendPort = freePort();
  const { proc: lb, port } = await startLb([backendPort], FAST_HC);
  await using _lb = lb;
  await lb.stderr.waitFor(dead(backendPort), { timeoutMs: 10_000 });

  {
    using client = await RawClient.connect(port);
    const clientPort = client.conn.localAddr.port;
    assert.equal(await client.closedByPeer(5_000), true);
    await lb.stderr.waitFor(
      new RegExp(
        ` WARN  client <127\\.0\\.0\\.1,${clientPort}> closed: no server available ` +
          escape("(all dead, draining or full)") + "$",
      ),
    );
  }

  const mark = lb.stderr.mark;
  await using _backend = new TestBackend(async (conn) => {
    await writeAll(conn, encoder.encode("back\n"));
    await readAll(conn);
  }, { port: backendPort });
  await lb.stderr.waitFor(operating(backendPort), { from: mark, timeoutMs: 10_000 });
  using client = await RawClient.connect(port);
  assert.equal(await client.readLine(), "back");
  assert.equal(await backendOf(lb, client.conn.localAddr.port), backendPort);
});

Deno.test("lb closes the client promptly when its backend resets mid-connection", async () => {
  // The backend reads one chunk and closes with the rest unread: the kernel sends a reset.
  await using backend = new TestBackend(async (conn) => {
    const first = await conn.read(new Uint8Array(1024));
    if (first !== null) conn.close();
  });
  const { proc: lb, port } = await startLb([backend.port], ONE_HC);
  await using _lb = lb;
  using client = await RawClient.connect(port);
  const clientPort = client.conn.localAddr.port;
  const sending = (async () => {
    const chunk = new Uint8Array(64 * 1024);
    try {
      for (let i = 0; i < 64; i++) await client.send(chunk);
    } catch {
      // The lb closed the connection: that is what this test waits for.
    }
  })();
  assert.equal(await client.closedByPeer(10_000), true);
  await deadline(sending, 10_000, "the client's writes never ended");
  assert.equal(await terminated(lb, clientPort), 0);
});

Deno.test("lb closes the backend promptly when the client goes away mid-transfer", async () => {
  // The backend writes without end; once the lb closes its side, a write fails.
  const backendClosed = Promise.withResolvers<void>();
  await using backend = new TestBackend(async (conn) => {
    const chunk = new Uint8Array(64 * 1024);
    try {
      while (true) await writeAll(conn, chunk);
    } catch {
      backendClosed.resolve();
    }
  });
  const { proc: lb, port } = await startLb([backend.port], ONE_HC);
  await using _lb = lb;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const clientPort = conn.localAddr.port;
  try {
    // Read a little so the data is flowing, then close with the rest unread (a reset).
    const buf = new Uint8Array(64 * 1024);
    let got = 0;
    while (got < 256 * 1024) {
      const n = await deadline(conn.read(buf), 10_000, "no data from the backend");
      assert.notEqual(n, null);
      got += n!;
    }
  } finally {
    conn.close();
  }
  await deadline(backendClosed.promise, 10_000, "the backend's connection stayed open");
  assert.equal(await terminated(lb, clientPort), 0);
});

/** TCP state `TIME_WAIT` in `/proc/net/tcp`. */
const TCP_TIME_WAIT = 6;

/**
 * The state of the IPv4 loopback socket from `localPort` to `remotePort` (see
 * `/proc/net/tcp`), or undefined when there is none.
 */
async function tcpState(localPort: number, remotePort: number): Promise<number | undefined> {
  const hex = (port: number) => port.toString(16).toUpperCase().padStart(4, "0");
  const local = `:${hex(localPort)}`;
  const remote = `:${hex(remotePort)}`;
  // Deno reads /proc/net only with every permission; `cat` needs none of them.
  const { stdout } = await new Deno.Command("cat", { args: ["/proc/net/tcp"] }).output();
  for (const line of decoder.decode(stdout).split("\n").slice(1)) {
    const [, localAddr, remoteAddr, state] = line.trim().split(/\s+/);
    if (localAddr?.endsWith(local) && remoteAddr?.endsWith(remote)) return parseInt(state, 16);
  }
  return undefined;
}

// The engine's: the runtimes' own sockets pass the backend's end on at once.
for (const path of DATA_PATHS.filter((p) => !p.args.includes("runtime"))) {
  Deno.test(`lb (${path.name}) --fin-wait: a client that closes on the reply keeps the TIME_WAIT, not lb`, async () => {
    // The backend answers a request and closes, as an HTTP server does on `Connection: close`.
    const backendClosed = Promise.withResolvers<void>();
    await using backend = new TestBackend(async (conn) => {
      await conn.read(new Uint8Array(64));
      await writeAll(conn, encoder.encode("reply\n"));
      conn.close();
      backendClosed.resolve();
    });
    const { proc: lb, port } = await startLb(
      [backend.port],
      [...ONE_HC, "--fin-wait", "200ms", ...path.args],
      path.options,
    );
    await using _lb = lb;
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const clientPort = conn.localAddr.port;
    try {
      await writeAll(conn, encoder.encode("request\n"));
      const buf = new Uint8Array(64);
      let reply = "";
      while (!reply.endsWith("\n")) {
        const n = await deadline(conn.read(buf), 10_000, "no reply");
        assert.notEqual(n, null, "the end came before the client closed");
        reply += decoder.decode(buf.subarray(0, n!));
      }
      assert.equal(reply, "reply\n");
      // A client a little slower than lb, whose FIN would have gone by then with no wait (there
      // is no event for a FIN not sent): 50 ms, well inside the 200 ms lb waits.
      await backendClosed.promise;
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      conn.close();
    }
    assert.equal(await terminated(lb, clientPort), 0);
    // Whichever side sent its FIN first holds the TIME_WAIT once lb has closed its socket:
    // looked for every 5 ms, for 10 s at most (the kernel says nothing when it comes).
    let holder = "neither";
    for (let i = 0; i < 2000 && holder === "neither"; i++) {
      if (await tcpState(clientPort, port) === TCP_TIME_WAIT) holder = "client";
      else if (await tcpState(port, clientPort) === TCP_TIME_WAIT) holder = "lb";
      else await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.equal(holder, "client");
  });
}

Deno.test("lb listens and connects over IPv6 loopback", async () => {
  await using backend = new TestBackend(async (conn) => {
    await writeAll(conn, encoder.encode("hello over ::1\n"));
    await readAll(conn);
  }, { hostname: "::1" });
  await using lb = new L4chat([
    "lb",
    "[::1]",
    "::1",
    String(backend.port),
    "--port",
    "0",
    ...ONE_HC,
  ]);
  const match = await lb.stderr.waitFor(/load balancer listening on \[::1\]:(\d+) /);
  await lb.stderr.waitFor(new RegExp(` INFO  server ip :::1 port : ${backend.port} operating$`));
  using client = await RawClient.connect(Number(match[1]), "::1");
  assert.equal(await client.readLine(), "hello over ::1");
  await lb.stderr.waitFor(
    new RegExp(` INFO  client <::1,${client.conn.localAddr.port}> -> \\[::1\\]:${backend.port}$`),
  );
});

Deno.test("lb logs each chunk relayed only at --log-level debug", async () => {
  await using backend = new TestBackend(async (conn) => {
    const buf = new Uint8Array(64);
    const n = await conn.read(buf);
    if (n !== null) await writeAll(conn, encoder.encode("pong!!!\n"));
    await readAll(conn);
  });
  for (const level of ["debug", "info"]) {
    const { proc: lb, port } = await startLb([backend.port], [...ONE_HC, "--log-level", level]);
    await using _lb = lb;
    using client = await RawClient.connect(port);
    await client.send("ping\n");
    assert.equal(await client.readLine(), "pong!!!");
    client[Symbol.dispose]();
    await terminated(lb, client.conn.localAddr.port);
    const chunks = [
      / DEBUG Successfully sent 5 bytes to server!$/,
      / DEBUG Successfully sent 8 bytes to client!$/,
    ];
    for (const pattern of chunks) assert.equal(lb.stderr.count(pattern), level === "debug" ? 1 : 0);
  }
});

Deno.test("lb on SIGTERM stops accepting, lets connections finish within --grace, exits 0", async () => {
  await using backend = new TestBackend(async (conn) => {
    await writeAll(conn, encoder.encode("hi\n"));
    await readAll(conn);
  });
  const { proc: lb, port } = await startLb([backend.port], [...ONE_HC, "--grace", "300ms"]);
  await using _lb = lb;
  using client = await RawClient.connect(port);
  assert.equal(await client.readLine(), "hi");
  await backendOf(lb, client.conn.localAddr.port);
  lb.kill("SIGTERM");
  await lb.stderr.waitFor(/ INFO {2}waiting up to 300 ms for 1 connections to finish$/);
  await assert.rejects(() => RawClient.connect(port).then((late) => late[Symbol.dispose]()));
  // The client stays idle: after the grace period the lb closes it and exits.
  assert.equal(await client.closedByPeer(10_000), true);
  assert.equal(await lb.exited(), 0);
  assert.equal(
    lb.stderr.count(/ WARN {2}grace period over: closing 1 connections over \d+ ms$/),
    1,
  );
  assert.equal(lb.stderr.count(/ INFO {2}load balancer stopped$/), 1);
  assert.equal(await terminated(lb, client.conn.localAddr.port), 0);
});

Deno.test("lb on SIGTERM with no connection exits 0 at once", async () => {
  await using backend = new TestBackend(async (conn) => void await readAll(conn));
  const { proc: lb } = await startLb([backend.port], ONE_HC);
  await using _lb = lb;
  lb.kill("SIGTERM");
  assert.equal(await lb.exited(), 0);
  assert.equal(lb.stderr.count(/ INFO {2}load balancer stopped$/), 1);
});

Deno.test("lb with bad flags prints one line and the usage, exit 2", async () => {
  const usage =
    "usage: l4chat lb [<bind-ip>] <server> <port> [<server> <port> ...] [options] | lb --config FILE";
  const cases: [string[], string][] = [
    [
      ["127.0.0.1", "127.0.0.1", "10010", "127.0.0.1"],
      'l4chat lb: Missing <port> after server "127.0.0.1": backends are <server> <port> pairs',
    ],
    [
      ["127.0.0.1", "70000"],
      'l4chat lb: Cannot use <port> of server "127.0.0.1" "70000": expected a port in 1..65535',
    ],
    [["127.0.0.1", "10010", "--prot", "1"], "l4chat lb: Unknown flag --prot"],
    [
      ["127.0.0.1", "10010", "--ack-wait", "1s"],
      'l4chat lb: Cannot use --ack-wait "1s": expected at most 200ms',
    ],
    [[], "l4chat lb: Missing backend: give at least one <server> <port>"],
    [["127.0.0.1"], "l4chat lb: Missing backend: give at least one <server> <port>"],
  ];
  for (const [args, line] of cases) {
    await using lb = new L4chat(["lb", ...args]);
    assert.equal(await lb.exited(), 2, args.join(" "));
    assert.deepEqual(lb.stderr.lines, [line, usage], args.join(" "));
    assert.deepEqual(lb.stdout.lines, [], args.join(" "));
  }
});
