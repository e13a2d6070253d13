import assert from "node:assert/strict";
import type { Libc } from "./_libc.ts";
import { denoLibc } from "./_libc_deno.ts";
import { denoRingSys } from "./_uring_deno.ts";
import type { RingSys } from "./_uring.ts";
import { type EpollSockets, epollSockets, openRelayRing, type RelayRing } from "./epoll.ts";
import type { Conn, RelayCounters } from "./mod.ts";
import { deadline } from "./_contract.ts";
import { relayEnds, spawnPeers } from "./_ping_pong.ts";

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

/**
 * The ring's system calls, calling `onWaited(timeoutMs)` after each wait for completions
 * ({@linkcode Ring.wait}) with its timeout.
 */
function watchingRingWaits(onWaited: (timeoutMs: number) => void): RingSys {
  const real = denoRingSys() as RingSys;
  return {
    ...real,
    enter(fd, toSubmit, minComplete, flags, arg = 0, argSize = 0) {
      const res = real.enter(fd, toSubmit, minComplete, flags, arg, argSize);
      if (arg !== 0) {
        // struct io_uring_getevents_arg: the timespec's address at byte 16.
        const args = new Deno.UnsafePointerView(Deno.UnsafePointer.create(BigInt(arg))!);
        const ts = Number(args.getBigUint64(16));
        const time = new Deno.UnsafePointerView(Deno.UnsafePointer.create(BigInt(ts))!);
        onWaited(Number(time.getBigInt64(0)) * 1000 + Number(time.getBigInt64(8)) / 1e6);
      }
      return res;
    },
  };
}

Deno.test({
  name: "uring relay: bytes from another process reach it once the loop has gone quiet",
  ignore: unavailable !== undefined,
  async fn() {
    // The ring posts completions only when the loop asks (IORING_SETUP_DEFER_TASKRUN). A loop
    // with nothing to do hands its wait to another thread, which hears of them only through the
    // eventfd the ring signals; where the kernel does not signal it for them (see
    // `Ring.notify`), it waits on the ring instead, for longer. Without the eventfd
    // nothing on the ring completed on the other thread (checked, with `Ring.notify` left out:
    // the connect to the peers' server did not, and the test failed at that deadline).
    let wentQuiet = () => {};
    const ring = openRelayRing(watchingRingWaits((ms) => ms > 1 && wentQuiet())) as RelayRing;
    const sockets = epollSockets(watchingHandOvers(() => wentQuiet()), ring);
    const frontListener = await sockets.listen({ hostname: "127.0.0.1", port: 0 });
    await using peers = spawnPeers(frontListener.addr.port, 1, true);
    const ends: Conn[] = [];
    try {
      const { front, upstream } = await relayEnds(sockets, frontListener, peers.lines);
      ends.push(front, upstream);
      const quiet = new Promise<void>((resolve) => wentQuiet = resolve);
      const counters = { bytesUp: 0, bytesDown: 0 };
      const relayed = sockets.relay(front, upstream, counters);
      // Nothing moves until told to: the loop hands its wait over, or waits long on the ring.
      await deadline(quiet, 5000, "the loop to go quiet");
      await peers.stdin.write(new TextEncoder().encode("go\n"));
      const status = await deadline(peers.status, 10_000, "ping and pong through the relay");
      assert.equal(status.code, 0);
      assert.equal(await relayed, undefined);
      assert.deepEqual(counters, { bytesUp: 4, bytesDown: 4 });
    } finally {
      frontListener.close();
      for (const conn of ends) conn.close();
    }
  },
});

Deno.test({
  name:
    "uring relay: the loop is woken for what completes on the ring, not by its waits running out",
  ignore: unavailable !== undefined,
  async fn() {
    // Ping-pong from another process, one round at a time: each round, the loop has nothing to
    // do until a peer's bytes come. A wait that runs out while the ring holds completions to
    // post slept through them (on `6.18.44-fc-v1272`, the eventfd in the epoll set was not
    // signalled for them: every round waited out a 1 ms wait, and the relay made a tenth of
    // HAProxy's rate over one connection).
    const ROUNDS = 200;
    let sleptThrough = 0;
    const relayRing = openRelayRing(watchingRingWaits(() => {
      if (ring.due && !ring.ready) sleptThrough++;
    })) as RelayRing;
    const ring = relayRing.ring;
    const real = libc as Libc;
    const watched: Libc = {
      ...real,
      epollPoll(ep, events, maxEvents, timeoutMs) {
        const n = real.epollPoll(ep, events, maxEvents, timeoutMs);
        if (timeoutMs > 0 && n <= 0 && ring.due) sleptThrough++;
        return n;
      },
    };
    const sockets = epollSockets(watched, relayRing);
    const frontListener = await sockets.listen({ hostname: "127.0.0.1", port: 0 });
    await using peers = spawnPeers(frontListener.addr.port, ROUNDS);
    const ends: Conn[] = [];
    try {
      const { front, upstream } = await relayEnds(sockets, frontListener, peers.lines);
      ends.push(front, upstream);
      const counters = { bytesUp: 0, bytesDown: 0 };
      const relayed = sockets.relay(front, upstream, counters);
      const status = await deadline(peers.status, 30_000, "ping and pong through the relay");
      assert.equal(status.code, 0);
      assert.equal(await relayed, undefined);
      assert.deepEqual(counters, { bytesUp: 4 * ROUNDS, bytesDown: 4 * ROUNDS });
      assert.ok(sleptThrough < ROUNDS / 10, `${sleptThrough} waits of ${ROUNDS} rounds`);
    } finally {
      frontListener.close();
      for (const conn of ends) conn.close();
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
    const request = new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n");
    const reply = new TextEncoder().encode(`HTTP/1.0 200 OK\r\n\r\n${"x".repeat(100)}`);
    await using server = serveEach(async (conn) => {
      const buf = new Uint8Array(64);
      let got = 0;
      while (got < request.length) {
        const n = await conn.read(buf.subarray(got));
        if (n === null) break;
        got += n;
      }
      await conn.write(reply).catch(() => {});
      conn.close();
    });
    await using front = await relayingTo(sockets, server.port);
    const failures: string[] = [];
    const exchange = async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: front.port });
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
    const work = (async () => {
      for (let round = 0; round < 40; round++) {
        await Promise.all(Array.from({ length: 50 }, exchange));
      }
    })();
    await deadline(work, 60_000, "2,000 exchanges");
    assert.deepEqual(failures, []);
  },
});

Deno.test({
  name: "uring: closing the last socket of an engine reaches the peer (the loop is ending)",
  ignore: unavailable !== undefined,
  async fn() {
    // As a health check does in `lb --workers`, whose main thread listens on nothing: once its
    // connect has completed, nothing is left on the ring or in the epoll set, and the loop ends;
    // a close queued then must still be handed to the kernel.
    const sockets = epollSockets(libc as Libc, newRing() as RelayRing);
    const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const accepted = server.accept();
      const conn = await sockets.connect({ hostname: "127.0.0.1", port: server.addr.port });
      // At once, as a health check does: the loop may not have ended yet, only be about to.
      conn.close();
      using peer = await accepted;
      const read = peer.read(new Uint8Array(16));
      assert.equal(await deadline(read, 5000, "the peer to see the close"), null);
    } finally {
      server.close();
    }
  },
});

Deno.test({
  name: "uring relay: the end of a short reply is read in the submission that sends the reply",
  ignore: unavailable !== undefined,
  async fn() {
    // What the engine asks of the kernel, in order: `enter <entries submitted>`, `shutdown`.
    const log: string[] = [];
    const real = denoRingSys();
    if ("unavailable" in real) return;
    const sys = {
      ...real,
      enter(fd: number, toSubmit: number, minComplete: number, flags: number) {
        log.push(`enter ${toSubmit}`);
        return real.enter(fd, toSubmit, minComplete, flags);
      },
    };
    const recorder: Libc = {
      ...(libc as Libc),
      shutdown: (fd, how) => {
        log.push("shutdown");
        return (libc as Libc).shutdown(fd, how);
      },
    };
    const sockets = epollSockets(recorder, openRelayRing(sys) as RelayRing);
    const frontListener = await sockets.listen({ hostname: "127.0.0.1", port: 0 });
    const backListener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const ends: { close(): void }[] = [frontListener, backListener];
    try {
      const accepted = frontListener[Symbol.asyncIterator]().next();
      const client = await Deno.connect({ hostname: "127.0.0.1", port: frontListener.addr.port });
      const front = (await accepted).value as Conn;
      const upstream = await sockets.connect({
        hostname: "127.0.0.1",
        port: backListener.addr.port,
      });
      const server = await backListener.accept();
      ends.push(client, front, upstream, server);
      // The reply and its end wait for the relay: its first receive takes the reply alone.
      await server.write(new TextEncoder().encode("pong"));
      await server.closeWrite();
      const relayed = sockets.relay(front, upstream, { bytesUp: 0, bytesDown: 0 });
      assert.equal(
        await deadline(new Response(client.readable).text(), 10_000, "the reply"),
        "pong",
      );
      // The receive that reads the end went linked behind the reply's send, in one submission;
      // it would otherwise be queued once the send had completed, and go in the next one.
      const shut = log.indexOf("shutdown");
      assert.ok(shut > 0, `no shutdown: ${log.join(", ")}`);
      assert.equal(log.slice(0, shut).findLast((entry) => entry.startsWith("enter")), "enter 2");
      server.close();
      assert.equal(await deadline(relayed, 10_000, "the relay to end"), undefined);
    } finally {
      for (const end of ends) {
        try {
          end.close();
        } catch {
          // Closed already.
        }
      }
    }
  },
});

Deno.test({
  name: "uring relay: relays that find no buffer free wait for one, then carry every byte",
  ignore: unavailable !== undefined,
  async fn() {
    // One buffer for every receive of 16 relays echoing at once: most receives find none
    // (ENOBUFS) and must be made again when a send gives the buffer back.
    const sockets = epollSockets(libc as Libc, openRelayRing(denoRingSys(), 1) as RelayRing);
    await using server = serveEach(async (conn) => {
      const buf = new Uint8Array(4096);
      try {
        for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
          await conn.write(buf.subarray(0, n));
        }
      } finally {
        conn.close();
      }
    });
    await using front = await relayingTo(sockets, server.port);
    const rounds = 50;
    const client = async (id: number) => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: front.port });
      try {
        const echoed = new Uint8Array(100);
        for (let round = 0; round < rounds; round++) {
          const message = new TextEncoder().encode(`${id}:${round}:`.padEnd(100, "."));
          await conn.write(message);
          await readFull(conn, echoed, `client ${id}, round ${round}`);
          assert.deepEqual(echoed, message);
        }
      } finally {
        conn.close();
      }
    };
    const clients = Promise.all(Array.from({ length: 16 }, (_, id) => client(id)));
    await deadline(clients, 20_000, `16 clients' ${rounds} echoes through one buffer`);
  },
});

Deno.test({
  name: "uring relay: a client that stops reading does not keep the shared buffer from the rest",
  ignore: unavailable !== undefined,
  async fn() {
    // One buffer: the relay to a client that reads nothing ends up with a send that cannot
    // complete. Holding that buffer would stall every other relay for as long.
    const sockets = epollSockets(libc as Libc, openRelayRing(denoRingSys(), 1) as RelayRing);
    const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    await using front = await relayingTo(sockets, server.addr.port);
    const conns: Deno.Conn[] = [];
    try {
      const [stopped, toStopped] = await throughRelay(front.port, server);
      conns.push(stopped, toStopped);
      // Chunks under a buffer's size, each relayed before the next (a receive that fills a
      // buffer would make a bulk flow, with a buffer of its own), until the client's socket
      // is full: then a chunk stays in the relay's send.
      // Byte i of the stream is i % 251: a chunk lost, repeated or cut at the wrong place
      // (the rest of a send that was cancelled) shows.
      const chunk = new Uint8Array(8000);
      let written = 0;
      while (written < 64 * 1024 * 1024) {
        for (let i = 0; i < chunk.length; i++) chunk[i] = (written + i) % 251;
        await toStopped.write(chunk);
        written += chunk.length;
        if (!await relayedUpTo(() => front.counters[0].bytesDown, written, 200)) break;
      }
      const [echoing, echoer] = await throughRelay(front.port, server);
      conns.push(echoing, echoer);
      const echoes = (async () => {
        const message = new TextEncoder().encode("ping");
        const buf = new Uint8Array(4);
        for (let round = 0; round < 20; round++) {
          await echoing.write(message);
          await readFull(echoer, buf, "the server");
          await echoer.write(buf);
          await readFull(echoing, buf, "the client");
        }
      })();
      await deadline(echoes, 10_000, "20 echoes beside the client that stopped reading");
      // And the one that stopped gets every byte once it reads again.
      const reading = (async () => {
        const buf = new Uint8Array(64 * 1024);
        let got = 0;
        while (got < written) {
          const n = await stopped.read(buf);
          if (n === null) break;
          for (let i = 0; i < n; i++) {
            if (buf[i] !== (got + i) % 251) throw new Error(`byte ${got + i} is wrong`);
          }
          got += n;
        }
        return got;
      })();
      assert.equal(await deadline(reading, 10_000, "the client to read the rest"), written);
    } finally {
      for (const conn of conns) conn.close();
      server.close();
    }
  },
});

for (const engine of ["uring", "epoll"] as const) {
  Deno.test({
    name: `${engine} relay: a bulk flow whose client stops reading gives its bulk buffer back`,
    ignore: engine === "uring" ? unavailable !== undefined : "unavailable" in libc,
    fn: () => bulkStoppedReader(engine),
  });
}

/**
 * Fast writes make a bulk flow (a buffer of 1 MiB of its own); its client then reads nothing.
 * What the relay's send has left goes to a copy, and the buffer back: on the ring once the send
 * has waited a second (the timer cancels it), on epoll at the send's partial count. Checked by
 * hand with a copy from the wrong offset: the test failed on each. The client then gets every
 * byte, in order, once it reads again.
 */
async function bulkStoppedReader(engine: "uring" | "epoll"): Promise<void> {
  const ring = engine === "uring" ? newRing() as RelayRing : undefined;
  const sockets = epollSockets(libc as Libc, ring);
  const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await using front = await relayingTo(sockets, server.addr.port);
  const conns: Deno.Conn[] = [];
  try {
    const [stopped, toStopped] = await throughRelay(front.port, server);
    conns.push(stopped, toStopped);
    let written = 0;
    let stop = false;
    const writing = (async () => {
      const chunk = new Uint8Array(64 * 1024);
      while (!stop) {
        for (let i = 0; i < chunk.length; i++) chunk[i] = (written + i) % 251;
        for (let at = 0; at < chunk.length;) at += await toStopped.write(chunk.subarray(at));
        written += chunk.length;
      }
    })();
    // Until the relay has stopped moving, and for two looks of the bulk timer at least.
    const startedAt = Date.now();
    await deadline(
      relayedUpTo(() => front.counters[0].bytesDown, Infinity, 300),
      10_000,
      "the relay to stop moving",
    );
    const left = 2500 - (Date.now() - startedAt);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, left)));
    stop = true;
    const reading = (async () => {
      const buf = new Uint8Array(256 * 1024);
      let got = 0;
      for (let n = await stopped.read(buf); n !== null; n = await stopped.read(buf)) {
        for (let i = 0; i < n; i++) {
          if (buf[i] !== (got + i) % 251) throw new Error(`byte ${got + i} is wrong`);
        }
        got += n;
      }
      return got;
    })();
    await deadline(writing, 10_000, "the server's last write");
    await toStopped.closeWrite();
    assert.equal(await deadline(reading, 10_000, "the client to read the rest"), written);
    assert.ok(written > 4 * 1024 * 1024, `${written} bytes written`);
  } finally {
    for (const conn of conns) conn.close();
    server.close();
  }
}

/** A client's connection to the relay listening on `port`, and its server's end of it. */
async function throughRelay(port: number, server: Deno.Listener): Promise<[Deno.Conn, Deno.Conn]> {
  const client = await Deno.connect({ hostname: "127.0.0.1", port });
  return [client, await server.accept()];
}

/** Reads until `buf` is full; `who` names the reader when the stream ends first. */
async function readFull(conn: Deno.Conn, buf: Uint8Array, who: string): Promise<void> {
  for (let got = 0; got < buf.length;) {
    const n = await conn.read(buf.subarray(got));
    if (n === null) throw new Error(`${who}: end of stream after ${got} bytes of ${buf.length}`);
    got += n;
  }
}

/** A loopback listener of Deno's own that runs `handle` on each connection; disposing closes it. */
function serveEach(handle: (conn: Deno.Conn) => Promise<void>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    for await (const conn of listener) handle(conn).catch(() => {});
  })();
  return {
    port: listener.addr.port,
    async [Symbol.asyncDispose]() {
      listener.close();
      await serving;
    },
  };
}

/**
 * A listener of `sockets` that relays each connection to `port`, with the counters of each relay;
 * disposing of it closes the listener.
 */
async function relayingTo(sockets: EpollSockets, port: number) {
  const listener = await sockets.listen({ hostname: "127.0.0.1", port: 0 });
  const counters: RelayCounters[] = [];
  const relaying = (async () => {
    for await (const conn of listener) {
      const relayed = { bytesUp: 0, bytesDown: 0 };
      counters.push(relayed);
      sockets.connect({ hostname: "127.0.0.1", port }).then(
        (upstream) => sockets.relay(conn, upstream, relayed),
        () => conn.close(),
      );
    }
  })();
  return {
    port: listener.addr.port,
    counters,
    async [Symbol.asyncDispose]() {
      listener.close();
      await relaying;
    },
  };
}

/**
 * Waits until `count()` reaches `target`; false once it has not moved for `quietMs` (there is
 * no event for a relay's counters: they are plain fields, so they are looked at every ms).
 */
async function relayedUpTo(count: () => number, target: number, quietMs: number) {
  let last = count();
  let movedAt = Date.now();
  while (count() < target) {
    await new Promise((resolve) => setTimeout(resolve, 1));
    if (count() !== last) {
      last = count();
      movedAt = Date.now();
    } else if (Date.now() - movedAt > quietMs) {
      return false;
    }
  }
  return true;
}
