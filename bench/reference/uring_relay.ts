/**
 * The reference of what an io_uring data path would bring: a bare TCP relay driven by one
 * io_uring ring through Deno's FFI, written for the benchmark only (contender
 * `reference-uring`, opt-in). Not part of l4chat: no health checks, limits, timeouts, NAT table
 * or logging; one backend. Receives pick 16 KiB buffers from a provided buffer ring when data
 * comes, and give them back once sent on: an idle connection holds none.
 *
 * Every socket operation is a ring entry: a multishot accept, then per client `socket`,
 * `connect`, `recv`/`send` each way, `shutdown` toward a side whose peer finished, and `close`.
 * One `io_uring_enter` hands the kernel everything queued since the last and waits for at
 * least one completion, where the epoll engine makes a system call per operation (about 1 µs
 * of entry and exit each on this machine's VM, measured with a C loop of `getppid`). The ring
 * is `net/_uring.ts`'s.
 *
 * Needs Linux 6.6 or newer (`IORING_SETUP_NO_SQARRAY`, `IORING_OP_SOCKET`) on x86-64.
 *
 * Usage: deno run --allow-ffi bench/reference/uring_relay.ts <port> <backend port>
 *
 * @module
 */

import {
  ACCEPT_MULTISHOT,
  BufferGroup,
  CQE_F_MORE,
  NO_BUFFERS,
  OP_ACCEPT,
  OP_CLOSE,
  OP_CONNECT,
  OP_RECV,
  OP_SEND,
  OP_SHUTDOWN,
  OP_SOCKET,
  Ring,
  type Sqe,
  SQE_BUFFER_SELECT,
} from "../../net/_uring.ts";
import { denoRingSys } from "../../net/_uring_deno.ts";

const [listenPort, backendPort] = Deno.args.map(Number);
if (!(listenPort > 0 && backendPort > 0)) {
  console.error("usage: uring_relay.ts <port> <backend port>");
  Deno.exit(2);
}

const lib = Deno.dlopen("libc.so.6", {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
});
const c = lib.symbols;

const AF_INET = 2;
const SOCK_STREAM = 1;
const SHUT_WR = 1;
const SHUT_RDWR = 2;
const MSG_NOSIGNAL = 0x4000;

/** Ring entries; completions are four times as many. */
const ENTRIES = 4096;
/** Bytes of each buffer the kernel picks for a receive. */
const BUF = 16384;
/** Buffers in the group receives pick from (a power of two). */
const BUFS = 1024;

function sockaddrIn(port: number): Uint8Array {
  const addr = new Uint8Array(16);
  const view = new DataView(addr.buffer);
  view.setUint16(0, AF_INET, true);
  view.setUint16(2, port, false);
  addr.set([127, 0, 0, 1], 4);
  return addr;
}

const intOne = new Uint8Array(new Int32Array([1]).buffer);
const listenFd = c.socket(AF_INET, SOCK_STREAM, 0);
c.setsockopt(listenFd, 1, 2, intOne, 4); // SO_REUSEADDR
if (c.bind(listenFd, sockaddrIn(listenPort), 16) < 0 || c.listen(listenFd, 4096) < 0) {
  console.error(`uring_relay: cannot listen on 127.0.0.1:${listenPort}`);
  Deno.exit(1);
}

const sys = denoRingSys();
const opened = "unavailable" in sys ? sys : Ring.open(sys, ENTRIES);
if ("unavailable" in opened) {
  console.error(`uring_relay: no io_uring: ${opened.unavailable}`);
  Deno.exit(1);
}
const ring = opened;

/** Queues one operation; a full queue is handed to the kernel first. */
function queue(
  op: number,
  fd: number,
  addr: number,
  len: number,
  opFlags: number,
  userData: number,
  ioprio = 0,
  off = 0,
): void {
  push({ op, fd, addr, len, opFlags, userData, ioprio, off });
}

/** Queues `sqe`; a full queue is handed to the kernel first. */
function push(sqe: Sqe): void {
  if (!ring.queue(sqe)) {
    ring.submit(0);
    ring.queue(sqe);
  }
}

// Receives take a buffer only when data comes: an idle connection holds none.
const registered = ring.bufferGroup(1, BUFS, BUF);
if ("unavailable" in registered) {
  console.error(`uring_relay: no io_uring buffer ring: ${registered.unavailable}`);
  Deno.exit(1);
}
const group = registered;
/** Receives that found no buffer free, as `id * 2 + up`: made again as buffers come back. */
const starved: number[] = [];
const backend = ring.pin(16);
backend.buf.set(sockaddrIn(backendPort));
const backendAddr = backend.addr;

/** One client and its backend connection. User data: `id * 16 + kind`. */
interface Pair {
  client: number;
  server: number;
  /** The buffer each direction holds while it sends what it received, or -1. */
  upBid: number;
  downBid: number;
  /** Bytes received, and sent so far, of each direction's buffer. */
  upLen: number;
  upSent: number;
  downLen: number;
  downSent: number;
  upDone: boolean;
  downDone: boolean;
  failed: boolean;
  /** Operations in flight. */
  inFlight: number;
}
const K_ACCEPT = 0;
const K_SOCKET = 1;
const K_CONNECT = 2;
const K_RECV_UP = 3;
const K_RECV_DOWN = 4;
const K_SEND_UP = 5;
const K_SEND_DOWN = 6;
const K_SHUTDOWN = 7;
const K_CLOSE = 8;
const pairs: (Pair | undefined)[] = [];
const freeIds: number[] = [];

function accept(): void {
  queue(OP_ACCEPT, listenFd, 0, 0, 0, K_ACCEPT, ACCEPT_MULTISHOT);
}

function recv(pair: Pair, id: number, up: boolean): void {
  push({
    op: OP_RECV,
    fd: up ? pair.client : pair.server,
    len: BUF,
    sqeFlags: SQE_BUFFER_SELECT,
    bufGroup: group.id,
    userData: id * 16 + (up ? K_RECV_UP : K_RECV_DOWN),
  });
  pair.inFlight++;
}

/** Gives buffer `bid` back, and makes a receive that found none again. */
function giveBack(bid: number): void {
  group.give(bid);
  const waiting = starved.pop();
  if (waiting === undefined) return;
  const id = waiting >>> 1;
  const pair = pairs[id];
  if (pair === undefined) return;
  if (pair.failed) release(pair, id);
  else recv(pair, id, (waiting & 1) === 1);
}

function send(pair: Pair, id: number, up: boolean): void {
  const fd = up ? pair.server : pair.client;
  const sent = up ? pair.upSent : pair.downSent;
  const len = (up ? pair.upLen : pair.downLen) - sent;
  const buf = group.addressOf(up ? pair.upBid : pair.downBid) + sent;
  queue(OP_SEND, fd, buf, len, MSG_NOSIGNAL, id * 16 + (up ? 5 : 6));
  pair.inFlight++;
}

function shutdown(pair: Pair, id: number, fd: number, how: number): void {
  if (fd < 0) return;
  queue(OP_SHUTDOWN, fd, 0, how, 0, id * 16 + K_SHUTDOWN);
  pair.inFlight++;
}

/** A direction reached its end: its destination's write side is shut, unless both are done. */
function ended(pair: Pair, id: number, up: boolean): void {
  if (up) pair.upDone = true;
  else pair.downDone = true;
  if (!(pair.upDone && pair.downDone)) shutdown(pair, id, up ? pair.server : pair.client, SHUT_WR);
}

/** An error: both sockets are shut both ways, which ends the receives in flight. */
function fail(pair: Pair, id: number): void {
  pair.upDone = pair.downDone = true;
  if (pair.failed) return;
  pair.failed = true;
  shutdown(pair, id, pair.client, SHUT_RDWR);
  shutdown(pair, id, pair.server, SHUT_RDWR);
}

/** Closes both sides once nothing is in flight and both directions are done. */
function release(pair: Pair, id: number): void {
  if (pair.inFlight > 0 || !(pair.upDone && pair.downDone)) return;
  queue(OP_CLOSE, pair.client, 0, 0, 0, K_CLOSE);
  if (pair.server >= 0) queue(OP_CLOSE, pair.server, 0, 0, 0, K_CLOSE);
  pairs[id] = undefined;
  if (pair.upBid >= 0) giveBack(pair.upBid);
  if (pair.downBid >= 0) giveBack(pair.downBid);
  freeIds.push(id);
}

function completed(userData: number, res: number, flags: number): void {
  const kind = userData & 15;
  const id = userData >>> 4;
  if (kind === K_ACCEPT) {
    if ((flags & CQE_F_MORE) === 0) accept();
    if (res < 0) return;
    const next = freeIds.pop() ?? pairs.length;
    const pair: Pair = {
      client: res,
      server: -1,
      upBid: -1,
      downBid: -1,
      upLen: 0,
      upSent: 0,
      downLen: 0,
      downSent: 0,
      upDone: false,
      downDone: false,
      failed: false,
      inFlight: 1,
    };
    pairs[next] = pair;
    queue(OP_SOCKET, AF_INET, 0, 0, 0, next * 16 + K_SOCKET, 0, SOCK_STREAM);
    return;
  }
  if (kind === K_CLOSE) return;
  const pair = pairs[id]!;
  pair.inFlight--;
  if (kind === K_SOCKET) {
    if (res < 0) {
      fail(pair, id);
    } else {
      pair.server = res;
      c.setsockopt(res, 6, 1, intOne, 4); // TCP_NODELAY, as HAProxy sets it
      queue(OP_CONNECT, res, backendAddr, 0, 0, id * 16 + K_CONNECT, 0, 16);
      pair.inFlight++;
    }
  } else if (kind === K_CONNECT) {
    if (res < 0) {
      fail(pair, id);
    } else {
      recv(pair, id, true);
      recv(pair, id, false);
    }
  } else if (kind === K_RECV_UP || kind === K_RECV_DOWN) {
    const up = kind === K_RECV_UP;
    const bid = BufferGroup.idOf(flags);
    if (res === NO_BUFFERS && !pair.failed) starved.push(id * 2 + (up ? 1 : 0));
    else if (res < 0 || pair.failed) {
      if (bid >= 0) giveBack(bid);
      fail(pair, id);
    } else if (res === 0) ended(pair, id, up);
    else if (up) {
      pair.upBid = bid;
      pair.upLen = res;
      pair.upSent = 0;
      send(pair, id, up);
    } else {
      pair.downBid = bid;
      pair.downLen = res;
      pair.downSent = 0;
      send(pair, id, up);
    }
  } else if (kind === K_SEND_UP || kind === K_SEND_DOWN) {
    const up = kind === K_SEND_UP;
    if (res < 0 || pair.failed) {
      fail(pair, id);
    } else if (up) {
      pair.upSent += res;
      if (pair.upSent < pair.upLen) send(pair, id, true);
      else {
        const bid = pair.upBid;
        pair.upBid = -1;
        giveBack(bid);
        recv(pair, id, true);
      }
    } else {
      pair.downSent += res;
      if (pair.downSent < pair.downLen) send(pair, id, false);
      else {
        const bid = pair.downBid;
        pair.downBid = -1;
        giveBack(bid);
        recv(pair, id, false);
      }
    }
  }
  release(pair, id);
}

accept();
for (;;) {
  const err = ring.submit(1);
  if (err < 0) {
    console.error(`uring_relay: io_uring_enter failed (errno ${-err})`);
    Deno.exit(1);
  }
  ring.complete(completed);
}
