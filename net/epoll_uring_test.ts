import assert from "node:assert/strict";
import type { Libc } from "./_libc.ts";
import { denoLibc } from "./_libc_deno.ts";
import { denoRingSys } from "./_uring_deno.ts";
import { epollSockets, openRelayRing, type RelayRing } from "./epoll.ts";
import type { Conn } from "./mod.ts";

const libc = denoLibc();
/** A ring of its own for each engine (a ring takes one eventfd), or why there is none. */
function newRing(): RelayRing | { unavailable: string } {
  return "unavailable" in libc ? libc : openRelayRing(denoRingSys());
}
const probe = newRing();
const unavailable = "unavailable" in probe ? probe.unavailable : undefined;

/** The engine's `libc`, calling `onHandOver` whenever the loop hands its wait to another thread. */
function watchingHandOvers(onHandOver: () => void): Libc {
  const real = libc as Libc;
  return {
    ...real,
    epollWait: (...args) => {
      onHandOver();
      return real.epollWait(...args);
    },
  };
}

/** Resolves with `promise`, or rejects after `ms` saying `what` never happened. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The other process of the test below (`deno eval`, argument: the relay's port): prints the
 * port of its server, connects its client to the relay, and once told `go` on its standard
 * input, sends `ping` through the relay and waits for `pong` back.
 */
const PEERS = `
const [port] = Deno.args.map(Number);
const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
console.log(listener.addr.port);
const server = await listener.accept();
const client = await Deno.connect({ hostname: "127.0.0.1", port });
const buf = new Uint8Array(16);
await Deno.stdin.read(buf);
await client.write(new TextEncoder().encode("ping"));
if ((await server.read(buf)) !== 4) Deno.exit(1);
await server.write(new TextEncoder().encode("pong"));
if ((await client.read(buf)) !== 4) Deno.exit(1);
client.close();
server.close();
listener.close();
`;

Deno.test({
  name: "uring relay: bytes from another process reach it while the loop waits on the other thread",
  ignore: unavailable !== undefined,
  async fn() {
    // A ring whose completions wait for this thread's next entry into the kernel
    // (IORING_SETUP_COOP_TASKRUN) never wakes a loop whose wait is on another thread: this
    // thread then sleeps in the runtime's own wait, and the relay stalls.
    let handedOver = () => {};
    const sockets = epollSockets(watchingHandOvers(() => handedOver()), probe as RelayRing);
    const frontListener = await sockets.listen({ hostname: "127.0.0.1", port: 0 });
    const peers = new Deno.Command(Deno.execPath(), {
      args: ["eval", PEERS, String(frontListener.addr.port)],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const lines = peers.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const stdin = peers.stdin.getWriter();
    const ends: Conn[] = [];
    try {
      const serverPort = Number((await lines.read()).value);
      const accepted = frontListener[Symbol.asyncIterator]().next();
      const upstream = await sockets.connect({ hostname: "127.0.0.1", port: serverPort });
      ends.push(upstream);
      const front = (await accepted).value as Conn;
      ends.push(front);
      const quiet = new Promise<void>((resolve) => handedOver = resolve);
      const counters = { bytesUp: 0, bytesDown: 0 };
      const relayed = sockets.relay(front, upstream, counters);
      // Nothing moves until told to: the loop hands its wait over.
      await within(quiet, 5000, "the loop never handed its wait over");
      await stdin.write(new TextEncoder().encode("go\n"));
      const status = await within(peers.status, 10_000, "ping and pong never went through");
      assert.equal(status.code, 0);
      assert.equal(await relayed, undefined);
      assert.deepEqual(counters, { bytesUp: 4, bytesDown: 4 });
    } finally {
      frontListener.close();
      for (const conn of ends) conn.close();
      await stdin.close().catch(() => {});
      // Cancelling the reader cancels the pipe and the child's stdout under it.
      await lines.cancel().catch(() => {});
      try {
        peers.kill();
      } catch {
        // It has exited.
      }
      await peers.status;
    }
  },
});

Deno.test({
  name:
    "uring relay: 2,000 exchanges closed by the server first each carry the whole request and reply",
  ignore: unavailable !== undefined,
  async fn() {
    // Each relay shuts the client's side when the server's reply ends, and the next
    // connections take the freed descriptors at once: a shutdown made by descriptor number
    // after the close (as io_uring makes one, on a worker thread) hits a new connection,
    // whose request then fails with "broken pipe".
    const sockets = epollSockets(libc as Libc, newRing() as RelayRing);
    const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const front = await sockets.listen({ hostname: "127.0.0.1", port: 0 });
    const request = new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n");
    const reply = new TextEncoder().encode(`HTTP/1.0 200 OK\r\n\r\n${"x".repeat(100)}`);
    const serving = (async () => {
      for await (const conn of server) {
        (async () => {
          const buf = new Uint8Array(64);
          let got = 0;
          while (got < request.length) {
            const n = await conn.read(buf.subarray(got));
            if (n === null) break;
            got += n;
          }
          await conn.write(reply).catch(() => {});
          conn.close();
        })();
      }
    })();
    const relaying = (async () => {
      for await (const conn of front) {
        sockets.connect({ hostname: "127.0.0.1", port: server.addr.port }).then(
          (upstream) => sockets.relay(conn, upstream, { bytesUp: 0, bytesDown: 0 }),
          () => conn.close(),
        );
      }
    })();
    const failures: string[] = [];
    const exchange = async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: front.addr.port });
      try {
        await conn.write(request);
        const buf = new Uint8Array(256);
        let got = 0;
        for (;;) {
          const n = await conn.read(buf.subarray(got));
          if (n === null) break;
          got += n;
        }
        if (got !== reply.length) failures.push(`${got} bytes of ${reply.length}`);
      } catch (err) {
        failures.push((err as Error).message);
      } finally {
        conn.close();
      }
    };
    try {
      const work = (async () => {
        for (let round = 0; round < 40; round++) {
          await Promise.all(Array.from({ length: 50 }, exchange));
        }
      })();
      await within(work, 60_000, "2,000 exchanges did not end");
      assert.deepEqual(failures, []);
    } finally {
      front.close();
      server.close();
      await relaying;
      await serving;
    }
  },
});
