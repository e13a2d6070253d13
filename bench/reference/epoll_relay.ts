/**
 * The reference of what the epoll engine's per-connection work could cost: a bare TCP relay on
 * epoll through Deno's FFI, written for the benchmark only (contender `reference-epoll`,
 * opt-in). Not part of l4chat: no health checks, limits, timeouts, NAT table, logging, promises
 * or timers; one backend. It makes the same system calls per connection as the engine (accept4,
 * socket, TCP_NODELAY, TCP_QUICKACK off before connect, connect, two epoll_ctl, recv and send
 * each way, close), but a `shutdown` toward a side whose peer finished first, as HAProxy does,
 * and it waits in `epoll_wait` on the main thread, never turning Deno's event loop. What the
 * engine spends beyond it per connection is the engine's and the load balancer's, not the
 * runtime's or the FFI's.
 *
 * Usage: deno run --allow-ffi bench/reference/epoll_relay.ts <port> <backend port>
 *
 * @module
 */

import {
  AF_INET,
  EAGAIN,
  EINTR,
  encodeSockaddr,
  EPOLL_CTL_ADD,
  EPOLLERR,
  EPOLLET,
  EPOLLHUP,
  EPOLLIN,
  EPOLLOUT,
  EPOLLRDHUP,
  IPPROTO_TCP,
  SHUT_WR,
  SO_REUSEADDR,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  SOL_SOCKET,
  TCP_NODELAY,
  TCP_QUICKACK,
} from "../../net/_libc.ts";
import { denoLibc } from "../../net/_libc_deno.ts";
import { fatalFor, relayPorts } from "./_relay_cli.ts";

const [listenPort, backendPort] = relayPorts("epoll_relay");

/** Events taken per `epoll_wait`, and connections accepted per listener event at most. */
const MAX_EVENTS = 512;
const ACCEPT_BATCH = 128;
/** Bytes read at a time, into one buffer every relay shares (every call here is synchronous). */
const BUF = 65536;
const CONN_EVENTS = (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) >>> 0;

/** Says why the relay cannot run, and stops. */
const fatal: (message: string) => never = fatalFor("epoll_relay");

const loaded = denoLibc();
if ("unavailable" in loaded) fatal(`no C library: ${loaded.unavailable}`);
const libc = loaded;
const one = new Uint8Array(new Int32Array([1]).buffer);
const zero = new Uint8Array(4);
const buf = new Uint8Array(BUF);
const addrBuf = new Uint8Array(32);
const addrLen = new Uint8Array(4);
const addrLenView = new DataView(addrLen.buffer);

const listenFd = libc.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
libc.setsockopt(listenFd, SOL_SOCKET, SO_REUSEADDR, one);
// Accepted sockets inherit it.
libc.setsockopt(listenFd, IPPROTO_TCP, TCP_NODELAY, one);
const listenAddr = encodeSockaddr({ hostname: "127.0.0.1", port: listenPort })!;
if (libc.bind(listenFd, listenAddr) < 0 || libc.listen(listenFd, 4096) < 0) {
  fatal(`cannot listen on 127.0.0.1:${listenPort}`);
}
const backend = encodeSockaddr({ hostname: "127.0.0.1", port: backendPort })!;

const ep = libc.epollCreate1(SOCK_CLOEXEC);
if (ep < 0) fatal("epoll_create1 failed");
const { eventSize, eventDataOffset } = libc;
const ctl = new Uint8Array(eventSize);
const ctlView = new DataView(ctl.buffer);
const events = new Uint8Array(eventSize * MAX_EVENTS);
const eventsView = new DataView(events.buffer);

/** Watches `fd` for `mask`, its descriptor as the event's data. */
function watch(fd: number, mask: number): void {
  ctlView.setUint32(0, mask, true);
  ctlView.setUint32(eventDataOffset, fd, true);
  ctlView.setUint32(eventDataOffset + 4, 0, true);
  if (libc.epollCtl(ep, EPOLL_CTL_ADD, fd, ctl) < 0) fatal("epoll_ctl failed");
}

// Per descriptor: the socket at the other end of its relay (-1 once closed), whether a read or
// a write may go through now (edge-triggered), whether its peer has finished sending (so that a
// short read is not the end of the edge), the bytes read from it that its peer has not taken
// yet, and whether its direction (reading it, writing its peer) has finished.
const peer: number[] = [];
const canRead: boolean[] = [];
const peerDone: boolean[] = [];
const canWrite: boolean[] = [];
const held: (Uint8Array | undefined)[] = [];
const ended: boolean[] = [];

function open(fd: number, other: number, writable: boolean): void {
  peer[fd] = other;
  canRead[fd] = false;
  peerDone[fd] = false;
  canWrite[fd] = writable;
  held[fd] = undefined;
  ended[fd] = false;
  watch(fd, CONN_EVENTS);
}

function closeBoth(fd: number): void {
  const other = peer[fd];
  peer[fd] = -1;
  peer[other] = -1;
  held[fd] = held[other] = undefined;
  libc.close(fd);
  libc.close(other);
}

/** Moves what `src` has to its peer until either would block; false if the relay closed. */
function move(src: number): boolean {
  const dst = peer[src];
  while (!ended[src]) {
    const pending = held[src];
    if (pending !== undefined) {
      if (!canWrite[dst]) return true;
      const w = libc.send(dst, pending, pending.length);
      if (w < 0 && libc.errno() !== EAGAIN) return closeBoth(src), false;
      if (w < pending.length) {
        held[src] = pending.subarray(Math.max(w, 0));
        canWrite[dst] = false;
        return true;
      }
      held[src] = undefined;
    }
    if (!canRead[src] || !canWrite[dst]) return true;
    const n = libc.recv(src, buf, BUF);
    if (n > 0) {
      const w = libc.send(dst, buf, n);
      if (w < 0 && libc.errno() !== EAGAIN) return closeBoth(src), false;
      if (w < n) {
        held[src] = buf.slice(Math.max(w, 0), n);
        canWrite[dst] = false;
        return true;
      }
      // A stream socket that gave less than asked is empty for now, and the next arrival is a
      // new edge; unless its peer has finished, when no edge comes for the end of the stream.
      if (n < BUF && !peerDone[src]) canRead[src] = false;
      continue;
    }
    if (n < 0) {
      const errno = libc.errno();
      if (errno === EAGAIN || errno === EINTR) {
        canRead[src] = false;
        return true;
      }
      return closeBoth(src), false;
    }
    // End of stream, everything before it delivered: the last direction to end closes both.
    ended[src] = true;
    if (ended[dst]) return closeBoth(src), false;
    libc.shutdown(dst, SHUT_WR);
  }
  return true;
}

function accept(): void {
  for (let i = 0; i < ACCEPT_BATCH; i++) {
    addrLenView.setUint32(0, addrBuf.length, true);
    const client = libc.accept4(listenFd, addrBuf, addrLen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (client < 0) return;
    const server = libc.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (server < 0) {
      libc.close(client);
      continue;
    }
    libc.setsockopt(server, IPPROTO_TCP, TCP_NODELAY, one);
    // The handshake's last ACK goes with the request, as the engine sends it.
    libc.setsockopt(server, IPPROTO_TCP, TCP_QUICKACK, zero);
    // In progress (or refused at once, which the first event says).
    libc.connect(server, backend);
    open(client, server, true);
    open(server, client, false);
  }
}

watch(listenFd, EPOLLIN);
for (;;) {
  const n = libc.epollPoll(ep, events, MAX_EVENTS, -1);
  for (let i = 0; i < n; i++) {
    const mask = eventsView.getUint32(i * eventSize, true);
    const fd = eventsView.getUint32(i * eventSize + eventDataOffset, true);
    if (fd === listenFd) {
      accept();
      continue;
    }
    if (!(peer[fd] >= 0)) continue;
    if (mask & (EPOLLOUT | EPOLLERR | EPOLLHUP)) canWrite[fd] = true;
    if (mask & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) canRead[fd] = true;
    if (mask & (EPOLLRDHUP | EPOLLERR | EPOLLHUP)) peerDone[fd] = true;
    // Its own reads, and what its peer held for it now that it may take more.
    const other = peer[fd];
    if (move(fd)) move(other);
  }
}
