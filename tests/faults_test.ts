/**
 * Faults end to end: real `l4chat lb` and `l4chat serv` processes, backends killed, silent,
 * unreachable or resetting, clients resetting at every stage, SIGTERM under load. Every wait
 * is bounded; nothing here measures time against a threshold.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import {
  deadline,
  EchoBackend,
  type L4chat,
  l4chatCommand,
  openFds,
  RawClient,
  runLb,
  RUNS_WITH_DENO_PERMISSIONS,
  startLb,
  startServ,
} from "./_helpers.ts";

const NAT_ZERO = /Current NAT table length : 0$/;

/** The local port of a Deno connection, as the load balancer logs it: `<127.0.0.1,port>`. */
function clientTag(conn: Deno.TcpConn): string {
  const port = conn.localAddr.port;
  return `<127\\.0\\.0\\.1,${port}>`;
}

/**
 * Connects a client through the load balancer on `port` and waits for `lb`'s line that gives
 * it the backend on 127.0.0.1 port `backendPort`; `options` bound that wait.
 */
async function connectRouted(
  lb: L4chat,
  port: number,
  backendPort: number,
  options?: { from?: number; timeoutMs?: number },
): Promise<RawClient> {
  const client = await RawClient.connect(port);
  try {
    await lb.stderr.waitFor(
      new RegExp(`client ${clientTag(client.conn)} -> 127\\.0\\.0\\.1:${backendPort}$`),
      options,
    );
  } catch (err) {
    client[Symbol.dispose]();
    throw err;
  }
  return client;
}

/**
 * A listener that never accepts, with its backlog filled: Linux then drops further SYNs, so a
 * connect to it can only time out (as net/_black_hole.ts explains). Linux only.
 */
async function blackHole(): Promise<{ port: number; close: () => void }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  const filled: Deno.TcpConn[] = [];
  const abandoned: Promise<void>[] = [];
  for (let i = 0; i < 8192; i++) {
    const pending = Deno.connect({ hostname: "127.0.0.1", port });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), 200);
    });
    const result = await Promise.race([pending, timedOut]);
    clearTimeout(timer);
    if (result === "timeout") {
      abandoned.push(pending.then((conn) => conn.close(), () => {}));
      break;
    }
    filled.push(result);
  }
  return {
    port,
    close: () => {
      for (const conn of filled) conn.close();
      listener.close();
    },
  };
}

/**
 * lb flags for the black-hole tests: one connect try, and health checks far apart that never
 * fail often enough to mark a backend dead, so that only the clients' own connects count.
 */
const ONE_TRY_NO_CHECKS = ["--connect-tries", "1", "--hc-interval", "60s", "--hc-fall", "1000"];

/** Sends lines to `client` until writing fails; resolves then. */
async function streamLines(client: RawClient, name: string): Promise<void> {
  try {
    for (let i = 0;; i++) {
      await client.send(`[${name}] ${i} ${"x".repeat(200)}\n`);
      if (i % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    }
  } catch {
    // The connection was closed under us: that is what the test waits for.
  }
}

Deno.test({
  name: "lb: a backend killed mid-transfer closes its clients at once, only them",
  // The streaming writer is abandoned mid-write when the connection dies.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { proc: servA, port: portA } = await startServ([
      "--max-output",
      "64MiB",
      "--presence",
      "off",
    ]);
    await using _a = servA;
    const { proc: servB, port: portB } = await startServ(["--presence", "off"]);
    await using _b = servB;
    // Active checks far apart and one failure enough: only the proxy's own connects decide.
    const { proc: lb, port } = await startLb([portA, portB], [
      "--hc-interval",
      "60s",
      "--hc-fall",
      "1",
    ]);
    await using _lb = lb;

    using victim = await connectRouted(lb, port, portA);
    using bystander = await connectRouted(lb, port, portB);
    await victim.send("[victim] hello\n");
    assert.equal(await victim.readLine(5000), "[victim] hello");

    const streaming = streamLines(victim, "victim");
    const mark = lb.stderr.mark;
    servA.kill("SIGKILL");
    await servA.exited();
    // The client sees its connection end (end of stream or reset), and its NAT row goes.
    assert.ok(await victim.closedByPeer(5000));
    await deadline(streaming, 5000, "the writer never saw the connection close");
    await lb.stderr.waitFor(new RegExp(`client ${clientTag(victim.conn)} terminated$`), {
      from: mark,
      timeoutMs: 5000,
    });
    await lb.stderr.waitFor(/Current NAT table length : 1$/, { from: mark, timeoutMs: 5000 });

    // The next client is sent to the dead backend first: that connect fails, marks it dead
    // (passive health), and the client is given the live one.
    using next = await connectRouted(lb, port, portB, { from: mark, timeoutMs: 5000 });
    await lb.stderr.waitFor(new RegExp(`port : ${portA} dead \\(connect failed\\)`), {
      from: mark,
      timeoutMs: 5000,
    });
    // The new client speaks first: its own line back says the backend has it in the room (the
    // lb logs the route once connected, before the backend has accepted).
    await next.send("[next] hi\n");
    assert.equal(await next.readLine(5000), "[next] hi");
    assert.equal(await bystander.readLine(5000), "[next] hi");
    // The other connection never noticed.
    await bystander.send("[bystander] still here\n");
    assert.equal(await bystander.readLine(5000), "[bystander] still here");
    assert.equal(await next.readLine(5000), "[bystander] still here");
    // Every later client goes to the live backend while the dead one stays down.
    for (let i = 0; i < 3; i++) {
      using _later = await connectRouted(lb, port, portB, { timeoutMs: 5000 });
    }
    bystander.conn.close();
    next.conn.close();
    await lb.stderr.waitFor(NAT_ZERO, { from: lb.stderr.mark, timeoutMs: 5000 });
  },
});

Deno.test({
  name: "lb: a black-hole backend times out its connects while other clients are served",
  // A connect to the black hole is abandoned at its timeout; the kernel ends it later.
  sanitizeOps: false,
  fn: async () => {
    const hole = await blackHole();
    try {
      await using echo = new EchoBackend();
      const { proc: lb, port } = await startLb([hole.port, echo.port], [
        "--connect-timeout",
        "400ms",
        ...ONE_TRY_NO_CHECKS,
      ]);
      await using _lb = lb;
      // Round robin alternates: the even clients go to the black hole, the odd to the echo.
      const clients = await Promise.all(
        Array.from({ length: 10 }, () => RawClient.connect(port)),
      );
      try {
        const results = await Promise.all(clients.map(async (client) => {
          const match = await lb.stderr.waitFor(
            new RegExp(
              `(?:client ${
                clientTag(client.conn)
              } -> \\S+:(\\d+)$)|(?:cannot connect to server \\S+:(\\d+) for client ${
                clientTag(client.conn)
              }: (.*)$)`,
            ),
            { timeoutMs: 10_000 },
          );
          if (match[1] !== undefined) {
            await client.send("ping\n");
            assert.equal(await client.readLine(5000), "ping");
            return "served";
          }
          assert.equal(Number(match[2]), hole.port);
          assert.match(match[3], /timed out/);
          assert.ok(await client.closedByPeer(5000));
          return "timed out";
        }));
        assert.equal(results.filter((r) => r === "served").length, 5);
        assert.equal(results.filter((r) => r === "timed out").length, 5);
      } finally {
        for (const client of clients) client[Symbol.dispose]();
      }
      await lb.stderr.waitFor(NAT_ZERO, { timeoutMs: 5000 });
    } finally {
      hole.close();
    }
  },
});

Deno.test("lb: --idle-timeout closes a connection to a backend that accepts and never answers", async () => {
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.TcpConn[] = [];
  const accepting = (async () => {
    try {
      for await (const conn of silent) held.push(conn);
    } catch {
      // Closed.
    }
  })();
  try {
    await using echo = new EchoBackend();
    const { proc: lb, port } = await startLb([silent.addr.port, echo.port], [
      "--idle-timeout",
      "500ms",
      "--log-format",
      "json",
    ]);
    await using _lb = lb;
    using stuck = await RawClient.connect(port);
    await lb.stderr.waitFor(
      new RegExp(`client ${clientTag(stuck.conn)} -> .*:${silent.addr.port}"`),
    );
    await stuck.send("anyone there?\n");
    // While it hangs, another client is served, and kept alive by its own traffic (a ping
    // every 100 ms, well inside the idle timeout).
    using live = await RawClient.connect(port);
    let pinging = true;
    const pinger = (async () => {
      for (let i = 0; pinging; i++) {
        await live.send(`ping ${i}\n`);
        assert.equal(await live.readLine(5000), `ping ${i}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    assert.ok(await stuck.closedByPeer(10_000));
    await lb.stderr.waitFor(
      new RegExp(`client ${clientTag(stuck.conn)} terminated".*"reason":"idle timeout"`),
      { timeoutMs: 5000 },
    );
    pinging = false;
    await pinger;
    // The live client outlived the stuck one's timeout; once silent, it times out in turn.
    assert.ok(await live.closedByPeer(10_000));
    await lb.stderr.waitFor(
      new RegExp(`client ${clientTag(live.conn)} terminated".*"reason":"idle timeout"`),
      { timeoutMs: 5000 },
    );
    await lb.stderr.waitFor(/"message":" {3}Current NAT table length : 0"/, { timeoutMs: 5000 });
  } finally {
    silent.close();
    await accepting;
    for (const conn of held) conn.close();
  }
});

/**
 * A backend that does what each connection's first line asks, to produce resets and
 * half-closes at a chosen moment:
 * - `echo`: echoes, and ends when the client ends;
 * - `reset`: resets at once;
 * - `reset-on-end`: waits for the client's end of stream, then resets;
 * - `end-then-reset`: ends its own side at once, resets when more data arrives;
 * - `talk`: keeps sending a line every 10 ms, even after the client has ended.
 */
function scriptedBackend(): Promise<{ server: Server; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    let script: string | undefined;
    let pending = "";
    let talker: ReturnType<typeof setInterval> | undefined;
    socket.on("error", () => {});
    socket.on("close", () => {
      clearInterval(talker);
      sockets.delete(socket);
    });
    socket.on("data", (chunk: Uint8Array) => {
      if (script === undefined) {
        pending += new TextDecoder().decode(chunk);
        const newline = pending.indexOf("\n");
        if (newline === -1) return;
        script = pending.slice(0, newline);
        if (script === "reset") socket.resetAndDestroy();
        else if (script === "end-then-reset") socket.end();
        else if (script === "talk") {
          talker = setInterval(() => socket.write("talk\n"), 10);
        } else socket.write(pending.slice(newline + 1));
        return;
      }
      if (script === "echo") socket.write(chunk);
      else if (script === "end-then-reset") socket.resetAndDestroy();
    });
    socket.on("end", () => {
      if (script === "reset-on-end") socket.resetAndDestroy();
      else if (script === "echo" || script === undefined) socket.end();
    });
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      resolve({ server, port: (server.address() as { port: number }).port, sockets });
    });
  });
}

/** A node:net client (which can reset) and what happened to it. */
class Client {
  readonly socket: Socket;
  readonly ended: Promise<void>;
  readonly closed: Promise<void>;
  /** Resolves once the load balancer has ended the connection (end of stream or reset). */
  readonly gone: Promise<void>;
  readonly connected: Promise<void>;
  received = "";
  #waiters: (() => void)[] = [];

  constructor(port: number) {
    this.socket = createConnection({ host: "127.0.0.1", port, allowHalfOpen: true });
    this.socket.on("error", () => {});
    this.socket.on("data", (chunk: Uint8Array) => {
      this.received += new TextDecoder().decode(chunk);
      for (const wake of this.#waiters.splice(0)) wake();
    });
    this.connected = new Promise((resolve) => this.socket.once("connect", () => resolve()));
    this.ended = new Promise((resolve) => this.socket.once("end", () => resolve()));
    this.closed = new Promise((resolve) => this.socket.once("close", () => resolve()));
    this.gone = Promise.race([this.ended, this.closed]);
  }

  /** Waits until `text` has been received. */
  async waitFor(text: string): Promise<void> {
    await deadline(
      (async () => {
        while (!this.received.includes(text)) {
          await new Promise<void>((resolve) => this.#waiters.push(resolve));
        }
      })(),
      5000,
      `never received ${JSON.stringify(text)}; got ${JSON.stringify(this.received.slice(-100))}`,
    );
  }

  write(text: string): Promise<void> {
    return new Promise((resolve) => this.socket.write(text, () => resolve()));
  }
}

Deno.test({
  name: "lb: resets from either side at every stage end the connection and free its row",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const backend = await scriptedBackend();
    try {
      const { proc: lb, port } = await startLb([backend.port], ["--hc-interval", "60s"]);
      await using _lb = lb;
      const terminated = /client <127\.0\.0\.1,\d+> terminated$/;
      const fdsBefore = await openFds(lb.pid);
      let expectedTerminations = 0;

      const scenarios: Record<string, (client: Client) => Promise<void>> = {
        "client resets as soon as its row is open": async (client) => {
          await lb.stderr.waitFor(
            new RegExp(`client <127\\.0\\.0\\.1,${client.socket.localPort}> -> `),
            { timeoutMs: 5000 },
          );
          client.socket.resetAndDestroy();
        },
        "client resets mid-transfer": async (client) => {
          await client.write("echo\nabc\n");
          await client.waitFor("abc\n");
          await client.write("x".repeat(100_000));
          client.socket.resetAndDestroy();
        },
        "backend resets mid-transfer": async (client) => {
          await client.write("echo\nabc\n");
          await client.waitFor("abc\n");
          await client.write("more\n");
          // Reset the backend's side of this connection (the only one open) from here.
          for (const socket of backend.sockets) socket.resetAndDestroy();
          await deadline(client.gone, 5000, "client not closed after the backend reset");
        },
        "backend resets at once": async (client) => {
          await client.write("reset\n");
          await deadline(client.gone, 5000, "client not closed after the backend reset");
        },
        "client half-closes, then the backend resets": async (client) => {
          await client.write("reset-on-end\n");
          client.socket.end();
          await deadline(client.gone, 5000, "client not closed after the backend reset");
        },
        "client half-closes, then resets while the backend still talks": async (client) => {
          await client.write("talk\n");
          client.socket.end();
          await client.waitFor("talk\ntalk\n");
          client.socket.resetAndDestroy();
        },
        "backend half-closes, then resets when the client talks": async (client) => {
          await client.write("end-then-reset\n");
          await deadline(client.ended, 5000, "the backend's end never reached the client");
          await client.write("still talking\n");
          await deadline(client.gone, 5000, "client not closed after the backend reset");
        },
        "backend half-closes, then the client resets": async (client) => {
          await client.write("end-then-reset\n");
          await deadline(client.ended, 5000, "the backend's end never reached the client");
          client.socket.resetAndDestroy();
        },
        "both half-close cleanly": async (client) => {
          await client.write("echo\nbye\n");
          await client.waitFor("bye\n");
          client.socket.end();
          await deadline(client.closed, 5000, "a clean close did not complete");
        },
      };
      for (const [name, scenario] of Object.entries(scenarios)) {
        const client = new Client(port);
        await deadline(client.connected, 5000, `${name}: connect`);
        const from = lb.stderr.mark;
        await scenario(client).catch((err) => {
          throw new Error(`${name}: ${err.message}\n${lb.stderr.lines.slice(-8).join("\n")}`);
        });
        client.socket.destroy();
        expectedTerminations++;
        // Every connection that got a NAT row loses it, and exactly once.
        await lb.stderr.waitForCount(terminated, expectedTerminations, 5000).catch((err) => {
          throw new Error(`${name}: ${err.message}`);
        });
        await lb.stderr.waitFor(NAT_ZERO, { from, timeoutMs: 5000 });
      }
      assert.equal(lb.stderr.count(terminated), expectedTerminations);
      // The load balancer is still in service, and holds no socket more than it did.
      const last = new Client(port);
      await last.write("echo\nstill up\n");
      await last.waitFor("still up\n");
      last.socket.end();
      await deadline(last.closed, 5000, "last client not closed");
      await lb.stderr.waitForCount(terminated, expectedTerminations + 1, 5000);
      const fdsAfter = await openFds(lb.pid);
      assert.ok(fdsAfter <= fdsBefore + 2, `fds ${fdsBefore} -> ${fdsAfter}`);
      assert.doesNotMatch(lb.stderr.lines.join("\n"), /unexpected error|^\s+at /m);
    } finally {
      for (const socket of backend.sockets) socket.destroy();
      await new Promise((resolve) => backend.server.close(resolve));
    }
  },
});

Deno.test({
  name: "lb: a client that resets while the backend connect is pending frees its slot",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const hole = await blackHole();
    try {
      // One slot only: if the reset client's slot leaked, the next client would be refused.
      const { proc: lb, port } = await startLb([hole.port], [
        "--connect-timeout",
        "1s",
        "--max-conns",
        "1",
        ...ONE_TRY_NO_CHECKS,
      ]);
      await using _lb = lb;
      for (let i = 0; i < 3; i++) {
        const client = new Client(port);
        await deadline(client.connected, 5000, "connect");
        const from = lb.stderr.mark;
        // Nothing shows that the load balancer has started its connect to the black hole, so
        // give it 150 ms (of the 1 s connect timeout) before the reset; the assertions below do
        // not depend on the timing.
        await new Promise((resolve) => setTimeout(resolve, 150));
        client.socket.resetAndDestroy();
        await lb.stderr.waitFor(/cannot connect to server .*timed out/, { from, timeoutMs: 5000 });
        await lb.stderr.waitFor(/closed: no server available/, { from, timeoutMs: 5000 });
      }
      assert.equal(lb.stderr.count(/refused: max-conns/), 0);
    } finally {
      hole.close();
    }
  },
});

/** Stderr lines that betray a crash: a stack frame or an uncaught error. */
const CRASH = /^\s+at |Uncaught|unexpected error|^error: /;

Deno.test({
  name: "lb: SIGTERM under load stops gracefully, exit 0, no stack trace",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using echo = new EchoBackend();
    const { proc: lb, port } = await startLb([echo.port], ["--grace", "1s"]);
    await using _lb = lb;
    const clients = await Promise.all(Array.from({ length: 50 }, () => RawClient.connect(port)));
    const streams = clients.map((client, i) =>
      (async () => {
        try {
          for (let n = 0;; n++) {
            await client.send(`${i} ${n}\n`);
            await client.readLine(5000);
          }
        } catch {
          // Closed by the load balancer's stop.
        }
      })()
    );
    await lb.stderr.waitForCount(/ -> 127\.0\.0\.1:\d+$/, 50);
    lb.kill("SIGTERM");
    assert.equal(await lb.exited(10_000), 0);
    await deadline(Promise.all(streams), 10_000, "clients not closed by the stop");
    for (const client of clients) client[Symbol.dispose]();
    await lb.stderr.waitFor(/load balancer stopped/);
    assert.deepEqual(lb.stderr.lines.filter((line) => CRASH.test(line)), []);
  },
});

Deno.test({
  name: "serv: SIGTERM under load stops gracefully, exit 0, no stack trace",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { proc: serv, port } = await startServ(["--max-output", "16MiB"]);
    await using _serv = serv;
    const clients = await Promise.all(Array.from({ length: 30 }, () => RawClient.connect(port)));
    await serv.stderr.waitForCount(/Connected client IP/, 30);
    let notices = 0;
    const talkers = clients.map((client, i) =>
      (async () => {
        const writing = (async () => {
          try {
            for (let n = 0;; n++) {
              await client.send(`[c${i}] ${n}\n`);
              if (n % 20 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
            }
          } catch {
            // Closed by the server's stop.
          }
        })();
        try {
          while (true) {
            const line = await client.readLine(10_000);
            if (line === null) break;
            if (line === "* server shutting down") notices++;
          }
        } catch {
          // Reset by the server's stop.
        }
        await writing;
      })()
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    serv.kill("SIGTERM");
    assert.equal(await serv.exited(10_000), 0);
    await deadline(Promise.all(talkers), 10_000, "clients not closed by the stop");
    for (const client of clients) client[Symbol.dispose]();
    assert.ok(notices > 0, "no client got the shutdown notice");
    await serv.stderr.waitFor(/chat server shutting down/);
    assert.deepEqual(serv.stderr.lines.filter((line) => CRASH.test(line)), []);
  },
});

// A config file is read with --allow-read of that file only: the permission the README gives.
Deno.test("lb --config runs with --allow-net and --allow-read of that one file", async () => {
  await using echo = new EchoBackend();
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/lb.jsonc`;
    await Deno.writeTextFile(
      path,
      `{ "listen": "127.0.0.1:0", // a comment
        "backends": ["127.0.0.1:${echo.port}"], }`,
    );
    const { proc: lb, port } = await runLb(["--config", path], { readFiles: [path] });
    await using _lb = lb;
    using client = await RawClient.connect(port);
    await client.send("hello\n");
    assert.equal(await client.readLine(5000), "hello");
    // Without reading the directory it cannot watch it for changes, and says so. (A compiled
    // binary has no permission checks: there, watching works.)
    if (RUNS_WITH_DENO_PERMISSIONS) {
      await lb.stderr.waitFor(/cannot watch .*lb\.jsonc \(.*\): reload with SIGHUP$/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lb goes on serving when its stderr pipe closes (the log's reader went away)", async () => {
  await using backend = new EchoBackend();
  const { cmd, args } = l4chatCommand([
    "lb",
    "127.0.0.1",
    "127.0.0.1",
    String(backend.port),
    "--port",
    "0",
  ]);
  const child = new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).spawn();
  try {
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    let listening: RegExpExecArray | null = null;
    while ((listening = /load balancer listening on .*:(\d+) /.exec(text)) === null) {
      const { value, done } = await deadline(reader.read(), 10_000, `no listening line: ${text}`);
      assert.ok(!done, `lb ended before listening: ${text}`);
      text += value;
    }
    // Nothing reads its stderr from now on: each line it logs meets a closed pipe.
    await reader.cancel();
    for (let i = 0; i < 5; i++) {
      using client = await RawClient.connect(Number(listening[1]));
      await client.send(`ping ${i}\n`);
      assert.equal(await client.readLine(), `ping ${i}`);
    }
    child.kill("SIGTERM");
    assert.equal((await deadline(child.status, 10_000, "lb did not stop")).code, 0);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }
});
