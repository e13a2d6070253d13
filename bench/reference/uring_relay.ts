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
  AF_INET,
  encodeSockaddr,
  IPPROTO_TCP,
  MSG_NOSIGNAL,
  SHUT_RDWR,
  SHUT_WR,
  SO_REUSEADDR,
  SOCK_STREAM,
  SOL_SOCKET,
  TCP_NODELAY,
} from "../../net/_libc.ts";
import { denoLibc } from "../../net/_libc_deno.ts";
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
import { fatalFor, relayPorts } from "./_relay_cli.ts";

const [listenPort, backendPort] = relayPorts("uring_relay");

/** Ring entries; completions are four times as many. */
const ENTRIES = 4096;
/** Bytes of each buffer the kernel picks for a receive. */
const BUF = 16384;
/** Buffers in the group receives pick from (a power of two). */
const BUFS = 1024;

/** Says why the relay cannot run, and stops. */
const fatal: (message: string) => never = fatalFor("uring_relay");

const loaded = denoLibc();
if ("unavailable" in loaded) fatal(`no C library: ${loaded.unavailable}`);
const libc = loaded;
const sys = denoRingSys();
const opened = "unavailable" in sys ? sys : Ring.open(sys, ENTRIES);
if ("unavailable" in opened) fatal(`no io_uring: ${opened.unavailable}`);
const ring = opened;
// Receives take a buffer only when data comes: an idle connection holds none.
const registered = ring.bufferGroup(1, BUFS, BUF);
if ("unavailable" in registered) fatal(`no io_uring buffer ring: ${registered.unavailable}`);
const group = registered;

const one = new Uint8Array(new Int32Array([1]).buffer);
const listenFd = libc.socket(AF_INET, SOCK_STREAM, 0);
libc.setsockopt(listenFd, SOL_SOCKET, SO_REUSEADDR, one);
const listenAddr = encodeSockaddr({ hostname: "127.0.0.1", port: listenPort })!;
if (libc.bind(listenFd, listenAddr) < 0 || libc.listen(listenFd, 4096) < 0) {
  fatal(`cannot listen on 127.0.0.1:${listenPort}`);
}
const backend = ring.pin(16);
backend.buf.set(encodeSockaddr({ hostname: "127.0.0.1", port: backendPort })!);

/** Queues `sqe`; a full queue is handed to the kernel first. */
function push(sqe: Sqe): void {
  if (!ring.queue(sqe)) {
    ring.submit(0);
    ring.queue(sqe);
  }
}

/** One direction of a pair: what it received and is sending on. */
interface Dir {
  /** The buffer it holds while it sends what it received, or -1. */
  bid: number;
  /** Bytes received into it, and sent on so far. */
  len: number;
  sent: number;
  done: boolean;
}

/** One client and its backend connection. User data: `id * 16 + kind`. */
interface Pair {
  client: number;
  server: number;
  up: Dir;
  down: Dir;
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
/** Receives that found no buffer free, as `id * 2 + up`: made again as buffers come back. */
const starved: number[] = [];

function newDir(): Dir {
  return { bid: -1, len: 0, sent: 0, done: false };
}

function accept(): void {
  push({ op: OP_ACCEPT, fd: listenFd, ioprio: ACCEPT_MULTISHOT, userData: K_ACCEPT });
}

/** Queues `sqe` on behalf of `pair` (counted in flight until it completes). */
function pushFor(pair: Pair, sqe: Sqe): void {
  push(sqe);
  pair.inFlight++;
}

function recv(pair: Pair, id: number, up: boolean): void {
  pushFor(pair, {
    op: OP_RECV,
    fd: up ? pair.client : pair.server,
    len: BUF,
    sqeFlags: SQE_BUFFER_SELECT,
    bufGroup: group.id,
    userData: id * 16 + (up ? K_RECV_UP : K_RECV_DOWN),
  });
}

function send(pair: Pair, id: number, up: boolean): void {
  const dir = up ? pair.up : pair.down;
  pushFor(pair, {
    op: OP_SEND,
    fd: up ? pair.server : pair.client,
    addr: group.addressOf(dir.bid) + dir.sent,
    len: dir.len - dir.sent,
    opFlags: MSG_NOSIGNAL,
    userData: id * 16 + (up ? K_SEND_UP : K_SEND_DOWN),
  });
}

function shutdown(pair: Pair, id: number, fd: number, how: number): void {
  if (fd >= 0) pushFor(pair, { op: OP_SHUTDOWN, fd, len: how, userData: id * 16 + K_SHUTDOWN });
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

/** A direction reached its end: its destination's write side is shut, unless both are done. */
function ended(pair: Pair, id: number, up: boolean): void {
  (up ? pair.up : pair.down).done = true;
  if (!(pair.up.done && pair.down.done)) {
    shutdown(pair, id, up ? pair.server : pair.client, SHUT_WR);
  }
}

/** An error: both sockets are shut both ways, which ends the receives in flight. */
function fail(pair: Pair, id: number): void {
  pair.up.done = pair.down.done = true;
  if (pair.failed) return;
  pair.failed = true;
  shutdown(pair, id, pair.client, SHUT_RDWR);
  shutdown(pair, id, pair.server, SHUT_RDWR);
}

/** Closes both sides once nothing is in flight and both directions are done. */
function release(pair: Pair, id: number): void {
  if (pair.inFlight > 0 || !(pair.up.done && pair.down.done)) return;
  push({ op: OP_CLOSE, fd: pair.client, userData: K_CLOSE });
  if (pair.server >= 0) push({ op: OP_CLOSE, fd: pair.server, userData: K_CLOSE });
  pairs[id] = undefined;
  if (pair.up.bid >= 0) giveBack(pair.up.bid);
  if (pair.down.bid >= 0) giveBack(pair.down.bid);
  freeIds.push(id);
}

/** What a receive of `dir` brought: `res` bytes in buffer `bid`, sent on. */
function received(pair: Pair, id: number, up: boolean, res: number, bid: number): void {
  const dir = up ? pair.up : pair.down;
  dir.bid = bid;
  dir.len = res;
  dir.sent = 0;
  send(pair, id, up);
}

/** `res` bytes of `dir` went out: the rest goes next, or its buffer back and a new receive. */
function sent(pair: Pair, id: number, up: boolean, res: number): void {
  const dir = up ? pair.up : pair.down;
  dir.sent += res;
  if (dir.sent < dir.len) return send(pair, id, up);
  const bid = dir.bid;
  dir.bid = -1;
  giveBack(bid);
  recv(pair, id, up);
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
      up: newDir(),
      down: newDir(),
      failed: false,
      inFlight: 0,
    };
    pairs[next] = pair;
    pushFor(pair, { op: OP_SOCKET, fd: AF_INET, off: SOCK_STREAM, userData: next * 16 + K_SOCKET });
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
      libc.setsockopt(res, IPPROTO_TCP, TCP_NODELAY, one); // as HAProxy sets it
      pushFor(pair, {
        op: OP_CONNECT,
        fd: res,
        addr: backend.addr,
        off: backend.buf.length,
        userData: id * 16 + K_CONNECT,
      });
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
    else received(pair, id, up, res, bid);
  } else if (kind === K_SEND_UP || kind === K_SEND_DOWN) {
    if (res < 0 || pair.failed) fail(pair, id);
    else sent(pair, id, kind === K_SEND_UP, res);
  }
  release(pair, id);
}

accept();
for (;;) {
  const err = ring.submit(1);
  if (err < 0) fatal(`io_uring_enter failed (errno ${-err})`);
  ring.complete(completed);
}
