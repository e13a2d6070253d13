import assert from "node:assert/strict";
import {
  AF_INET,
  decodeSockaddr,
  encodeSockaddr,
  type Libc,
  SHUT_WR,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  SOCKADDR_MAX,
} from "./_libc.ts";
import { denoLibc } from "./_libc_deno.ts";
import { epollSockets, openRelayRing, type RelayRing } from "./epoll.ts";
import { denoRingSys } from "./_uring_deno.ts";
import { relayEnds, spawnPeers } from "./_ping_pong.ts";
import { deadline } from "./_contract.ts";
import type { Addr, Conn, Listener } from "./mod.ts";

const libc = denoLibc();
const unavailable = "unavailable" in libc ? libc.unavailable : undefined;

/**
 * `libc` with every descriptor given to `shutdown(2)` recorded in `shut`, and every `recv(2)`
 * in `recvs`, as the descriptor and what it returned.
 */
function recording(
  libc: Libc,
): { libc: Libc; shut: number[]; recvs: [number, number][]; calls: string[] } {
  const shut: number[] = [];
  const recvs: [number, number][] = [];
  // The same, and the looks for events, in order: `shutdown <fd>`, `recv <fd> <n>`, `poll`.
  const calls: string[] = [];
  return {
    libc: {
      ...libc,
      shutdown: (fd, how) => {
        shut.push(fd);
        calls.push(`shutdown ${fd}`);
        return libc.shutdown(fd, how);
      },
      recv: (fd, buf, len) => {
        const n = libc.recv(fd, buf, len);
        recvs.push([fd, n]);
        calls.push(`recv ${fd} ${n}`);
        return n;
      },
      epollPoll: (ep, events, max, timeoutMs) => {
        calls.push("poll");
        return libc.epollPoll(ep, events, max, timeoutMs);
      },
    },
    shut,
    recvs,
    calls,
  };
}

/** The descriptor of an engine connection. */
function fdOf(conn: Conn): number {
  return (conn as unknown as { fd: number }).fd;
}

/**
 * The four ends of client <-> (front, upstream) <-> server, on `sockets`: what a proxy relays
 * between (front and upstream) and the peers it relays for.
 */
async function fourEnds(
  sockets: ReturnType<typeof epollSockets>,
): Promise<{ client: Conn; front: Conn; upstream: Conn; server: Conn }> {
  const accepted = async (listener: Listener, connect: () => Promise<Conn>) => {
    try {
      const next = listener[Symbol.asyncIterator]().next();
      const near = await connect();
      return { near, far: (await next).value as Conn };
    } finally {
      listener.close();
    }
  };
  const frontListener = await sockets.listen({ hostname: "127.0.0.1", port: 0 });
  const backListener = await sockets.listen({ hostname: "127.0.0.1", port: 0 });
  const front = await accepted(frontListener, () => sockets.connect(frontListener.addr));
  const back = await accepted(backListener, () => sockets.connect(backListener.addr));
  return { client: front.near, front: front.far, upstream: back.near, server: back.far };
}

/**
 * The engine over a `libc` that records `shutdown(2)`s and `recv(2)`s (relaying on `ring`,
 * when given), with {@linkcode fourEnds}; `relayShuts()` lists the shutdowns made on the
 * relay's two sockets, `recvsOf(conn)` what each read of `conn` returned.
 */
async function rig(ring?: RelayRing) {
  const { libc: recorder, shut, recvs, calls } = recording(libc as Libc);
  const sockets = epollSockets(recorder, ring);
  const ends = await fourEnds(sockets);
  const mine = [fdOf(ends.front), fdOf(ends.upstream)];
  return {
    sockets,
    relayShuts: () => shut.filter((fd) => mine.includes(fd)),
    /** The relay's shutdowns and reads, and the looks for events, in order. */
    relayCalls: () =>
      calls.filter((call) => call === "poll" || mine.includes(Number(call.split(" ")[1]))),
    recvsOf: (conn: Conn) => recvs.filter(([fd]) => fd === fdOf(conn)).map(([, n]) => n),
    ...ends,
  };
}

/**
 * A test of the relay on {@linkcode rig} with `engine` (epoll alone, or relays on a ring), whose
 * four ends it closes however the test ends.
 */
function rigTest(
  name: string,
  fn: (r: Awaited<ReturnType<typeof rig>>) => Promise<void>,
  engine: "epoll" | "uring" = "epoll",
): void {
  Deno.test({
    name,
    ignore: unavailable !== undefined || (engine === "uring" && ringUnavailable !== undefined),
    async fn() {
      const r = await rig(engine === "uring" ? newRing() as RelayRing : undefined);
      try {
        await fn(r);
      } finally {
        for (const conn of [r.client, r.front, r.upstream, r.server]) conn.close();
      }
    },
  });
}

async function readAll(conn: Conn): Promise<string> {
  const buf = new Uint8Array(1024);
  let text = "";
  while (true) {
    const n = await conn.read(buf);
    if (n === null) return text;
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
}

rigTest(
  "epoll relay: no shutdown when both directions end in the same batch (the peers' FINs)",
  async ({ sockets, relayShuts, client, front, upstream, server }) => {
    // Both peers' FINs, seen by the engine (its reads end) before the relay starts: were
    // only the bytes queued, the FINs could come in two batches, as the engine's events.
    await client.closeWrite();
    await server.closeWrite();
    assert.equal(await readAll(front), "");
    assert.equal(await readAll(upstream), "");
    const ended: string[] = [];
    const counters = { bytesUp: 0, bytesDown: 0 };
    const result = await sockets.relay(front, upstream, counters, {
      onEnd: (direction) => ended.push(direction),
    });
    assert.equal(result, undefined);
    assert.deepEqual(ended.toSorted(), ["down", "up"]);
    assert.equal(await readAll(client), "");
    assert.equal(await readAll(server), "");
    // Both sides are closed with their FIN; neither is shut down first.
    assert.deepEqual(relayShuts(), []);
  },
);

rigTest(
  "epoll relay: the first direction to end is still shut down when the other goes on",
  async ({ sockets, relayShuts, client, front, upstream, server }) => {
    const ended: string[] = [];
    const relayed = sockets.relay(front, upstream, { bytesUp: 0, bytesDown: 0 }, {
      onEnd: (direction) => ended.push(direction),
    });
    await client.writeAll(new TextEncoder().encode("ping"));
    await client.closeWrite();
    // The server sees the end of the request (the relay's shutdown) before it replies.
    assert.equal(await readAll(server), "ping");
    assert.deepEqual(ended, ["up"]);
    assert.deepEqual(relayShuts(), [fdOf(upstream)]);
    await server.writeAll(new TextEncoder().encode("pong"));
    await server.closeWrite();
    assert.equal(await readAll(client), "pong");
    assert.equal(await relayed, undefined);
    assert.deepEqual(ended, ["up", "down"]);
  },
);

/**
 * A listening socket of the C library's own, not the engine's: `takeOne()` takes a
 * connection off its queue without waiting, if the kernel has queued one (the handshake's
 * last ACK is in).
 */
function plainListener(c: Libc) {
  const fd = c.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  assert.ok(fd >= 0);
  assert.equal(c.bind(fd, encodeSockaddr({ hostname: "127.0.0.1", port: 0 })!), 0);
  assert.equal(c.listen(fd, 8), 0);
  const addrBuf = new Uint8Array(SOCKADDR_MAX);
  const addrLen = new Uint8Array(4);
  const resetLen = () => new DataView(addrLen.buffer).setUint32(0, SOCKADDR_MAX, true);
  resetLen();
  c.getsockname(fd, addrBuf, addrLen);
  const taken: number[] = [];
  return {
    addr: decodeSockaddr(addrBuf),
    takeOne(): number | undefined {
      resetLen();
      const conn = c.accept4(fd, addrBuf, addrLen, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (conn < 0) return undefined;
      taken.push(conn);
      return conn;
    },
    close(): void {
      for (const conn of [fd, ...taken]) c.close(conn);
    },
  };
}

const encoder = new TextEncoder();

/** The engines a {@linkcode serverTest} runs on: epoll alone, and with its relays on a ring. */
const ENGINES = ["epoll", "uring"] as const;
/** A ring for an engine, or why there is none. */
function newRing(): RelayRing | { unavailable: string } {
  return "unavailable" in libc ? libc : openRelayRing(denoRingSys());
}
const ringProbe = newRing();
const ringUnavailable = "unavailable" in ringProbe ? ringProbe.unavailable : undefined;

/**
 * A test of the engine (on epoll alone, and with a ring) against a {@linkcode plainListener}
 * (`server`); what `fn` puts in `conns` is closed after it, and so is the server.
 */
function serverTest(
  name: string,
  fn: (
    rig: {
      c: Libc;
      sockets: ReturnType<typeof epollSockets>;
      server: ReturnType<typeof plainListener>;
      conns: Conn[];
    },
  ) => Promise<void>,
): void {
  for (const engine of ENGINES) {
    Deno.test({
      name: `${engine} ${name}`,
      ignore: unavailable !== undefined || (engine === "uring" && ringUnavailable !== undefined),
      async fn() {
        const c = libc as Libc;
        const ring = engine === "uring" ? newRing() as RelayRing : undefined;
        const server = plainListener(c);
        const conns: Conn[] = [];
        try {
          await fn({ c, sockets: epollSockets(c, ring), server, conns });
        } finally {
          for (const conn of conns) conn.close();
          server.close();
        }
      },
    });
  }
}

serverTest(
  "connect: ackWithData holds the last ACK back until the first bytes or a read",
  async ({ c, sockets, server, conns }) => {
    // Without it, the server has the connection once the connect resolves.
    conns.push(await sockets.connect(server.addr));
    assert.notEqual(server.takeOne(), undefined);

    const writer = await sockets.connect(server.addr, { ackWithData: true });
    conns.push(writer);
    assert.equal(server.takeOne(), undefined);
    await writer.writeAll(encoder.encode("hi"));
    // The connection and its first bytes, at once.
    const writerPeer = server.takeOne();
    assert.notEqual(writerPeer, undefined);
    const buf = new Uint8Array(8);
    assert.equal(c.recv(writerPeer!, buf, buf.length), 2);

    // A read first, for a server that speaks first: the ACK goes at once.
    const reader = await sockets.connect(server.addr, { ackWithData: true });
    conns.push(reader);
    assert.equal(server.takeOne(), undefined);
    const reading = reader.read(buf);
    const readerPeer = server.takeOne();
    assert.notEqual(readerPeer, undefined);
    c.send(readerPeer!, encoder.encode("hello"), 5);
    assert.equal(await reading, 5);
  },
);

/** A client of `sockets` connected to a listener of its own, and the end that listener took. */
async function frontPair(
  sockets: ReturnType<typeof epollSockets>,
): Promise<{ front: Listener; client: Conn; near: Conn }> {
  const front = await sockets.listen({ hostname: "127.0.0.1", port: 0 });
  const frontAccepted = front[Symbol.asyncIterator]().next();
  const client = await sockets.connect(front.addr);
  const near = (await frontAccepted).value as Conn;
  return { front, client, near };
}

serverTest(
  "relay: a held ACK goes when the relay starts with nothing to send",
  async ({ c, sockets, server, conns }) => {
    const { front, client, near } = await frontPair(sockets);
    try {
      const upstream = await sockets.connect(server.addr, { ackWithData: true });
      conns.push(client, near, upstream);
      assert.equal(server.takeOne(), undefined);
      // The client says nothing: a server that speaks first must hear of the connection.
      const relayed = sockets.relay(near, upstream, { bytesUp: 0, bytesDown: 0 });
      const peer = server.takeOne();
      assert.notEqual(peer, undefined);
      c.send(peer!, encoder.encode("hello"), 5);
      c.shutdown(peer!, SHUT_WR);
      assert.equal(await readAll(client), "hello");
      client.close();
      assert.equal(await relayed, undefined);
    } finally {
      front.close();
    }
  },
);

serverTest(
  "relay: a held ACK waits for the bytes the client has sent already, and goes with them",
  async ({ c, sockets, server, conns }) => {
    const { front, client, near } = await frontPair(sockets);
    try {
      // The bytes are at the front end before the relay starts, as a request usually is.
      await client.writeAll(encoder.encode("hi"));
      await client.closeWrite();
      const upstream = await sockets.connect(server.addr, { ackWithData: true });
      conns.push(client, near, upstream);
      let upEnded: () => void;
      const upEnd = new Promise<void>((resolve) => upEnded = resolve);
      const relayed = sockets.relay(near, upstream, { bytesUp: 0, bytesDown: 0 }, {
        onEnd: (direction) => direction === "up" && upEnded(),
      });
      // The server has the connection with its bytes, never before them: on epoll from the
      // relay's first moves, on the ring once it has sent them.
      let peer = server.takeOne();
      if (peer === undefined) {
        await upEnd;
        peer = server.takeOne();
      }
      assert.notEqual(peer, undefined);
      const buf = new Uint8Array(8);
      assert.equal(c.recv(peer!, buf, buf.length), 2);
      await upEnd;
      assert.equal(c.recv(peer!, buf, buf.length), 0);
      c.shutdown(peer!, SHUT_WR);
      assert.equal(await readAll(client), "");
      assert.equal(await relayed, undefined);
    } finally {
      front.close();
    }
  },
);

serverTest(
  "relay: with ackWaitMs, a server that speaks first is heard, and the client's bytes go after",
  async ({ sockets, conns }) => {
    // The server is the runtime's, so that its accept can be awaited.
    using server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const { front, client, near } = await frontPair(sockets);
    try {
      const upstream = await sockets.connect(server.addr as Addr, {
        ackWithData: true,
        ackWaitMs: 60_000,
      });
      conns.push(client, near, upstream);
      const relayed = sockets.relay(near, upstream, { bytesUp: 0, bytesDown: 0 });
      // The client says nothing: the ACK goes before the sockets wait, not after the minute.
      const peer = await server.accept();
      await peer.write(encoder.encode("hello "));
      const buf = new Uint8Array(16);
      assert.equal(new TextDecoder().decode(buf.subarray(0, (await client.read(buf))!)), "hello ");
      await client.writeAll(encoder.encode("hi"));
      await client.closeWrite();
      assert.equal(await peer.read(buf), 2);
      assert.equal(new TextDecoder().decode(buf.subarray(0, 2)), "hi");
      assert.equal(await peer.read(buf), null);
      peer.close();
      assert.equal(await readAll(client), "");
      assert.equal(await relayed, undefined);
    } finally {
      front.close();
    }
  },
);

rigTest(
  "epoll relay: a reply that came with its FIN takes one read, and the end goes on in that turn",
  async ({ sockets, recvsOf, relayCalls, client, front, upstream, server }) => {
    const relayed = sockets.relay(front, upstream, { bytesUp: 0, bytesDown: 0 });
    // Both in this turn, before the engine looks: one event says data and FIN together.
    server.writeAll(encoder.encode("pong"));
    server.closeWrite();
    assert.equal(await readAll(client), "pong");
    // No second read for the end...
    assert.deepEqual(recvsOf(upstream), [4]);
    // ...and the client's side is shut down right after that read, with no look for events
    // between (the shutdown used to wait for the next batch).
    const calls = relayCalls();
    const read = calls.indexOf(`recv ${fdOf(upstream)} 4`);
    assert.deepEqual(calls.slice(read, read + 2), [
      `recv ${fdOf(upstream)} 4`,
      `shutdown ${fdOf(front)}`,
    ]);
    client.close();
    assert.equal(await relayed, undefined);
  },
);

for (const engine of ENGINES) {
  rigTest(
    `${engine} relay: with finWaitMs, a client that closes on the reply ends it with no shutdown`,
    async ({ sockets, relayShuts, client, front, upstream, server }) => {
      const relayed = sockets.relay(front, upstream, { bytesUp: 0, bytesDown: 0 }, {
        finWaitMs: 60_000,
      });
      await server.writeAll(encoder.encode("pong"));
      await server.closeWrite();
      const buf = new Uint8Array(8);
      assert.equal(await client.read(buf), 4);
      // As an HTTP client does on a reply it knows the end of: its FIN comes first.
      client.close();
      assert.equal(await deadline(relayed, 10_000, "the relay to end"), undefined);
      assert.deepEqual(relayShuts(), []);
    },
    engine,
  );

  rigTest(
    `${engine} relay: with finWaitMs, a client that waits for the end gets it once that is over`,
    async ({ sockets, relayShuts, client, front, upstream, server }) => {
      const relayed = sockets.relay(front, upstream, { bytesUp: 0, bytesDown: 0 }, {
        finWaitMs: 100,
      });
      await server.writeAll(encoder.encode("pong"));
      await server.closeWrite();
      // Even with nothing else to do for longer than the loop's quiet waits before it hands
      // its wait to the other thread, where it would not see the deadline.
      assert.equal(await deadline(readAll(client), 10_000, "the end of the reply"), "pong");
      assert.deepEqual(relayShuts(), [fdOf(front)]);
      client.close();
      assert.equal(await deadline(relayed, 10_000, "the relay to end"), undefined);
    },
    engine,
  );
}

/**
 * The engine's `libc`, counting the waits handed to another thread (`handedOver`), the waits
 * with a timeout made on this one (`short`) and the turns of the runtime's event loop (`turns`).
 */
function countingWaits(): {
  libc: Libc;
  waits: { handedOver: number; short: number; timedOut: number; turns: number };
} {
  const real = libc as Libc;
  const waits = { handedOver: 0, short: 0, timedOut: 0, turns: 0 };
  return {
    waits,
    libc: {
      ...real,
      runtimeTurn: () => {
        waits.turns++;
        return real.runtimeTurn();
      },
      epollWait: (...args) => {
        waits.handedOver++;
        return real.epollWait(...args);
      },
      epollPoll: (epfd, events, maxEvents, timeoutMs) => {
        const n = real.epollPoll(epfd, events, maxEvents, timeoutMs);
        if (timeoutMs > 0) waits.short++;
        if (timeoutMs > 0 && n === 0) waits.timedOut++;
        return n;
      },
    },
  };
}

Deno.test({
  name: "epoll loop: while busy, it looks for work on its own thread and hands no wait over",
  ignore: unavailable !== undefined,
  async fn() {
    const { libc: counting, waits } = countingWaits();
    const sockets = epollSockets(counting);
    const { client, front, upstream, server } = await fourEnds(sockets);
    try {
      const relayed = sockets.relay(front, upstream, { bytesUp: 0, bytesDown: 0 });
      const buf = new Uint8Array(16);
      const rounds = 200;
      const before = waits.handedOver;
      // A ping-pong through the relay: there is always something in flight.
      for (let i = 0; i < rounds; i++) {
        await client.writeAll(encoder.encode("ping"));
        assert.equal(await server.read(buf), 4);
        await server.writeAll(encoder.encode("pong"));
        assert.equal(await client.read(buf), 4);
      }
      // Each wait handed to the other thread costs two thread switches. A loop that hands it
      // over as soon as one look finds nothing, before the promise reactions that send the
      // next bytes have run, makes two a round here.
      assert.ok(
        waits.handedOver - before < rounds / 20,
        `${waits.handedOver - before} waits in ${rounds} rounds`,
      );
      client.close();
      server.close();
      await relayed;
    } finally {
      for (const conn of [client, front, upstream, server]) conn.close();
    }
  },
});

type Waits = ReturnType<typeof countingWaits>["waits"];
type Sockets = ReturnType<typeof epollSockets>;

/**
 * Runs `body` with the two ends a proxy would relay between, whose client and server are in
 * another process ({@linkcode spawnPeers}: `rounds` of ping-pong), on an engine that counts its
 * waits; then checks that the peers exited cleanly, and closes everything.
 */
async function withPeers(
  rounds: number,
  body: (front: Conn, upstream: Conn, sockets: Sockets, waits: Waits) => Promise<void>,
): Promise<void> {
  const { libc: counting, waits } = countingWaits();
  const sockets = epollSockets(counting);
  const frontListener = await sockets.listen({ hostname: "127.0.0.1", port: 0 });
  await using peers = spawnPeers(frontListener.addr.port, rounds);
  const ends: Conn[] = [];
  try {
    const { front, upstream } = await relayEnds(sockets, frontListener, peers.lines);
    ends.push(front, upstream);
    await body(front, upstream, sockets, waits);
    assert.equal((await deadline(peers.status, 10_000, "the peers to exit")).code, 0);
  } finally {
    frontListener.close();
    for (const conn of ends) conn.close();
  }
}

Deno.test({
  name:
    "epoll loop: between a request and its reply from another process, it waits on its own thread",
  ignore: unavailable !== undefined,
  async fn() {
    const rounds = 100;
    // The client and the server are in another process, as a proxy's are: each event of the
    // relay comes after a quiet moment, during which this process has nothing to do.
    await withPeers(rounds, async (front, upstream, sockets, waits) => {
      const before = waits.handedOver;
      const turnsBefore = waits.turns;
      const startedMs = Date.now();
      const relayed = sockets.relay(front, upstream, { bytesUp: 0, bytesDown: 0 });
      assert.equal(await deadline(relayed, 10_000, `${rounds} rounds relayed`), undefined);
      const elapsedMs = Date.now() - startedMs;
      const turns = waits.turns - turnsBefore;
      // The runtime's loop turns once a millisecond (its system calls and loopback byte cost
      // about what a round does), not in every gap: between the events the loop looks on
      // without waiting for a moment, then waits. A turn in every gap made two or more a round.
      // Twice the milliseconds: the clock's millisecond may tick just after a turn.
      assert.ok(turns <= 2 * elapsedMs + 2, `${turns} turns of the runtime in ${elapsedMs} ms`);
      // Handed to the other thread, each wait costs two thread switches more than one made
      // here; a loop that hands over every wait makes two or more a round.
      assert.ok(
        waits.handedOver - before < rounds / 10,
        `${waits.handedOver - before} waits handed over`,
      );
      // Most rounds: the moment the loop looks on can cover the gap too.
      assert.ok(waits.short > 0, `${waits.short} short waits in ${rounds} rounds`);
    });
  },
});

/** Reads exactly `buf.length` bytes from `conn` into `buf`; false at an early end. */
async function readFull(conn: Conn, buf: Uint8Array): Promise<boolean> {
  for (let got = 0; got < buf.length;) {
    const n = await conn.read(buf.subarray(got));
    if (n === null) return false;
    got += n;
  }
  return true;
}

/** Passes `rounds` pings and pongs between `front` and `upstream`, each after `hops` awaits. */
async function relayThroughPromises(front: Conn, upstream: Conn, rounds: number, hops: number) {
  const buf = new Uint8Array(4);
  for (let i = 0; i < rounds; i++) {
    if (!await readFull(front, buf)) throw new Error("the client ended early");
    for (let hop = 0; hop < hops; hop++) await null;
    await upstream.writeAll(buf);
    if (!await readFull(upstream, buf)) throw new Error("the server ended early");
    for (let hop = 0; hop < hops; hop++) await null;
    await front.writeAll(buf);
  }
}

Deno.test({
  name: "epoll loop: what a read sets off through a chain of promises is done before it waits",
  ignore: unavailable !== undefined,
  async fn() {
    const rounds = 100;
    // The peers answer within a moment: a wait that times out is one the loop made while the
    // reply it waited for was still in the chain of promises (a chat server's way: a read, the
    // lines split, the room told, each member written to).
    await withPeers(rounds, async (front, upstream, _sockets, waits) => {
      const before = waits.timedOut;
      const relayed = relayThroughPromises(front, upstream, rounds, 20);
      await deadline(relayed, 10_000, `${rounds} rounds passed on`);
      // A loop that waits with reactions still queued times out in most rounds (measured: 138
      // in 100 rounds, 71 on a busy machine, where the runtime's turn came due more often; 6 to
      // 12 once it lets them run first, where the peers were slow).
      const timedOut = waits.timedOut - before;
      assert.ok(timedOut < rounds / 2, `${timedOut} waits timed out in ${rounds} rounds`);
    });
  },
});

Deno.test({
  name: "runtimeTurn(): a loop that keeps turning leaves the runtime's own sockets served",
  ignore: unavailable !== undefined,
  async fn() {
    const { runtimeTurn } = libc as Libc;
    let turns = 0;
    let busy = true;
    // What the engine's loop does while busy: nothing but turns between its own batches.
    const loop = (async () => {
      while (busy) {
        await runtimeTurn();
        turns++;
      }
    })();
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    const server = await listener.accept();
    try {
      const rounds = 50;
      const buf = new Uint8Array(16);
      const before = turns;
      for (let i = 0; i < rounds; i++) {
        await client.write(encoder.encode("ping"));
        assert.equal(await server.read(buf), 4);
        await server.write(encoder.encode("pong"));
        assert.equal(await client.read(buf), 4);
      }
      // An immediate is not a turn that polls the runtime's sockets: with those, each round
      // here took about 116 turns.
      assert.ok(turns - before < rounds * 10, `${turns - before} turns in ${rounds} rounds`);
    } finally {
      busy = false;
      await loop;
      client.close();
      server.close();
      listener.close();
    }
  },
});
