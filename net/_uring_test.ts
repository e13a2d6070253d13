import assert from "node:assert/strict";
import {
  BufferGroup,
  NO_BUFFERS,
  OP_CLOSE,
  OP_CONNECT,
  OP_NOP,
  OP_RECV,
  OP_SEND,
  OP_SOCKET,
  Ring,
  type RingSys,
  SQE_BUFFER_SELECT,
} from "./_uring.ts";
import { denoRingSys } from "./_uring_deno.ts";
import {
  AF_INET,
  encodeSockaddr,
  EPOLL_CTL_ADD,
  EPOLLET,
  EPOLLIN,
  MSG_NOSIGNAL,
  SOCK_STREAM,
} from "./_libc.ts";
import { denoLibc } from "./_libc_deno.ts";

/** This machine's ring, or undefined (with a warning) where io_uring is missing or forbidden. */
function openRing(entries = 64, options: { deferred?: boolean } = {}): Ring | undefined {
  const sys = denoRingSys();
  const ring = "unavailable" in sys ? sys : Ring.open(sys, entries, options);
  if ("unavailable" in ring) {
    console.warn(`no io_uring here: ${ring.unavailable}`);
    return undefined;
  }
  return ring;
}

/** Submits what is queued and waits for one completion; returns it. */
function next(ring: Ring): { userData: number; res: number; flags: number } {
  for (;;) {
    let got: { userData: number; res: number; flags: number } | undefined;
    const err = ring.submit(1);
    assert.equal(err, 0);
    ring.complete((userData, res, flags) => got ??= { userData, res, flags });
    if (got !== undefined) return got;
  }
}

/** A TCP socket made and connected to 127.0.0.1:`port` by ring operations; its descriptor. */
function connectedSocket(ring: Ring, port: number): number {
  ring.queue({ op: OP_SOCKET, fd: AF_INET, off: SOCK_STREAM, userData: 1 });
  const socket = next(ring);
  assert.equal(socket.userData, 1);
  assert.ok(socket.res >= 0, `socket: ${socket.res}`);
  const addr = ring.pin(16);
  addr.buf.set(encodeSockaddr({ hostname: "127.0.0.1", port })!);
  ring.queue({ op: OP_CONNECT, fd: socket.res, addr: addr.addr, off: 16, userData: 2 });
  assert.deepEqual(next(ring), { userData: 2, res: 0, flags: 0 });
  return socket.res;
}

Deno.test("Ring: a no-op comes back with its user data, beyond 32 bits", () => {
  const ring = openRing();
  if (ring === undefined) return;
  try {
    assert.equal(ring.queue({ op: OP_NOP, fd: -1, userData: 2 ** 40 + 7 }), true);
    assert.equal(ring.queued, 1);
    assert.deepEqual(next(ring), { userData: 2 ** 40 + 7, res: 0, flags: 0 });
    assert.equal(ring.queued, 0);
  } finally {
    ring.close();
  }
});

Deno.test("Ring: queue() says when the submission queue is full", () => {
  const ring = openRing(4);
  if (ring === undefined) return;
  try {
    let taken = 0;
    while (ring.queue({ op: OP_NOP, fd: -1, userData: taken })) taken++;
    assert.equal(taken, 4);
    const seen: number[] = [];
    while (seen.length < taken) {
      assert.equal(ring.submit(1), 0);
      ring.complete((userData) => seen.push(userData));
    }
    assert.deepEqual(seen, [0, 1, 2, 3]);
  } finally {
    ring.close();
  }
});

Deno.test("Ring: socket, connect, send, recv and close as ring operations, on loopback", async () => {
  const ring = openRing();
  if (ring === undefined) return;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const served = (async () => {
      const conn = await listener.accept();
      const buf = new Uint8Array(16);
      const n = (await conn.read(buf))!;
      await conn.write(
        new TextEncoder().encode(`got ${new TextDecoder().decode(buf.subarray(0, n))}`),
      );
      conn.close();
    })();
    const fd = connectedSocket(ring, listener.addr.port);
    const out = ring.pin(4);
    out.buf.set(new TextEncoder().encode("ping"));
    ring.queue({ op: OP_SEND, fd, addr: out.addr, len: 4, opFlags: MSG_NOSIGNAL, userData: 3 });
    assert.deepEqual(next(ring), { userData: 3, res: 4, flags: 0 });
    // The receive waits in the kernel until the reply comes: the listener's side runs meanwhile.
    const input = ring.pin(64);
    ring.queue({ op: OP_RECV, fd, addr: input.addr, len: 64, userData: 4 });
    assert.equal(ring.submit(0), 0);
    await served;
    const got = next(ring);
    assert.equal(got.userData, 4);
    assert.equal(new TextDecoder().decode(input.buf.subarray(0, got.res)), "got ping");
    ring.queue({ op: OP_CLOSE, fd, userData: 5 });
    assert.deepEqual(next(ring), { userData: 5, res: 0, flags: 0 });
  } finally {
    listener.close();
    ring.close();
  }
});

Deno.test("Ring: a completion wakes an epoll set holding the ring, and is there without an enter", async () => {
  const ring = openRing();
  const libc = denoLibc();
  if (ring === undefined || "unavailable" in libc) return;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const ep = libc.epollCreate1(0);
  try {
    const fd = connectedSocket(ring, listener.addr.port);
    const server = await listener.accept();
    const event = new Uint8Array(16);
    new DataView(event.buffer).setUint32(0, EPOLLIN, true);
    assert.equal(libc.epollCtl(ep, EPOLL_CTL_ADD, ring.fd, event), 0);
    const input = ring.pin(64);
    ring.queue({ op: OP_RECV, fd, addr: input.addr, len: 64, userData: 3 });
    assert.equal(ring.submit(0), 0);
    const events = new Uint8Array(16 * 4);
    // Nothing has completed: the set stays quiet.
    assert.equal(libc.epollPoll(ep, events, 4, 0), 0);
    await server.write(new TextEncoder().encode("hi"));
    assert.equal(libc.epollPoll(ep, events, 4, 5_000), 1);
    const got: number[] = [];
    ring.complete((userData, res) => got.push(userData, res));
    assert.deepEqual(got, [3, 2]);
    server.close();
    ring.queue({ op: OP_CLOSE, fd, userData: 4 });
    assert.equal(next(ring).res, 0);
  } finally {
    libc.close(ep);
    listener.close();
    ring.close();
  }
});

Deno.test("Ring: a deferred ring signals its eventfd only while signals are on; due and ready say what it has", async () => {
  const ring = openRing(64, { deferred: true });
  const libc = denoLibc();
  if (ring === undefined || "unavailable" in libc) return;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const ep = libc.epollCreate1(0);
  const efd = libc.eventfd(0, 0);
  try {
    assert.equal(ring.notify(efd), 0);
    const event = new Uint8Array(16);
    new DataView(event.buffer).setUint32(0, EPOLLIN | EPOLLET, true);
    assert.equal(libc.epollCtl(ep, EPOLL_CTL_ADD, efd, event), 0);
    const fd = connectedSocket(ring, listener.addr.port);
    const server = await listener.accept();
    const events = new Uint8Array(16 * 4);
    // What the connect's completions signalled.
    libc.epollPoll(ep, events, 4, 0);
    const input = ring.pin(64);
    const got: number[] = [];
    ring.signals(false);
    ring.queue({ op: OP_RECV, fd, addr: input.addr, len: 64, userData: 3 });
    assert.equal(ring.submit(0), 0);
    await server.write(new TextEncoder().encode("hi"));
    // No signal comes: the ring's flags are the only sign (looked at for 5 s at most).
    const until = Date.now() + 5_000;
    while (!ring.due && Date.now() < until) await new Promise((r) => setTimeout(r, 1));
    assert.ok(ring.due, "the receive's completion waits to be posted");
    assert.equal(ring.ready, false);
    assert.equal(ring.submit(0), 0);
    assert.equal(ring.ready, true);
    assert.equal(libc.epollPoll(ep, events, 4, 0), 0, "no signal while they are off");
    ring.complete((userData, res) => got.push(userData, res));
    assert.deepEqual(got, [3, 2]);
    assert.equal(ring.ready, false);
    // Signals on again: the next completion wakes the set.
    ring.signals(true);
    ring.queue({ op: OP_RECV, fd, addr: input.addr, len: 64, userData: 5 });
    assert.equal(ring.submit(0), 0);
    await server.write(new TextEncoder().encode("hey"));
    assert.equal(libc.epollPoll(ep, events, 4, 5_000), 1);
    assert.equal(ring.submit(0), 0);
    ring.complete((userData, res) => got.push(userData, res));
    assert.deepEqual(got, [3, 2, 5, 3]);
    server.close();
    ring.queue({ op: OP_CLOSE, fd, userData: 6 });
    assert.equal(next(ring).res, 0);
  } finally {
    libc.close(efd);
    libc.close(ep);
    listener.close();
    ring.close();
  }
});

Deno.test("BufferGroup: receives take a provided buffer when data comes, and it comes back", async () => {
  const ring = openRing();
  if (ring === undefined) return;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const group = ring.bufferGroup(7, 2, 64);
    assert.ok(!("unavailable" in group), "unavailable" in group ? group.unavailable : "");
    const fd = connectedSocket(ring, listener.addr.port);
    const server = await listener.accept();
    const recv = (userData: number) =>
      ring.queue({
        op: OP_RECV,
        fd,
        len: 0,
        sqeFlags: SQE_BUFFER_SELECT,
        bufGroup: group.id,
        userData,
      });
    // Five messages through two buffers: each is given back once read.
    const got: string[] = [];
    for (let i = 0; i < 5; i++) {
      recv(10 + i);
      assert.equal(ring.submit(0), 0);
      await server.write(new TextEncoder().encode(`m${i}`));
      const done = next(ring);
      assert.equal(done.userData, 10 + i);
      const bid = BufferGroup.idOf(done.flags);
      assert.ok(bid === 0 || bid === 1, `buffer ${bid}`);
      got.push(new TextDecoder().decode(group.bytes(bid, done.res)));
      group.give(bid);
    }
    assert.deepEqual(got, ["m0", "m1", "m2", "m3", "m4"]);
    // With both buffers held, a receive finds none.
    const held: number[] = [];
    for (const [i, text] of ["ab", "cd"].entries()) {
      await server.write(new TextEncoder().encode(text));
      recv(20 + i);
      held.push(BufferGroup.idOf(next(ring).flags));
    }
    assert.deepEqual(held.toSorted(), [0, 1]);
    await server.write(new TextEncoder().encode("ef"));
    recv(22);
    assert.equal(next(ring).res, NO_BUFFERS);
    held.forEach((bid) => group.give(bid));
    server.close();
    ring.queue({ op: OP_CLOSE, fd, userData: 23 });
    assert.equal(next(ring).res, 0);
  } finally {
    listener.close();
    ring.close();
  }
});

Deno.test("Ring.open() says why there is no ring", () => {
  const refused: RingSys = {
    setup: () => -38,
    map: () => undefined,
    enter: () => 0,
    register: () => 0,
    addressOf: () => 0,
    close: () => {},
  };
  assert.deepEqual(Ring.open(refused, 64), { unavailable: "io_uring_setup failed (errno 38)" });
  let closed = -1;
  const unmappable: RingSys = { ...refused, setup: () => 9, close: (fd) => closed = fd };
  assert.deepEqual(Ring.open(unmappable, 64), { unavailable: "cannot map the ring's memory" });
  assert.equal(closed, 9);
});
