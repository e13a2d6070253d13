import assert from "node:assert/strict";
import { L4chat, RawClient, startClnt, startServ } from "./_helpers.ts";

Deno.test("serv relays each line to every client, the sender included", async () => {
  const { proc: serv, port } = await startServ();
  await using _serv = serv;
  await using jin = startClnt(port, "jin");
  await serv.stderr.waitFor(/Connected client IP: 127\.0\.0\.1/);
  const mark = serv.stderr.mark;
  await using sujungwef = startClnt(port, "sujungwef");
  await serv.stderr.waitFor(/Connected client IP: 127\.0\.0\.1/, { from: mark });
  await jin.type("hello\n");
  await jin.stdout.waitFor(/^\[jin\] hello$/);
  await sujungwef.stdout.waitFor(/^\[jin\] hello$/);
  await sujungwef.type("hi jins\n");
  await jin.stdout.waitFor(/^\[sujungwef\] hi jins$/);
  await sujungwef.stdout.waitFor(/^\[sujungwef\] hi jins$/);
  await jin.type("q\n");
  assert.equal(await jin.exited(), 0);
  await serv.stderr.waitFor(/client \d+ terminated/);
});

Deno.test("clnt prints Server disconnected ... and exits 1 when the server goes away", async () => {
  const { proc: serv, port } = await startServ();
  await using _serv = serv;
  await using clnt = startClnt(port, "jin");
  await serv.stderr.waitFor(/Connected client IP/);
  serv.kill("SIGKILL");
  await clnt.stdout.waitFor(/^Server disconnected \.\.\.$/);
  assert.equal(await clnt.exited(), 1);
});

Deno.test("serv relays Korean names and messages byte for byte", async () => {
  // Presence off: the first line this client reads must be its own.
  const { proc: serv, port } = await startServ(["--presence", "off"]);
  await using _serv = serv;
  using raw = await RawClient.connect(port);
  await serv.stderr.waitFor(/Connected client IP/);
  await raw.send("[진수] 안녕하세요 😀\n");
  assert.equal(await raw.readLine(), "[진수] 안녕하세요 😀");
});

Deno.test("clnt with a bad port prints one line and the usage, exit 2", async () => {
  await using clnt = new L4chat(["clnt", "127.0.0.1", "70000", "jin"]);
  assert.equal(await clnt.exited(), 2);
  assert.deepEqual(clnt.stderr.lines, [
    'l4chat clnt: Cannot use <port> "70000": expected a port in 1..65535',
    "usage: l4chat clnt <host> <port> <name> [options]",
  ]);
});

Deno.test("two servers are two rooms: a line on one never reaches the other", async () => {
  const { proc: servA, port: portA } = await startServ();
  await using _a = servA;
  const { proc: servB, port: portB } = await startServ();
  await using _b = servB;
  using a = await RawClient.connect(portA);
  using b = await RawClient.connect(portB);
  await servA.stderr.waitFor(/Connected client IP/);
  await servB.stderr.waitFor(/Connected client IP/);
  await a.send("[susu] asfas\n");
  await b.send("[jang] sdfsd\n");
  assert.equal(await a.readLine(), "[susu] asfas");
  assert.equal(await b.readLine(), "[jang] sdfsd");
  await a.send("[susu] again\n");
  assert.equal(await a.readLine(), "[susu] again");
  b.conn.close();
  // b's connection is gone; a fresh client of B must see nothing of A's lines.
  // The mark before the connect: the log line may come before the connect resolves here.
  const mark = servB.stderr.mark;
  using b2 = await RawClient.connect(portB);
  await servB.stderr.waitFor(/Connected client IP/, { from: mark });
  await b2.send("[jang] ping\n");
  assert.equal(await b2.readLine(), "[jang] ping");
});

Deno.test("serv keeps one order for all clients under load, each sender's lines in order", async () => {
  const { proc: serv, port } = await startServ();
  await using _serv = serv;
  const senders = 4;
  const linesEach = 2000;
  const clients: RawClient[] = [];
  for (let i = 0; i < senders; i++) {
    clients.push(await RawClient.connect(port));
  }
  await serv.stderr.waitForCount(/Connected client IP/, senders);
  try {
    const total = senders * linesEach;
    const received = clients.map(async (client) => {
      const lines: string[] = [];
      while (lines.length < total) {
        const line = await client.readLine();
        if (line === null) break;
        lines.push(line);
      }
      return lines;
    });
    await Promise.all(clients.map(async (client, c) => {
      // Several lines per write, cut at odd places, as a busy client's TCP stream would be.
      let batch = "";
      for (let n = 0; n < linesEach; n++) {
        batch += `[c${c}] ${n}\n`;
        if (batch.length > 700) {
          await client.send(batch.slice(0, 333));
          await client.send(batch.slice(333));
          batch = "";
        }
      }
      await client.send(batch);
    }));
    const results = await Promise.all(received);
    for (const lines of results) {
      assert.equal(lines.length, total);
      assert.deepEqual(lines, results[0]);
    }
    for (let c = 0; c < senders; c++) {
      const mine = results[0].filter((line) => line.startsWith(`[c${c}] `));
      assert.deepEqual(mine, Array.from({ length: linesEach }, (_, n) => `[c${c}] ${n}`));
    }
  } finally {
    for (const client of clients) client[Symbol.dispose]();
  }
});

Deno.test("serv refuses the client over --max-clients with one line, others unaffected", async () => {
  const { proc: serv, port } = await startServ(["--max-clients", "2"]);
  await using _serv = serv;
  using a = await RawClient.connect(port);
  using b = await RawClient.connect(port);
  await serv.stderr.waitForCount(/Connected client IP/, 2);
  using c = await RawClient.connect(port);
  assert.equal(await c.readLine(), "* server full (2 clients), try later");
  assert.equal(await c.readLine(), null);
  await serv.stderr.waitFor(/refused: server full \(2 clients\)/);
  await a.send("[a] still here\n");
  assert.equal(await b.readLine(), "[a] still here");
});

Deno.test("serv drops an overlong line, tells only its sender, and keeps the sender", async () => {
  const { proc: serv, port } = await startServ(["--max-line", "64"]);
  await using _serv = serv;
  using a = await RawClient.connect(port);
  using b = await RawClient.connect(port);
  await serv.stderr.waitForCount(/Connected client IP/, 2);
  await a.send(`[a] ${"x".repeat(10_000)}\n[a] short\n`);
  assert.equal(await a.readLine(), "* line too long (over 64 bytes), not relayed");
  assert.equal(await a.readLine(), "[a] short");
  assert.equal(await b.readLine(), "[a] short");
  await serv.stderr.waitFor(/over --max-line 64/);
});

Deno.test("serv disconnects a client that never reads; the others keep every line in order", async () => {
  const { proc: serv, port } = await startServ(["--max-output", "64KiB", "--presence", "off"]);
  await using _serv = serv;
  using sink = await RawClient.connect(port); // never reads
  using talker = await RawClient.connect(port);
  await serv.stderr.waitForCount(/Connected client IP/, 2);
  // About 16 MB of lines: far past --max-output plus what the kernel buffers on loopback.
  // The talker sends in batches and reads each batch back before the next, so its own
  // pending output stays well under the limit while the sink's grows past it.
  const count = 16_000;
  const batchSize = 20;
  const pad = "y".repeat(1000);
  for (let n = 0; n < count; n += batchSize) {
    let batch = "";
    for (let k = n; k < n + batchSize; k++) batch += `[talker] line ${k} ${pad}\n`;
    await talker.send(batch);
    for (let k = n; k < n + batchSize; k++) {
      assert.equal(await talker.readLine(), `[talker] line ${k} ${pad}`);
    }
  }
  await serv.stderr.waitFor(/client \d+ disconnected: not reading/);
  assert.equal(await sink.closedByPeer(), true);
});

Deno.test("clnt quits on q, Q and the end of input, exit 0", async () => {
  const { proc: serv, port } = await startServ();
  await using _serv = serv;
  for (const quit of ["q\n", "Q\n", null]) {
    const mark = serv.stderr.mark;
    await using clnt = startClnt(port, "jin");
    await serv.stderr.waitFor(/Connected client IP/, { from: mark });
    await clnt.type("bye\n");
    await clnt.stdout.waitFor(/^\[jin\] bye$/);
    if (quit === null) await clnt.closeStdin();
    else await clnt.type(quit);
    assert.equal(await clnt.exited(), 0);
    await serv.stderr.waitFor(/client \d+ terminated/, { from: mark });
  }
});

Deno.test("serv on SIGTERM tells clients it is shutting down and exits 0", async () => {
  const { proc: serv, port } = await startServ();
  await using _serv = serv;
  using a = await RawClient.connect(port);
  await serv.stderr.waitFor(/Connected client IP/);
  serv.kill("SIGTERM");
  assert.equal(await a.readLine(), "* server shutting down");
  assert.equal(await a.readLine(), null);
  assert.equal(await serv.exited(), 0);
  assert.equal(serv.stderr.count(/error|stack|^\s+at /i), 0);
});

Deno.test("serv listens on IPv6 loopback and names the bound port", async () => {
  await using serv = new L4chat(["serv", "0", "--host", "::1"]);
  const match = await serv.stderr.waitFor(/chat server listening on \[::1\]:(\d+)$/);
  using a = await RawClient.connect(Number(match[1]), "::1");
  await serv.stderr.waitFor(/Connected client IP: ::1/);
  await a.send("[v6] hi\n");
  assert.equal(await a.readLine(), "[v6] hi");
});

Deno.test("clnt connects to an IPv6 literal and reports a refused connect in one line", async () => {
  await using serv = new L4chat(["serv", "0", "--host", "::1"]);
  const port = Number((await serv.stderr.waitFor(/listening on \[::1\]:(\d+)$/))[1]);
  await using clnt = new L4chat(["clnt", "[::1]", String(port), "jin"], { stdin: true });
  await clnt.type("hi\n");
  await clnt.stdout.waitFor(/^\[jin\] hi$/);
  await clnt.type("q\n");
  assert.equal(await clnt.exited(), 0);
  serv.kill("SIGKILL");
  await serv.exited();
  await using refused = new L4chat(["clnt", "127.0.0.1", String(port), "jin"], { stdin: true });
  assert.equal(await refused.exited(), 1);
  assert.deepEqual(refused.stderr.lines, [
    `cannot connect to 127.0.0.1:${port}: connection refused`,
  ]);
});

const BAD_COMMAND_LINES: [string[], string][] = [
  [["serv"], "l4chat serv: Missing argument <port>"],
  [["serv", "abc"], 'l4chat serv: Cannot parse <port> "abc": expected a port number'],
  [["serv", "65536"], 'l4chat serv: Cannot use <port> "65536": expected a port in 0..65535'],
  [["serv", "10010", "--max-clientz", "3"], "l4chat serv: Unknown flag --max-clientz"],
  [
    ["serv", "10010", "--max-line", "lots"],
    'l4chat serv: Cannot parse --max-line "lots": expected a size such as 4096, 64KiB or 1MiB',
  ],
  [["clnt", "127.0.0.1", "20000"], "l4chat clnt: Missing argument <name>"],
  [["clnt", "127.0.0.1", "20000", ""], "l4chat clnt: Cannot use an empty <name>"],
  [
    ["clnt", "127.0.0.1", "0", "jin"],
    'l4chat clnt: Cannot use <port> "0": expected a port in 1..65535',
  ],
  [["chat"], 'l4chat: Unknown subcommand "chat"'],
  [[], "l4chat: Missing subcommand"],
];

for (const [args, message] of BAD_COMMAND_LINES) {
  Deno.test(`l4chat ${args.join(" ")} prints one line and the usage, exit 2`, async () => {
    await using proc = new L4chat(args);
    assert.equal(await proc.exited(), 2);
    assert.equal(proc.stderr.lines.length, 2, proc.stderr.lines.join("\n"));
    assert.equal(proc.stderr.lines[0], message);
    assert.match(proc.stderr.lines[1], /^usage: l4chat /);
  });
}

Deno.test("l4chat --help, serv --help and --version exit 0 and state the defaults", async () => {
  await using help = new L4chat(["serv", "--help"]);
  assert.equal(await help.exited(), 0);
  const text = help.stdout.lines.join("\n");
  assert.match(text, /--max-clients N .*\(default: 256\)/);
  assert.match(text, /--max-line BYTES[\s\S]*\(default: 4096\)/);
  assert.match(text, /--max-output BYTES[\s\S]*\(default: 1MiB\)/);
  await using version = new L4chat(["--version"]);
  assert.equal(await version.exited(), 0);
  assert.match(version.stdout.lines[0], /^l4chat \d+\.\d+\.\d+ \(/);
});
