/**
 * The epoll engine: TCP on Linux through the C library ({@linkcode Libc}), with one
 * edge-triggered epoll set per thread, as HAProxy and nginx do it. Where the runtime's own
 * sockets spend an asynchronous operation, a promise and a few system calls of their own on
 * every read, write, accept and connect, this engine makes the system call directly and keeps
 * what a socket can do as two flags:
 *
 * - An idle connection holds no buffer, no promise and no pending operation: two sockets in
 *   the epoll set and a few small objects.
 * - A relay reads into one buffer shared by every connection and writes at once; only bytes
 *   the destination cannot take yet are copied out. A flow that fills that buffer takes a
 *   larger one of its own from a pool while it stays a bulk flow, and gives it back when it
 *   slows down.
 * - Each socket is registered once (`EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET`); nothing is
 *   re-armed, and a socket closed here leaves the set with its descriptor.
 *
 * While traffic comes and goes, `epoll_wait` blocks this thread for a millisecond at most, the
 * runtime's event loop turning in between (so its timers, the admin endpoint and the rest of
 * its I/O wait that long at most); once the sockets are quiet, it runs on another thread (see
 * {@linkcode Libc.epollWait}), so the runtime goes on while it waits, at the price of two
 * thread switches per wake-up. The loop runs only while something is registered: a process
 * with no engine sockets has no wait pending and can exit.
 *
 * With an io_uring ring ({@linkcode RelayRing}: `--io uring`), relays and connects leave epoll
 * for the ring. A relay's receives and sends, a connect's `socket`, `TCP_NODELAY` and
 * `connect`, and a close are ring entries, queued as they come and handed to the kernel by
 * one `io_uring_enter` per turn of the loop, which also collects what completed; a receive
 * takes a shared buffer only when data comes, so an idle relay still holds none. A socket
 * enters the epoll set only if it is read or written to outside a relay (a PROXY header, a
 * chat client); accepts, shutdowns and removals from the epoll set stay system calls (see
 * {@linkcode EpollListener} and `EpollConn.shutWrite`). The kernel posts completions when the
 * loop asks. On this thread the loop waits on the ring (`io_uring_enter`), which the kernel
 * wakes when there is something to ask for, with the epoll set polled there too; on the other
 * thread it waits in `epoll_wait`, with an eventfd in the set that the ring signals, on kernels
 * that signal it for completions not yet posted (a probe at start tells). On the others the loop
 * does not hand its wait over while anything has entries on the ring: it waits on the ring for
 * {@linkcode IDLE_WAIT_MS} at a time, and the runtime turns between. The eventfd's signals are
 * on only for the waits on the other thread.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import {
  type Addr,
  type Conn,
  type ConnectOptions,
  type IoMode,
  type Listener,
  type ListenOptions,
  type Net,
  NetError,
  type RelayCounters,
  type RelayOptions,
  WRITTEN,
} from "./mod.ts";
import {
  AF_INET,
  AF_INET6,
  decodeSockaddr,
  EAGAIN,
  ECONNABORTED,
  EINPROGRESS,
  EINTR,
  EMFILE,
  encodeSockaddr,
  ENFILE,
  ENOBUFS,
  ENOMEM,
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_CTL_MOD,
  EPOLLERR,
  EPOLLET,
  EPOLLHUP,
  EPOLLIN,
  EPOLLOUT,
  EPOLLRDHUP,
  errnoError,
  eventError,
  FIONREAD,
  IPPROTO_TCP,
  type Libc,
  MSG_NOSIGNAL,
  MSG_WAITALL,
  SHUT_RDWR,
  SHUT_WR,
  SIOCOUTQNSD,
  SO_ERROR,
  SO_REUSEADDR,
  SO_REUSEPORT,
  SO_SNDBUF,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  SOCKADDR_MAX,
  sockaddrFamily,
  SOL_SOCKET,
  TCP_NODELAY,
  TCP_QUICKACK,
} from "./_libc.ts";
import { resolveAll } from "./_resolve.ts";
import { Deadlines } from "./_deadlines.ts";
import { bulkReadSize, type DestinationLook, sendRoom } from "./_read_size.ts";
import {
  BufferGroup,
  CANCELLED,
  NO_BUFFERS,
  OP_ASYNC_CANCEL,
  OP_CLOSE,
  OP_CONNECT,
  OP_POLL_ADD,
  OP_RECV,
  OP_SEND,
  OP_SOCKET,
  OP_URING_CMD,
  Ring,
  type RingSys,
  SOCKET_SETSOCKOPT,
  type Sqe,
  SQE_BUFFER_SELECT,
  SQE_LINK,
} from "./_uring.ts";

const log = getLogger(["l4chat", "net"]);

/**
 * How long the runtime's own I/O and timers (the admin endpoint, a Redis link, health check
 * timers) may wait for a turn of its event loop, in ms, whether the engine is busy or waiting
 * on this thread.
 */
const TURN_EVERY_MS = 1;
/** Short waits in a row that find nothing before the wait goes to the other thread. */
const QUIET_WAITS = 20;
/**
 * How long the loop then waits on the ring, in ms, where it cannot wait on the other thread
 * (see {@linkcode Ring.notify}): the runtime's own timers and sockets are seen this late.
 */
const IDLE_WAIT_MS = 10;
/**
 * How long, in ms, the loop goes on looking for events without waiting once a batch is done,
 * before it sleeps: a reply that comes within it costs no wake-up. One request at a time, this
 * (rather than a turn of the runtime's event loop, whose system calls and loopback byte took
 * about as long) made 1.19x the requests/s at 0.83x the CPU per request (docs/benchmarks.md).
 */
const SPIN_MS = 0.02;
/** What `EpollConn`'s send returns when the socket takes nothing now. */
const WOULD_BLOCK = -1;
/** What `EpollConn`'s send returns after an error. */
const SEND_FAILED = -2;
/** Events one `epoll_wait` returns at most. */
const MAX_EVENTS = 512;
/** Bytes of the read buffer all relays share; a read that fills it makes a bulk flow. */
const SHARED_BYTES = 64 * 1024;
/**
 * Bytes of a bulk flow's own buffer. Copying through it measured faster on one stream than
 * `splice(2)` through a pipe of the same size, in the same hour on the benchmark machine (11.4
 * against 9.1 Gbit/s, median of 3), for about 9% more CPU per GB; both hold as much per flow.
 */
const BULK_BYTES = 1024 * 1024;
/** How long a ring send from a bulk buffer waits on its reader before it goes from a copy. */
const BULK_WAIT_MS = 1000;
/** Bulk buffers kept for reuse once their flow has slowed down. */
const BULK_POOL_MAX = 4;
/** Bulk buffers taken at once at most; past this, flows go on through the shared one. */
const BULKS_MAX = 1024;
/** Connections taken off a listener per wake-up, so one busy listener cannot starve the rest. */
const ACCEPT_BATCH = 128;
/** Backlog asked of `listen(2)`; the kernel caps it at `net.core.somaxconn`. */
const LISTEN_BACKLOG = 4096;
/** How long a listener rests when the process is out of descriptors or memory, in ms. */
const ACCEPT_BACKOFF_MS = 50;
/** The `data` of the wake-up eventfd's registration. */
const WAKE_SLOT = 0xffffffff;
/** The `data` of the ring's registration. */
const RING_SLOT = 0xfffffffe;
/**
 * What a ring completion is for: the low 4 bits of its user data, which is
 * `id * 16 + kind` (see {@linkcode RingUser}). The receive and send of a relay's
 * direction differ in bit 1; up and down in bit 0.
 */
const K_RECV_UP = 0;
const K_RECV_DOWN = 1;
const K_SEND_UP = 2;
const K_SEND_DOWN = 3;
const K_CONNECT = 4;
const K_SOCKET = 5;
const K_NODELAY = 6;
const K_QUICKACK = 7;
/** A direction that found no buffer free waits for bytes to come (or to be there). */
const K_POLL_UP = 8;
const K_POLL_DOWN = 9;
/** The poll of the loop's own epoll set, made while the loop waits on the ring. */
const K_EPOLL = 14;
/** A completion nothing waits for: a close, a cancellation, a removal from the epoll set. */
const K_NONE = 15;
/** Submissions a turn of the loop makes at most for what its completions queued... */
const RING_ROUNDS = 4;
/** ...when they were this many at most. */
const RING_FEW = 4;
/** Bytes staged for the kernel until the next submission (connects' addresses). */
const STAGING_BYTES = 64 * SOCKADDR_MAX;

/** Something with entries on the ring: a relay, a connect. */
interface RingUser {
  /** Its id on the ring while it has one, else -1. */
  ringId: number;
  /** Its entries in flight. */
  inFlight: number;
  /** Whether it needs no more entries: its id is freed once none is in flight. */
  readonly offRing: boolean;
  /** Its entry of `kind` completed with `res` and `flags`. */
  completed(kind: number, res: number, flags: number): void;
}

/** The address family of a socket for `sockaddr`. */
function familyOf(sockaddr: Uint8Array): number {
  return sockaddrFamily(sockaddr) === AF_INET ? AF_INET : AF_INET6;
}

/** The user data of `user`'s entry of `kind`. */
function userData(user: RingUser, kind: number): number {
  return user.ringId * 16 + kind;
}

/** Entries of the ring relays run on (its completion queue holds four times as many). */
const RING_ENTRIES = 4096;
/** Buffers relays on the ring receive into, and bytes of each. */
const RING_BUFS = 512;
const RING_BUF_BYTES = 16 * 1024;

/** The io_uring ring relays run on, and the buffers their receives pick from. */
export interface RelayRing {
  ring: Ring;
  group: BufferGroup;
}

/** The ring for relays with `buffers` (a power of two) to receive into, or why there is none. */
export function openRelayRing(
  sys: RingSys | { unavailable: string },
  buffers = RING_BUFS,
): RelayRing | { unavailable: string } {
  if ("unavailable" in sys) return sys;
  // Completions are posted by the loop's next submission, which an eventfd calls for.
  const ring = Ring.open(sys, RING_ENTRIES, { deferred: true });
  if ("unavailable" in ring) return ring;
  const group = ring.bufferGroup(1, buffers, RING_BUF_BYTES);
  if ("unavailable" in group) {
    ring.close();
    return group;
  }
  return { ring, group };
}
const CONN_EVENTS = (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) >>> 0;

/** Something registered with the {@linkcode Poller}. */
interface Pollable {
  /** Handles the `events` bits of one `epoll_event`. */
  onEvents(events: number): void;
}

/** The epoll set of this thread and the loop that waits on it. */
class Poller {
  readonly libc: Libc;
  /** The buffer relays read into; safe to share since every call here is synchronous. */
  readonly shared = new Uint8Array(SHARED_BYTES);
  /** Scratch space for an address and its length, for one call at a time. */
  readonly addrBuf = new Uint8Array(SOCKADDR_MAX);
  readonly addrLen = new Uint8Array(4);
  readonly #addrLenView = new DataView(this.addrLen.buffer);
  readonly #int = new Uint8Array(4);
  readonly #intView = new DataView(this.#int.buffer);
  readonly #intLen = new Uint8Array(4);
  readonly #intLenView = new DataView(this.#intLen.buffer);
  /** The 8 bytes an eventfd takes or gives. */
  readonly #counter = new Uint8Array(8);
  readonly #ep: number;
  readonly #wakeFd: number;
  readonly #events: Uint8Array;
  readonly #eventsView: DataView;
  readonly #ctl: Uint8Array;
  readonly #ctlView: DataView;
  readonly #slots: (Pollable | undefined)[] = [];
  /** Per slot, a count of its registrations: an event of an earlier one is ignored. */
  readonly #generations: number[] = [];
  readonly #free: number[] = [];
  #registered = 0;
  #looping = false;
  readonly #bulkPool: Uint8Array[] = [];
  /** Bulk buffers given back past the pool, their pages given back to the kernel. */
  readonly #coldBulks: Uint8Array[] = [];
  #bulksTaken = 0;
  /**
   * Connects in progress that have a deadline, each at its `connectSlot`, the places free in
   * it, and the one timer that watches them all. Not a `Set`: one whose entries come and go
   * keeps them alive through V8's young collections once it is old (docs/benchmarks.md, "A
   * `Map` per connection aged everything").
   */
  readonly #connects: (EpollConn | undefined)[] = [];
  readonly #freeConnectSlots: number[] = [];
  #connectTimer: ReturnType<typeof setTimeout> | undefined;
  #connectTimerAtMs = Infinity;
  /**
   * Relay directions whose shutdown waits: until the end of this batch (put off by the batch
   * before, or by {@linkcode shutSoon}), and until the end of the next.
   */
  #shutsDue: Flow[] = [];
  #shutsNext: Flow[] = [];
  /** Relay directions whose shutdown waits for a time (`deferShut` with a wait), and until when. */
  readonly #finWaits = new Deadlines<Flow>();
  /** Connected sockets whose held ACK waits for bytes to carry it, and until when. */
  readonly #acks = new Deadlines<EpollConn>();
  /** Whether the loop is handling a batch of events (synchronously). */
  #inBatch = false;
  /** The ring relays run on, if there is one, and the buffers their receives pick from. */
  readonly ring: Ring | undefined;
  readonly group: BufferGroup | undefined;
  /** What has entries on the ring, by id; an id is free again once none is in flight. */
  readonly #ringUsers: (RingUser | undefined)[] = [];
  readonly #freeRingIds: number[] = [];
  /** How many have an id on the ring. */
  #onRing = 0;
  /** Directions with bytes waiting and no buffer free: received again as buffers come back. */
  readonly #starved: Flow[] = [];
  /** Buffers of the group that receives hold, and the direction holding each (by id). */
  #buffersOut = 0;
  readonly #holders: (Flow | undefined)[] = [];
  /** Submissions made (`io_uring_enter` calls), and at which one buffers were last reclaimed. */
  submits = 0;
  #reclaimedAt = -1;
  /** Ring flows with a bulk buffer, a timer that looks at their sends, and when it last did. */
  readonly #ringBulks = new Set<Flow>();
  #bulkTimer: ReturnType<typeof setTimeout> | undefined;
  #bulksSeenAt = 0;
  /** Memory for what the kernel reads at the next submission, and how much of it is used. */
  readonly #staging: { buf: Uint8Array; addr: number } | undefined;
  #stagedBytes = 0;
  /** The entry {@linkcode pushIo} fills. */
  readonly #io: Sqe = {
    op: 0,
    fd: 0,
    addr: 0,
    len: 0,
    opFlags: 0,
    userData: 0,
    sqeFlags: 0,
    bufGroup: 0,
  };
  /** An `int` 1 and an `int` 0 where the kernel can read them: options' values. */
  readonly #one: { buf: Uint8Array; addr: number } | undefined;
  readonly #zero: { buf: Uint8Array; addr: number } | undefined;
  /** Whether the loop waits on the other thread: what is queued on the ring must go now. */
  #parked = false;
  /**
   * Whether the ring's eventfd is signalled when a completion waits to be posted, so that the
   * loop may wait on the other thread while relays have entries on the ring (see
   * {@linkcode Ring.notify}); false with no ring.
   */
  readonly #announces: boolean = false;
  /** A poll of the epoll set is on the ring; it has completed since the loop last looked. */
  #epollArmed = false;
  #epollSeen = false;
  /**
   * Whether this thread's work settled a promise since the loop last let every reaction run:
   * what a read sets off may take many steps (a chat server's: the lines split, the room told,
   * each member written to), and a wait made before the last step holds it until it ends.
   */
  settled = false;

  constructor(libc: Libc, ring?: RelayRing) {
    this.libc = libc;
    this.ring = ring?.ring;
    this.group = ring?.group;
    this.#staging = ring?.ring.pin(STAGING_BYTES);
    this.#one = ring?.ring.pin(4);
    if (this.#one !== undefined) {
      new DataView(this.#one.buf.buffer).setInt32(this.#one.buf.byteOffset, 1, true);
    }
    // Pinned memory starts zeroed.
    this.#zero = ring?.ring.pin(4);
    this.#ep = libc.epollCreate1(SOCK_CLOEXEC);
    if (this.#ep < 0) throw errnoError(libc.errno(), "epoll_create1");
    this.#events = new Uint8Array(libc.eventSize * MAX_EVENTS);
    this.#eventsView = new DataView(this.#events.buffer);
    this.#ctl = new Uint8Array(libc.eventSize);
    this.#ctlView = new DataView(this.#ctl.buffer);
    this.#wakeFd = libc.eventfd(0, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (this.#wakeFd < 0) throw errnoError(libc.errno(), "eventfd");
    this.#control(EPOLL_CTL_ADD, this.#wakeFd, EPOLLIN, WAKE_SLOT, 0);
    if (this.ring !== undefined) {
      const fd = libc.eventfd(0, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) throw errnoError(libc.errno(), "eventfd");
      const res = this.ring.notify(fd);
      if (res < 0) throw errnoError(-res, "io_uring_register");
      // Edge-triggered: every signal is an event, and the counter is never read.
      this.#control(EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLET, RING_SLOT, 0);
      this.#announces = this.#announcesDeferred(this.ring, fd);
    }
  }

  /**
   * Whether `ring` signals eventfd `fd` when a completion waits to be posted: a poll on the
   * ring of a UDP socket of its own, which then sends itself a byte (on loopback the kernel
   * mostly hands it over before the send returns). Not an eventfd: the kernel puts off the
   * signals of what an eventfd's own write wakes. A kernel that signals late is taken for one
   * that does not, which costs only wake-ups. Seen to say no on `6.18.44-fc-v1272`; not yet run
   * on a kernel that signals.
   */
  #announcesDeferred(ring: Ring, fd: number): boolean {
    const { libc } = this;
    const probe = libc.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (probe < 0) return false;
    try {
      const loopback = encodeSockaddr({ hostname: "127.0.0.1", port: 0 })!;
      if (libc.bind(probe, loopback) < 0) return false;
      const self = this.localAddr(probe);
      if (libc.connect(probe, encodeSockaddr(self)!) < 0) return false;
      if (!ring.queue({ op: OP_POLL_ADD, fd: probe, opFlags: EPOLLIN, userData: K_NONE })) {
        return false;
      }
      ring.submit(0);
      this.#counter[0] = 1;
      if (libc.send(probe, this.#counter, 1) !== 1) return false;
      const announced = libc.read(fd, this.#counter, 8) === 8;
      // The poll's completion is posted, and what that signalled taken.
      ring.submit(0);
      ring.complete(() => {});
      libc.read(fd, this.#counter, 8);
      return announced;
    } finally {
      libc.close(probe);
    }
  }

  /** Adds `fd` for `events`; returns its slot, to be given to {@linkcode Poller.remove}. */
  add(target: Pollable, fd: number, events: number): number {
    const slot = this.#free.pop() ?? this.#slots.length;
    const generation = ((this.#generations[slot] ?? 0) + 1) >>> 0;
    this.#generations[slot] = generation;
    this.#control(EPOLL_CTL_ADD, fd, events, slot, generation);
    this.#slots[slot] = target;
    this.#registered++;
    if (!this.#looping) this.#loop();
    return slot;
  }

  /** Changes the events `fd` (registered at `slot`) is watched for. */
  modify(slot: number, fd: number, events: number): void {
    this.#control(EPOLL_CTL_MOD, fd, events, slot, this.#generations[slot]);
  }

  /** Forgets `slot`; the caller then closes its descriptor, which leaves the epoll set. */
  remove(slot: number): void {
    if (this.#slots[slot] === undefined) return;
    this.#slots[slot] = undefined;
    this.#free.push(slot);
    this.#unregistered();
  }

  #unregistered(): void {
    this.#registered--;
    // Let the loop see that nothing is left, and leave no timer, so the process can exit.
    if (this.#registered > 0) return;
    this.#stopConnectTimer();
    if (this.#looping) this.#wake();
  }

  /** Queues `sqe` on the ring; a full queue is handed to the kernel first. */
  push(sqe: Sqe): void {
    const ring = this.ring!;
    if (ring.queue(sqe)) return;
    this.#submit();
    ring.queue(sqe);
  }

  /**
   * Hands the kernel what is queued if fewer than `entries` more fit: entries linked to each
   * other must go in one submission, or the link is lost.
   */
  makeRoom(entries: number): void {
    if (this.ring!.room < entries) this.#submit();
  }

  /**
   * Queues a receive or a send: the relays' entries, through one object filled in place, so
   * that moving a chunk allocates nothing.
   */
  pushIo(
    op: number,
    fd: number,
    addr: number,
    len: number,
    opFlags: number,
    sqeFlags: number,
    userData: number,
  ): void {
    const sqe = this.#io;
    sqe.op = op;
    sqe.fd = fd;
    sqe.addr = addr;
    sqe.len = len;
    sqe.opFlags = opFlags;
    sqe.sqeFlags = sqeFlags;
    sqe.bufGroup = (sqeFlags & SQE_BUFFER_SELECT) === 0 ? 0 : this.group!.id;
    sqe.userData = userData;
    this.push(sqe);
  }

  /**
   * Copies `bytes` where the kernel can read them until the next submission, and returns
   * their address (a connect's address: the kernel takes its copy when the entry is submitted).
   */
  stage(bytes: Uint8Array): number {
    if (this.#stagedBytes + bytes.length > this.#staging!.buf.length) this.#submit();
    const at = this.#stagedBytes;
    this.#staging!.buf.set(bytes, at);
    this.#stagedBytes += (bytes.length + 7) & ~7;
    return this.#staging!.addr + at;
  }

  /** Hands the kernel what is queued on the ring, and posts what completed. */
  #submit(): void {
    this.ring!.submit(0);
    this.#handedOver();
  }

  /** What was staged for the kernel is its own now. */
  #handedOver(): void {
    this.submits++;
    this.#stagedBytes = 0;
  }

  /**
   * What was queued on the ring outside the loop's own turns goes at once while the loop waits
   * on the other thread, or is not running (the close of the last socket, such as a health
   * check's in a process whose listeners are in its workers); else at the loop's next turn.
   */
  kick(): void {
    if ((this.#parked || !this.#looping) && this.ring!.queued > 0) this.#submit();
  }

  /**
   * Hands the kernel what is queued on the ring, has it post what completed, and handles
   * that: one system call, made only when there is something to hand over or to post.
   */
  #ringTurn(): void {
    const ring = this.ring;
    if (ring === undefined) return;
    if (ring.queued > 0 || ring.due) this.#submit();
    // When few completed (light load, where each waits on the one before: a send for what was
    // received, then the next receive), what they queued goes at once, rather than after a
    // turn of the loop; under load it waits for the next turn's submission with the rest.
    for (let round = 0; round < RING_ROUNDS; round++) {
      const completed = ring.complete(this.#completed);
      if (completed === 0 || completed > RING_FEW || ring.queued === 0) break;
      this.#submit();
    }
  }

  /** Gives `user` an id on the ring, for the user data of its entries. */
  join(user: RingUser): void {
    const id = this.#freeRingIds.pop() ?? this.#ringUsers.length;
    this.#ringUsers[id] = user;
    user.ringId = id;
    this.#onRing++;
    // The loop goes on while anything has entries on the ring.
    this.#registered++;
    if (!this.#looping) this.#loop();
  }

  /** Frees `user`'s id once it needs no more entries and none is in flight. */
  leave(user: RingUser): void {
    if (user.ringId < 0 || user.inFlight > 0 || !user.offRing) return;
    this.#ringUsers[user.ringId] = undefined;
    this.#freeRingIds.push(user.ringId);
    user.ringId = -1;
    this.#onRing--;
    this.#unregistered();
  }

  /**
   * Moves `relay` to the ring: from now on its receives and sends are ring entries, one
   * `io_uring_enter` per turn of the loop for all of them. A socket in the epoll set leaves it.
   */
  toRing(relay: Relay): void {
    // A held ACK goes with the first bytes the ring sends, if the other side has some waiting.
    ackOnRing(relay.up, this);
    ackOnRing(relay.down, this);
    this.join(relay);
    this.#leaveEpoll(relay.up.src, relay);
    this.#leaveEpoll(relay.down.src, relay);
    ringRecv(relay.up);
    ringRecv(relay.down);
    this.kick();
  }

  #leaveEpoll(conn: EpollConn, relay: Relay): void {
    // A system call: on the ring, the removal could be made later, on a worker thread, by
    // descriptor number (as a shutdown is: see EpollConn.shutWrite).
    if (conn.onRing(relay)) this.#control(EPOLL_CTL_DEL, conn.fd, 0, 0, 0);
  }

  /** Closes `fd`, a socket of `user` on the ring. */
  closeOnRing(fd: number, user: RingUser): void {
    if (user.inFlight === 0) {
      this.push({ op: OP_CLOSE, fd, userData: K_NONE });
      this.kick();
      return;
    }
    // What is in flight holds the socket open: shut both ways, it ends. Nothing queued may name
    // the descriptor once it is closed (it may be another socket's then).
    this.#submit();
    this.libc.shutdown(fd, SHUT_RDWR);
    this.libc.close(fd);
  }

  /** Sets TCP_NODELAY on `fd` on the ring (Linux 6.7+), for `user`'s entry of K_NODELAY. */
  noDelay(fd: number, user: RingUser): void {
    this.#tcpOption(fd, user, TCP_NODELAY, this.#one!.addr, K_NODELAY);
  }

  /**
   * Clears TCP_QUICKACK on `fd` on the ring (Linux 6.7+), for `user`'s entry of K_QUICKACK: a
   * connect then holds the handshake's last ACK back until something is sent.
   */
  holdAck(fd: number, user: RingUser): void {
    this.#tcpOption(fd, user, TCP_QUICKACK, this.#zero!.addr, K_QUICKACK);
  }

  #tcpOption(fd: number, user: RingUser, name: number, value: number, kind: number): void {
    this.push({
      op: OP_URING_CMD,
      fd,
      off: SOCKET_SETSOCKOPT,
      addr: IPPROTO_TCP + name * 4294967296,
      optLen: 4,
      optVal: value,
      userData: userData(user, kind),
    });
    user.inFlight++;
  }

  /** Cancels the ring entry whose user data is `entry`, then closes `fd`. */
  cancelAndClose(entry: number, fd: number): void {
    this.#cancel(entry);
    this.push({ op: OP_CLOSE, fd, userData: K_NONE });
    this.kick();
  }

  /** A receive of `flow` took buffer `bid` of the group. */
  tookBuffer(bid: number, flow: Flow): void {
    this.#buffersOut++;
    this.#holders[bid] = flow;
  }

  /**
   * Takes the shared buffers back from sends that have waited for more than a submission (on
   * a reader that has stopped, or a slow one): each is cancelled, and what it had left to send
   * is sent from a copy of its own ({@linkcode sendFromCopy}). Otherwise as many readers that
   * stop would hold every buffer, and every other relay would wait for them. Once a submission.
   */
  reclaim(): void {
    if (this.#reclaimedAt === this.submits) return;
    this.#reclaimedAt = this.submits;
    for (let bid = 0; bid < this.#holders.length; bid++) {
      const flow = this.#holders[bid];
      if (flow === undefined || flow.relay.done || flow.reclaiming) continue;
      if (this.submits - flow.sentAt < 2) continue;
      this.#cancelSend(flow);
    }
  }

  /**
   * Watches `flow`, which has a bulk buffer on the ring: a send from it that waits on its reader
   * for a second or more (the reader has stopped, or nearly) is cancelled, and what it had left
   * goes from a copy, so that the buffer (1 MiB) goes back. The epoll engine does as much at
   * once, from a send's partial count; a ring's send says nothing until it has sent all.
   */
  watchBulk(flow: Flow): void {
    this.#ringBulks.add(flow);
    if (this.#bulkTimer === undefined) {
      this.#bulkTimer = setTimeout(() => this.#bulksDue(), BULK_WAIT_MS);
    }
  }

  #bulksDue(): void {
    this.#bulkTimer = undefined;
    for (const flow of this.#ringBulks) {
      // A send in flight, queued before the last look: it has waited BULK_WAIT_MS at least.
      if (flow.relay.done || flow.reclaiming || flow.sent >= flow.len) continue;
      if (flow.sentAt >= this.#bulksSeenAt) continue;
      this.#cancelSend(flow);
    }
    this.kick();
    this.#bulksSeenAt = this.submits;
    if (this.#ringBulks.size > 0) {
      this.#bulkTimer = setTimeout(() => this.#bulksDue(), BULK_WAIT_MS);
    }
  }

  /** Cancels `flow`'s send in flight; what it had left goes from a copy ({@linkcode sendFromCopy}). */
  #cancelSend(flow: Flow): void {
    flow.reclaiming = true;
    this.#cancel(userData(flow.relay, flow.up ? K_SEND_UP : K_SEND_DOWN));
  }

  /** Cancels the ring entry whose user data is `entry`. */
  #cancel(entry: number): void {
    this.push({ op: OP_ASYNC_CANCEL, fd: -1, addr: entry, userData: K_NONE });
  }

  /** Whether a buffer of the group is free (or about to be: a receive may be taking it). */
  get bufferFree(): boolean {
    return this.#buffersOut < this.group!.count;
  }

  /** Puts buffer `bid` back, and receives again for a direction that found none free. */
  giveBuffer(bid: number): void {
    this.#buffersOut--;
    this.#holders[bid] = undefined;
    this.group!.give(bid);
    this.serveStarved();
  }

  /**
   * Receives again for the first direction waiting for a buffer, when one is free: as a buffer
   * comes back, and as a receive made for such a direction ends without taking one (at end of
   * stream, or on an error), which leaves the buffer to the next.
   */
  serveStarved(): void {
    if (!this.bufferFree) return;
    // First come, first served (a rare path: shift's cost does not matter), past the relays
    // that ended while they waited: the buffer would otherwise serve nobody.
    for (let flow = this.#starved.shift(); flow !== undefined; flow = this.#starved.shift()) {
      if (!flow.relay.done) return ringRecv(flow);
    }
  }

  /** `flow` has bytes to receive and no buffer: it receives again when one comes back. */
  starve(flow: Flow): void {
    this.#starved.push(flow);
  }

  readonly #completed = (data: number, res: number, flags: number): void => {
    const kind = data & 15;
    if (kind === K_NONE) return;
    if (kind === K_EPOLL) {
      this.#epollArmed = false;
      this.#epollSeen = true;
      return;
    }
    const user = this.#ringUsers[Math.floor(data / 16)]!;
    user.inFlight--;
    try {
      user.completed(kind, res, flags);
    } catch (err) {
      unexpected(err);
    }
    this.leave(user);
  };

  /** Bytes in `fd`'s send queue not sent yet (`SIOCOUTQNSD`); 0 if unknown. */
  sendUnsent(fd: number): number {
    return this.#intIoctl(fd, SIOCOUTQNSD);
  }

  /** Bytes waiting to be read from `fd` (`FIONREAD`); 0 if unknown. */
  bytesWaiting(fd: number): number {
    return this.#intIoctl(fd, FIONREAD);
  }

  /** The `int` that `ioctl` `request` gives of `fd`; 0 if it fails. */
  #intIoctl(fd: number, request: number): number {
    this.#intView.setInt32(0, 0, true);
    return this.libc.ioctl(fd, request, this.#int) < 0 ? 0 : this.#intView.getInt32(0, true);
  }

  /** An `int` option of `fd`, or the errno of the failure as a negative number. */
  intOption(fd: number, level: number, name: number): number {
    this.#intView.setUint32(0, 0, true);
    this.#intLenView.setUint32(0, 4, true);
    if (this.libc.getsockopt(fd, level, name, this.#int, this.#intLen) < 0) {
      return -this.libc.errno();
    }
    return this.#intView.getInt32(0, true);
  }

  /** Sets an `int` option of `fd` to `value`; false if it could not. */
  setIntOption(fd: number, level: number, name: number, value: number): boolean {
    this.#intView.setInt32(0, value, true);
    return this.libc.setsockopt(fd, level, name, this.#int) === 0;
  }

  /** The local address of `fd`. */
  localAddr(fd: number): Addr {
    this.#addrLenView.setUint32(0, SOCKADDR_MAX, true);
    if (this.libc.getsockname(fd, this.addrBuf, this.addrLen) < 0) return { hostname: "", port: 0 };
    return decodeSockaddr(this.addrBuf);
  }

  /** Prepares {@linkcode addrBuf} and {@linkcode addrLen} for an `accept4`. */
  resetAddrLen(): void {
    this.#addrLenView.setUint32(0, SOCKADDR_MAX, true);
  }

  /** Watches the deadline of `conn`'s connect, if it has one. */
  connectStarted(conn: EpollConn): void {
    const deadlineMs = conn.connecting!.deadlineMs;
    if (deadlineMs === Infinity) return;
    const slot = this.#freeConnectSlots.pop() ?? this.#connects.length;
    this.#connects[slot] = conn;
    conn.connectSlot = slot;
    if (deadlineMs < this.#connectTimerAtMs) this.#armConnectTimer(deadlineMs);
  }

  /**
   * `conn`'s connect has ended, one way or another. The timer stays: when it fires with
   * nothing due it just stops, where clearing and setting one per connect costs more.
   */
  connectEnded(conn: EpollConn): void {
    const slot = conn.connectSlot;
    if (slot < 0) return;
    this.#connects[slot] = undefined;
    this.#freeConnectSlots.push(slot);
    conn.connectSlot = -1;
  }

  #stopConnectTimer(): void {
    clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    this.#connectTimerAtMs = Infinity;
  }

  #armConnectTimer(atMs: number): void {
    clearTimeout(this.#connectTimer);
    this.#connectTimerAtMs = atMs;
    this.#connectTimer = setTimeout(() => this.#connectsDue(), Math.max(0, atMs - Date.now()));
  }

  /** Times out the connects past their deadline; re-arms for the next one. */
  #connectsDue(): void {
    this.#connectTimer = undefined;
    this.#connectTimerAtMs = Infinity;
    const now = Date.now();
    let next = Infinity;
    const connects = this.#connects;
    for (let slot = 0; slot < connects.length; slot++) {
      const conn = connects[slot];
      if (conn === undefined) continue;
      const { deadlineMs, timeoutMs } = conn.connecting!;
      if (deadlineMs <= now) {
        conn.abortConnect(eventError("TimedOut", `connect timed out after ${timeoutMs} ms`));
      } else if (deadlineMs < next) {
        next = deadlineMs;
      }
    }
    if (next !== Infinity) this.#armConnectTimer(next);
  }

  /**
   * Shuts `flow`'s destination after the next batch of events, or before the loop waits,
   * whichever comes first; with `waitMs`, once they have passed instead, while the loop turns
   * (meanwhile it waits on this thread only, 1 ms at a time, where it sees them pass).
   */
  deferShut(flow: Flow, waitMs: number): void {
    if (waitMs > 0 && this.turning) this.#finWaits.push(flow, performance.now() + waitMs);
    else this.#shutsNext.push(flow);
  }

  /**
   * Shuts `flow`'s destination at the end of this batch of events, or at once outside one:
   * when the other direction ends in the same batch, no shutdown is made.
   */
  shutSoon(flow: Flow): void {
    if (this.#inBatch) this.#shutsDue.push(flow);
    else shutOne(flow);
  }

  /**
   * Sends `conn`'s held ACK once its `ackWaitMs` have passed, or before the loop waits, whichever
   * comes first, unless bytes sent by then carried it. Only while the loop turns: one waiting
   * on the other thread would not see it due.
   */
  deferAck(conn: EpollConn): void {
    this.#acks.push(conn, performance.now() + conn.ackWaitMs);
  }

  /** The loop is running, not waiting on the other thread: what is deferred will be seen due. */
  get turning(): boolean {
    return this.#looping && !this.#parked;
  }

  /**
   * Makes `relay`'s first moves, as a batch of its own when the loop is not in one: what ends
   * in it is shut at its end, since the loop may be waiting on the other thread.
   */
  startRelay(relay: Relay): void {
    if (this.#inBatch) return firstMoves(relay);
    const fromDue = this.#shutsDue.length;
    const fromNext = this.#shutsNext.length;
    this.#inBatch = true;
    try {
      firstMoves(relay);
    } finally {
      this.#inBatch = false;
      shutFrom(this.#shutsDue, fromDue);
      shutFrom(this.#shutsNext, fromNext);
    }
  }

  /** Sends the deferred ACKs that are due, or every one with `all`. */
  #acksDeferred(all: boolean): void {
    if (this.#acks.size === 0) return;
    this.#acks.takeDue(all ? Infinity : performance.now(), sendHeldAck);
  }

  /** Makes the shutdowns whose `finWaitMs` is over. */
  #finsDue(): void {
    if (this.#finWaits.size === 0) return;
    this.#finWaits.takeDue(performance.now(), shutOne);
  }

  /** Makes the shutdowns due at the end of this batch, or every one with `all`. */
  #shutDeferred(all: boolean): void {
    const due = this.#shutsDue;
    shutAll(due);
    due.length = 0;
    this.#shutsDue = this.#shutsNext;
    this.#shutsNext = due;
    if (!all) return;
    shutAll(this.#shutsDue);
    this.#shutsDue.length = 0;
  }

  /** A buffer for a bulk flow, or undefined when {@linkcode BULKS_MAX} are taken. */
  takeBulk(): Uint8Array | undefined {
    if (this.#bulksTaken >= BULKS_MAX) return undefined;
    this.#bulksTaken++;
    return this.#bulkPool.pop() ?? this.#coldBulks.pop() ?? new Uint8Array(BULK_BYTES);
  }

  /** Gives back a buffer from {@linkcode takeBulk}, which `flow` held. */
  giveBulk(buf: Uint8Array, flow: Flow): void {
    if (this.#ringBulks.delete(flow) && this.#ringBulks.size === 0) {
      clearTimeout(this.#bulkTimer);
      this.#bulkTimer = undefined;
    }
    this.#bulksTaken--;
    if (this.#bulkPool.length < BULK_POOL_MAX) return void this.#bulkPool.push(buf);
    // Its pages go back to the kernel now, where dropping it would wait for a collection of
    // V8's old generation, which an idle process may not make for minutes.
    this.libc.discard(buf);
    this.#coldBulks.push(buf);
  }

  #control(op: number, fd: number, events: number, slot: number, generation: number): void {
    const offset = this.libc.eventDataOffset;
    this.#ctlView.setUint32(0, events >>> 0, true);
    this.#ctlView.setUint32(offset, slot, true);
    this.#ctlView.setUint32(offset + 4, generation, true);
    if (this.libc.epollCtl(this.#ep, op, fd, this.#ctl) < 0) {
      throw errnoError(this.libc.errno(), "epoll_ctl");
    }
  }

  #wake(): void {
    this.#counter.fill(0);
    this.#counter[0] = 1;
    this.libc.write(this.#wakeFd, this.#counter, 8);
  }

  /**
   * Events found by looking without waiting, again and again for {@linkcode SPIN_MS} at most,
   * or until the ring has something.
   */
  #spin(): number {
    const until = performance.now() + SPIN_MS;
    let n: number;
    do {
      n = this.libc.epollPoll(this.#ep, this.#events, MAX_EVENTS, 0);
      // The ring signals nothing while the loop runs: its flags say when it has something.
    } while (n <= 0 && !this.#ringHas() && performance.now() < until);
    return n;
  }

  /** Whether the ring has completions to post or take (read without a system call). */
  #ringHas(): boolean {
    const ring = this.ring;
    return ring !== undefined && (ring.due || ring.ready);
  }

  /**
   * Before a wait: the ring signals its eventfd again, so that the wait ends for it; false (no
   * wait) if it has entries to hand over or completions to post or take already.
   */
  #readyToWait(): boolean {
    const ring = this.ring;
    if (ring === undefined) return true;
    ring.signals(true);
    if (ring.queued === 0 && !this.#ringHas()) return true;
    ring.signals(false);
    return false;
  }

  /**
   * Waits on the ring for `ms` at most, until a completion is there to post or take or the
   * epoll set has events (a poll of it on the ring, made once and again after each time it
   * completes), handing over what is queued: whether the ring has something.
   */
  #waitOnRing(ms: number): boolean {
    const ring = this.ring!;
    if (!this.#epollArmed) {
      this.#epollArmed = true;
      this.pushIo(OP_POLL_ADD, this.#ep, 0, 0, EPOLLIN, 0, K_EPOLL);
    }
    ring.wait(ms);
    this.#handedOver();
    return this.#ringHas();
  }

  async #loop(): Promise<void> {
    this.#looping = true;
    const { libc } = this;
    const view = this.#eventsView;
    const size = libc.eventSize;
    const dataOffset = libc.eventDataOffset;
    // Whether the loop has looked for events without waiting since the last batch.
    let spun = false;
    // Short waits in a row on this thread that found nothing.
    let quietWaits = 0;
    // When the runtime's event loop last turned.
    let turnedAtMs = Date.now();
    // The ring's eventfd is for the waits (see #readyToWait).
    this.ring?.signals(false);
    try {
      while (this.#registered > 0) {
        this.#ringTurn();
        // While there is work, look for more on this thread without waiting, and let the
        // runtime's event loop turn once a millisecond. When nothing is ready, look on for a
        // moment (SPIN_MS), then wait here, on this thread, for a millisecond at most: the next
        // event costs one wake-up, as it does in HAProxy. Only once such waits have found
        // nothing several times in a row does the wait go to the other thread, whose wake-up
        // costs two thread switches more, but which lets the runtime go on meanwhile.
        const due = Date.now() - turnedAtMs >= TURN_EVERY_MS;
        let n = due ? 0 : libc.epollPoll(this.#ep, this.#events, MAX_EVENTS, 0);
        // What the ring has makes a batch, as its signal would have (off while the loop runs).
        let ringBatch = !due && this.#ringHas();
        if (n <= 0 && !ringBatch) {
          if (due) {
            await libc.runtimeTurn();
            turnedAtMs = Date.now();
            continue;
          }
          this.#shutDeferred(true);
          // What the last turn's completions queued goes before any wait: a wait on the other
          // thread ends only for an event, and entries never handed over make none.
          if (this.ring !== undefined && this.ring.queued > 0) continue;
          // Every reaction runs before the next macrotask (an immediate: 1.5 µs, no system
          // call), and the work it does may be what the next event waits for.
          if (this.settled) {
            this.settled = false;
            await new Promise((resolve) => setImmediate(resolve));
            continue;
          }
          if (!spun) {
            spun = true;
            n = this.#spin();
            ringBatch = this.#ringHas();
          }
        }
        if (n <= 0 && !ringBatch) {
          // Held ACKs go before any wait; a look that found nothing was too soon for the bytes
          // that would have carried them.
          this.#acksDeferred(true);
          // A FIN that waits keeps the wait here, where the loop sees it due.
          const here = quietWaits < QUIET_WAITS || this.#finWaits.size > 0;
          // With a ring, this thread waits on it, the epoll set polled there. It waits there
          // longer, rather than on the other thread, while anything has entries on a ring whose
          // eventfd would not end that wait for them.
          if (this.ring !== undefined && (here || (!this.#announces && this.#onRing > 0))) {
            ringBatch = this.#waitOnRing(here ? TURN_EVERY_MS : IDLE_WAIT_MS);
            if (!ringBatch) {
              this.#finsDue();
              quietWaits++;
              continue;
            }
          } else if (!this.#readyToWait()) {
            continue;
          } else if (here) {
            n = libc.epollPoll(this.#ep, this.#events, MAX_EVENTS, TURN_EVERY_MS);
            if (n <= 0) {
              this.#finsDue();
              quietWaits++;
              continue;
            }
          } else {
            this.#parked = true;
            n = await libc.epollWait(this.#ep, this.#events, MAX_EVENTS, -1);
            this.#parked = false;
            this.ring?.signals(false);
            // The runtime's event loop went on meanwhile.
            turnedAtMs = Date.now();
          }
        }
        quietWaits = 0;
        spun = false;
        this.#inBatch = true;
        if (ringBatch) this.#ringTurn();
        // The poll of the epoll set on the ring says it has events.
        if (this.#epollSeen) {
          this.#epollSeen = false;
          if (n <= 0) n = libc.epollPoll(this.#ep, this.#events, MAX_EVENTS, 0);
        }
        for (let i = 0; i < n; i++) {
          const base = i * size;
          const slot = view.getUint32(base + dataOffset, true);
          if (slot === WAKE_SLOT) {
            libc.read(this.#wakeFd, this.#counter, 8);
            continue;
          }
          if (slot === RING_SLOT) {
            this.#ringTurn();
            continue;
          }
          const target = this.#slots[slot];
          if (target === undefined) continue;
          if (this.#generations[slot] !== view.getUint32(base + dataOffset + 4, true)) continue;
          try {
            target.onEvents(view.getUint32(base, true));
          } catch (err) {
            unexpected(err);
          }
        }
        this.#inBatch = false;
        this.#shutDeferred(false);
        this.#finsDue();
        this.#acksDeferred(false);
        // Let the promise reactions of this batch run (the next sends, a relay that starts)
        // before looking for more: a look that finds nothing would otherwise wait on them.
        await null;
      }
    } finally {
      this.#looping = false;
      this.#inBatch = false;
      this.#shutsDue.length = 0;
      this.#shutsNext.length = 0;
      this.#finWaits.clear();
      this.#acks.clear();
      this.ring?.signals(true);
      // What the last turn's promise reactions queued (the close of the last socket) goes now.
      if (this.ring !== undefined && this.ring.queued > 0) this.#submit();
    }
  }
}

/** Logs an error thrown by a bug (here or in a callback); the loop goes on for every other socket. */
function unexpected(err: unknown): void {
  log.error("epoll engine: unexpected error: {error}", {
    error: (err as Error)?.stack ?? String(err),
  });
}

/** One direction of a relay: from `src` to `dst`. */
class Flow implements DestinationLook {
  readonly relay: Relay;
  readonly src: EpollConn;
  readonly dst: EpollConn;
  readonly up: boolean;
  /**
   * Bytes read from `src` that `dst` has not taken yet: a copy out of the shared buffer, or a
   * view of {@linkcode bulk}.
   */
  pending: Uint8Array | undefined = undefined;
  /** This flow's own read buffer while it is a bulk flow. */
  bulk: Uint8Array | undefined = undefined;
  /** Bytes read since `src` last had nothing to read: decides when to give `bulk` back. */
  burst = 0;
  /** `src` reached end of stream. */
  eof = false;
  /** This direction has finished cleanly. */
  ended = false;
  /** `dst`'s write side was shut down (or needs no shutdown): `onEnd` was called. */
  shut = false;
  /**
   * The size of `dst`'s send buffer when last looked at, and what {@linkcode bulkReadSize}
   * remembers of it.
   */
  sendBuffer = 0;
  givenSeen = 0;
  unsentSeen = 0;
  movedAtMs = 0;
  /** On the ring: where {@linkcode bulk} is in memory. */
  bulkAddr = 0;
  /** On the ring: the shared buffer being sent on (or -1), its bytes, and how many went out. */
  bid = -1;
  len = 0;
  sent = 0;
  /** On the ring: where the bytes being sent are, and at which submission the send was queued. */
  from = 0;
  sentAt = 0;
  /** On the ring: the send is being cancelled, to give its shared buffer back. */
  reclaiming = false;
  /** On the ring: the next receive is queued behind the send, linked to it. */
  recvLinked = false;

  constructor(relay: Relay, src: EpollConn, dst: EpollConn, up: boolean) {
    this.relay = relay;
    this.src = src;
    this.dst = dst;
    this.up = up;
  }
}

/** A running relay between two engine connections. */
class Relay implements RingUser {
  readonly poller: Poller;
  readonly counters: RelayCounters;
  readonly options: RelayOptions | undefined;
  readonly up: Flow;
  readonly down: Flow;
  done = false;
  ringId = -1;
  inFlight = 0;
  readonly #resolve: (error: NetError | undefined) => void;

  constructor(
    poller: Poller,
    a: EpollConn,
    b: EpollConn,
    counters: RelayCounters,
    options: RelayOptions | undefined,
    resolve: (error: NetError | undefined) => void,
  ) {
    this.poller = poller;
    this.counters = counters;
    this.options = options;
    this.#resolve = resolve;
    this.up = new Flow(this, a, b, true);
    this.down = new Flow(this, b, a, false);
    a.outFlow = this.up;
    b.inFlow = this.up;
    b.outFlow = this.down;
    a.inFlow = this.down;
  }

  /** Ends the relay: detaches the flows, closes both sides, settles with `error`, if any. */
  finish(error: NetError | undefined): void {
    if (this.done) return;
    this.done = true;
    detach(this.up);
    detach(this.down);
    this.up.src.close();
    this.down.src.close();
    if (this.ringId >= 0) this.poller.leave(this);
    this.poller.settled = true;
    this.#resolve(error);
  }

  get offRing(): boolean {
    return this.done;
  }

  completed(kind: number, res: number, flags: number): void {
    ringCompleted(this, kind, res, flags);
    if (this.done && this.inFlight === 0) {
      releaseBulk(this.up);
      releaseBulk(this.down);
    }
  }
}

/** Receives for `flow` on the ring, into a buffer the kernel picks when data comes. */
function ringRecv(flow: Flow): void {
  const relay = flow.relay;
  const kind = flow.up ? K_RECV_UP : K_RECV_DOWN;
  const bulk = flow.bulk;
  const poller = relay.poller;
  if (bulk !== undefined) {
    // A bulk flow receives into its own buffer, about what its destination takes now.
    const len = readSize(flow, bulk.length);
    poller.pushIo(OP_RECV, flow.src.fd, flow.bulkAddr, len, 0, 0, userData(relay, kind));
  } else {
    // The kernel picks a shared buffer when data comes.
    const size = poller.group!.size;
    poller.pushIo(OP_RECV, flow.src.fd, 0, size, 0, SQE_BUFFER_SELECT, userData(relay, kind));
  }
  relay.inFlight++;
}

/** Waits on the ring for `flow`'s source to have bytes (or an end, or an error). */
function ringPoll(flow: Flow): void {
  const relay = flow.relay;
  // poll(2)'s bits are epoll's.
  const events = EPOLLIN | EPOLLRDHUP;
  const kind = flow.up ? K_POLL_UP : K_POLL_DOWN;
  relay.poller.pushIo(OP_POLL_ADD, flow.src.fd, 0, 0, events, 0, userData(relay, kind));
  relay.inFlight++;
}

/**
 * Sends what `flow` has left to send from a copy of its own, and gives back the buffer it was
 * in (shared, or the flow's bulk buffer): a send {@linkcode Poller.reclaim} or the bulk timer
 * cancelled. On a rare path, so the copy is allocated here.
 */
function sendFromCopy(flow: Flow): void {
  flow.reclaiming = false;
  const poller = flow.relay.poller;
  const held = flow.bid >= 0
    ? poller.group!.bytes(flow.bid, flow.len)
    : flow.pending === undefined
    ? flow.bulk?.subarray(0, flow.len)
    : undefined;
  if (held !== undefined) {
    const rest = flow.len - flow.sent;
    // More than 64 bytes: V8 keeps smaller typed arrays in its heap, where they can move.
    const copy = new Uint8Array(Math.max(rest, 128));
    copy.set(held.subarray(flow.sent));
    flow.pending = copy;
    flow.from = poller.ring!.addressOf(copy);
    flow.len = rest;
    flow.sent = 0;
    if (flow.bid >= 0) giveBack(flow);
    else releaseBulk(flow);
  }
  ringSend(flow, false);
}

/**
 * Sends on what `flow` received and has not sent yet; complete once every byte is taken. With
 * `link`, the entry queued next starts only once this send is over (see {@linkcode SQE_LINK}).
 */
function ringSend(flow: Flow, link: boolean): void {
  const relay = flow.relay;
  const poller = relay.poller;
  // The ACK goes with these bytes.
  flow.dst.ackHeld = false;
  flow.sentAt = poller.submits;
  poller.pushIo(
    OP_SEND,
    flow.dst.fd,
    flow.from + flow.sent,
    flow.len - flow.sent,
    MSG_NOSIGNAL | MSG_WAITALL,
    link ? SQE_LINK : 0,
    userData(relay, flow.up ? K_SEND_UP : K_SEND_DOWN),
  );
  relay.inFlight++;
}

/** Gives back the buffer `flow` holds, if any. */
function giveBack(flow: Flow): void {
  if (flow.bid < 0) return;
  const bid = flow.bid;
  flow.bid = -1;
  flow.relay.poller.giveBuffer(bid);
}

/** A ring entry of `relay` of `kind` completed with `res` and `flags`. */
function ringCompleted(relay: Relay, kind: number, res: number, flags: number): void {
  const flow = (kind & 1) === 0 ? relay.up : relay.down;
  const poller = relay.poller;
  if (kind === K_POLL_UP || kind === K_POLL_DOWN) {
    if (relay.done) return;
    // Bytes are there (or an error, an end, which the receive reports).
    if (poller.bufferFree) return ringRecv(flow);
    poller.starve(flow);
    return poller.reclaim();
  }
  if (kind === K_RECV_UP || kind === K_RECV_DOWN) {
    if (flow.recvLinked) {
      flow.recvLinked = false;
      // Its send failed or was cancelled (which reports it), or was cut short and goes on:
      // the send, once over, receives again. The buffer in `bid` is the send's.
      if (res === CANCELLED) return;
    }
    flow.bid = BufferGroup.idOf(flags);
    if (flow.bid >= 0) poller.tookBuffer(flow.bid, flow);
    if (res > 0 && !relay.done) {
      flow.len = res;
      flow.sent = 0;
      flow.from = flow.bid >= 0 ? poller.group!.addressOf(flow.bid) : flow.bulkAddr;
      // A receive that filled a shared buffer makes a bulk flow: its next ones are larger.
      if (res === poller.group!.size && flow.bulk === undefined) takeRingBulk(flow);
      if (flow.bulk !== undefined) return ringSend(flow, false);
      // The next receive goes in the same submission, linked behind the send: the kernel makes
      // it as soon as the send is over, and the end of a short reply (its FIN) is read at once.
      poller.makeRoom(2);
      ringSend(flow, true);
      flow.recvLinked = true;
      return ringRecv(flow);
    }
    // A receive that took no buffer may have been the turn of one waiting for a buffer.
    if (flow.bid < 0 && res !== NO_BUFFERS) poller.serveStarved();
    giveBack(flow);
    if (relay.done) return;
    if (res === 0) {
      flow.eof = true;
      return end(flow);
    }
    // The kernel picks the buffer before it looks for bytes: with none free, an idle direction
    // fails as one with bytes waiting does. Only those with bytes wait for a buffer (one
    // without would take no buffer given to it, and leave the rest waiting for good).
    if (res === NO_BUFFERS) return ringPoll(flow);
    return failed(flow, -res);
  }
  // Cancelled by reclaim() before it sent anything.
  if (res === CANCELLED && !relay.done) return sendFromCopy(flow);
  if (res < 0 || relay.done) {
    giveBack(flow);
    if (!relay.done) failed(flow, -res);
    return;
  }
  counted(flow, res);
  flow.sent += res;
  // Cut short by reclaim() (a cancelled send reports what it sent), or else in parts.
  if (flow.sent < flow.len) return flow.reclaiming ? sendFromCopy(flow) : ringSend(flow, false);
  // Sent whole before the cancellation came (which then finds nothing to cancel).
  flow.reclaiming = false;
  flow.pending = undefined;
  giveBack(flow);
  // A bulk flow whose last receive would have fitted a shared buffer has slowed down.
  if (flow.bulk !== undefined && flow.len < poller.group!.size) releaseBulk(flow);
  // A receive linked behind this send is on its way already.
  if (!flow.recvLinked) ringRecv(flow);
}

/**
 * What `flow` reads next, up to `max` (see {@linkcode bulkReadSize}). One system call
 * (`SIOCOUTQNSD`), two when the size the kernel tunes is looked at again: when the last one
 * known would cut the read.
 */
function readSize(flow: Flow, max: number): number {
  const poller = flow.relay.poller;
  const fd = flow.dst.fd;
  const unsent = poller.sendUnsent(fd);
  if (sendRoom(flow.sendBuffer, unsent) < max) {
    flow.sendBuffer = poller.intOption(fd, SOL_SOCKET, SO_SNDBUF);
  }
  const { counters } = flow.relay;
  const given = flow.up ? counters.bytesUp : counters.bytesDown;
  return bulkReadSize(flow, given, unsent, flow.sendBuffer, Date.now(), max);
}

/** Gives `flow` a buffer of its own on the ring, if one is left. */
function takeRingBulk(flow: Flow): void {
  const poller = flow.relay.poller;
  const bulk = poller.takeBulk();
  if (bulk === undefined) return;
  flow.bulk = bulk;
  flow.bulkAddr = poller.ring!.addressOf(bulk);
  poller.watchBulk(flow);
}

/** Moves what each side of a new relay has already, and sees to the ACKs still held. */
function firstMoves(relay: Relay): void {
  const { counters, up, down, poller } = relay;
  const { bytesUp, bytesDown } = counters;
  run(down);
  run(up);
  // A held ACK went with what was sent; with nothing sent, it waits for bytes or goes now.
  ackAfterStart(up.src, counters.bytesDown !== bytesDown, poller);
  ackAfterStart(up.dst, counters.bytesUp !== bytesUp, poller);
}

/** Before `flow` moves on the ring: its destination's held ACK goes with the first bytes sent. */
function ackOnRing(flow: Flow, poller: Poller): void {
  const conn = flow.dst;
  if (!conn.ackHeld) return;
  // Bytes waiting go out with the ring's first send (see ringSend), as the epoll relay's first
  // moves send them; bytes that come within the wait, too. Only a relay that may not wait looks.
  ackAfterStart(conn, !mayWait(conn, poller) && poller.bytesWaiting(flow.src.fd) > 0, poller);
}

/**
 * After a relay's first moves: `conn`'s held ACK went with what was `sent`, or waits for the
 * first bytes to carry it (`ackWaitMs`, while the loop is busy), or goes now.
 */
function ackAfterStart(conn: EpollConn, sent: boolean, poller: Poller): void {
  if (sent) conn.ackHeld = false;
  else if (mayWait(conn, poller)) poller.deferAck(conn);
  else conn.sendHeldAck();
}

/**
 * Whether `conn`'s held ACK may wait for bytes to carry it. A client often sends its request a
 * moment after its connect is accepted (on loopback here: 0.05 to 5 ms under load, after the
 * backend's connect is over); sent alone, the ACK wakes the server twice (accept, then the
 * request). A loop waiting on the other thread would not see the wait end: it goes now then.
 */
function mayWait(conn: EpollConn, poller: Poller): boolean {
  return conn.ackWaitMs > 0 && poller.turning;
}

function sendHeldAck(conn: EpollConn): void {
  conn.sendHeldAck();
}

/** Leaves `flow`'s sockets to themselves again. */
function detach(flow: Flow): void {
  flow.src.outFlow = undefined;
  flow.dst.inFlow = undefined;
  // On the ring, a receive in flight may still write into it: it goes back once none is.
  if (flow.relay.inFlight === 0) releaseBulk(flow);
}

function releaseBulk(flow: Flow): void {
  if (flow.bulk === undefined) return;
  flow.relay.poller.giveBulk(flow.bulk, flow);
  flow.bulk = undefined;
}

function counted(flow: Flow, bytes: number): void {
  const relay = flow.relay;
  if (flow.up) relay.counters.bytesUp += bytes;
  else relay.counters.bytesDown += bytes;
  const onChunk = relay.options?.onChunk;
  if (onChunk !== undefined) onChunk(flow.up ? "up" : "down", bytes);
}

function failed(flow: Flow, errno: number): void {
  flow.relay.finish(errnoError(errno));
}

/**
 * Moves what `flow.src` has to `flow.dst` until one of them would block, `src` ends or either
 * fails. Called whenever either side's readiness may have changed.
 */
function run(flow: Flow): void {
  const { src, dst, relay } = flow;
  const libc = relay.poller.libc;
  while (!relay.done && !flow.ended) {
    // First what is held.
    if (flow.pending !== undefined) {
      if (!dst.canWrite) return;
      const held = flow.pending;
      const w = libc.send(dst.fd, held, held.length);
      if (w < 0) {
        const errno = libc.errno();
        if (errno !== EAGAIN) return failed(flow, errno);
        dst.canWrite = false;
        return;
      }
      counted(flow, w);
      if (w < held.length) {
        flow.pending = held.subarray(w);
        dst.canWrite = false;
        return;
      }
      flow.pending = undefined;
    }
    if (flow.eof) return end(flow);
    // Nothing is read while the destination is full: the bytes wait in the kernel, whose
    // receive window then slows the sender (backpressure).
    if (!src.canRead || !dst.canWrite) return;
    const buf = flow.bulk ?? relay.poller.shared;
    let len = buf.length;
    // A bulk flow reads about what its destination takes now: what a reader that has fallen
    // behind leaves is then small, and held in a copy (below).
    if (buf === flow.bulk) len = readSize(flow, len);
    const n = libc.recv(src.fd, buf, len);
    if (n > 0) {
      flow.burst += n;
      let w = libc.send(dst.fd, buf, n);
      if (w < 0) {
        const errno = libc.errno();
        if (errno !== EAGAIN) return failed(flow, errno);
        w = 0;
      }
      if (w > 0) counted(flow, w);
      if (w < n) {
        // Held in a copy, out of the shared buffer or the flow's own, which goes back: its
        // reader has fallen behind, and may never read again.
        flow.pending = buf.slice(w, n);
        if (buf === flow.bulk) releaseBulk(flow);
        dst.canWrite = false;
        return;
      }
      if (n === buf.length && flow.bulk === undefined) flow.bulk = relay.poller.takeBulk();
      if (n < len) {
        // A stream socket that gave less than asked is empty: a later arrival is a new edge.
        // Unless its peer has finished, when the next read must see the end of stream...
        if (!src.peerDone) return ranDry(flow);
        // ...which the FIN seen before this read already said: no read to hear it again.
        if (src.finSeen) flow.eof = true;
      }
      continue;
    }
    if (n === 0) {
      flow.eof = true;
      continue;
    }
    const errno = libc.errno();
    if (errno !== EAGAIN && errno !== EINTR) return failed(flow, errno);
    return ranDry(flow);
  }
}

/**
 * `flow.src` has nothing more to read for now: the flow waits for its next edge. A flow that
 * moved less than the shared buffer since it last ran dry has slowed down: its own buffer
 * goes back, and its next read is into the shared one again.
 */
function ranDry(flow: Flow): void {
  flow.src.canRead = false;
  if (flow.burst < SHARED_BYTES && flow.pending === undefined) releaseBulk(flow);
  flow.burst = 0;
}

/**
 * `flow.src` has ended and everything it sent has been delivered. The last direction to end
 * needs no shutdown: the relay closes both sides now. The client's end waits for the next
 * batch (see {@linkcode Poller.deferShut}), since a backend seldom closes before it has seen
 * it: when the backend's end comes by then, no shutdown is made at all. The backend's end is
 * passed on at once, as HAProxy and nginx do (at the end of the batch when the client's end
 * has been seen too, so that no shutdown is made): a client that sees it before it closes (an
 * HTTP client on a `Connection: close` reply) then keeps no TIME_WAIT, which would slow its
 * next connects to the same address. With `finWaitMs`, it waits that long for the client's
 * instead, so that the client keeps the TIME_WAIT and no shutdown is made.
 */
function end(flow: Flow): void {
  const relay = flow.relay;
  flow.ended = true;
  releaseBulk(flow);
  const other = flow === relay.up ? relay.down : relay.up;
  if (!other.ended) {
    const waitMs = flow.up ? 0 : relay.options?.finWaitMs ?? 0;
    if (flow.up || waitMs > 0) relay.poller.deferShut(flow, waitMs);
    else if (other.src.peerDone) relay.poller.shutSoon(flow);
    else shutOne(flow);
    return;
  }
  if (!other.shut) shut(other, false);
  shut(flow, false);
  relay.finish(undefined);
}

/** {@linkcode shut} with its write side, whatever a callback throws. */
function shutOne(flow: Flow): void {
  try {
    shut(flow, true);
  } catch (err) {
    unexpected(err);
  }
}

/** {@linkcode shutOne} for each of `flows`. */
function shutAll(flows: Flow[]): void {
  for (let i = 0; i < flows.length; i++) shutOne(flows[i]);
}

/** {@linkcode shutOne} for each of `flows` from index `from` on, which then leave it. */
function shutFrom(flows: Flow[], from: number): void {
  if (flows.length === from) return;
  const shuts = flows.slice(from);
  flows.length = from;
  shutAll(shuts);
}

/** Shuts `flow.dst`'s write side (`write` false: the relay closes it next) and says so. */
function shut(flow: Flow, write: boolean): void {
  const relay = flow.relay;
  if (flow.shut || relay.done) return;
  flow.shut = true;
  if (write) flow.dst.shutWrite();
  relay.options?.onEnd?.(flow.up ? "up" : "down");
}

/** A read waiting for data. */
interface PendingRead {
  buf: Uint8Array;
  resolve: (n: number | null) => void;
  reject: (err: NetError) => void;
}

/** A write waiting for room; an empty `data` with `shut` is a `closeWrite` in line. */
interface PendingWrite {
  data: Uint8Array;
  shut: boolean;
  resolve: () => void;
  reject: (err: NetError) => void;
}

/** A connection that is still connecting. */
interface Connecting {
  resolve: (conn: EpollConn) => void;
  reject: (err: NetError) => void;
  /** When it times out (ms since the epoch), or Infinity. */
  deadlineMs: number;
  timeoutMs: number | undefined;
}

/**
 * A TCP socket of the engine. With a ring, a socket enters the epoll set only once it is read
 * or written to outside a relay: one accepted or connected on the ring and then relayed on it
 * is never there.
 */
class EpollConn implements Conn, Pollable, RingUser {
  /** Its descriptor; -1 until the ring has made its socket. */
  fd: number;
  readonly #poller: Poller;
  /** Where it is in the epoll set, or -1. */
  #slot = -1;
  ringId = -1;
  inFlight = 0;
  #remote: Addr | undefined;
  #local: Addr | undefined;
  /** Whether a read may find data (cleared when one would block; set by events). */
  canRead = false;
  /** Whether a write may find room. */
  canWrite = false;
  /** The peer has finished sending (or the socket failed): reads go on to the end. */
  peerDone = false;
  /**
   * The peer's FIN has arrived, without an error: once a read gives less than asked, the
   * stream has ended (everything before the FIN has been read).
   */
  finSeen = false;
  /** The handshake's last ACK waits for the first bytes sent (`ackWithData`). */
  ackHeld = false;
  /** How long a relay that starts with nothing to send keeps it back (`ackWaitMs`). */
  ackWaitMs = 0;
  #eof = false;
  #writeShut = false;
  #closed = false;
  #error: NetError | undefined;
  #reader: PendingRead | undefined;
  #writes: PendingWrite[] | undefined;
  connecting: Connecting | undefined;
  /** Its place among the poller's connects with a deadline, while it is one; else -1. */
  connectSlot = -1;
  /** The relay flow reading from this socket, while one does. */
  outFlow: Flow | undefined;
  /** The relay flow writing to this socket, while one does. */
  inFlow: Flow | undefined;
  /** The relay on the ring this socket belongs to: it is no longer in the epoll set. */
  #ringRelay: Relay | undefined;
  /** Where it connects to, until the ring has made its socket. */
  #sockaddr: Uint8Array | undefined;

  /**
   * `noDelay`: set TCP_NODELAY (an accepted socket has it from its listener already);
   * `inEpoll`: add it to the epoll set now (else when first read or written to).
   */
  constructor(
    poller: Poller,
    fd: number,
    remote: Addr | undefined,
    noDelay: boolean,
    inEpoll: boolean,
  ) {
    this.#poller = poller;
    this.fd = fd;
    this.#remote = remote;
    // Small writes go out at once, as the runtime's sockets are set up too.
    if (noDelay) poller.setIntOption(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    if (inEpoll) this.#slot = poller.add(this, fd, CONN_EVENTS);
  }

  /**
   * Adds a socket not in the epoll set yet (or relayed on the ring) to it, before a read or a
   * write: both are tried at once, and an edge from then on says when to try again.
   */
  enterEpoll(): void {
    if (this.#slot >= 0 || this.#ringRelay !== undefined || this.#closed) return;
    this.#slot = this.#poller.add(this, this.fd, CONN_EVENTS);
    this.canRead = true;
    this.canWrite = true;
  }

  /** Makes a socket and connects it to `sockaddr`, on the ring (the socket's fd comes first). */
  connectOnRing(
    sockaddr: Uint8Array,
    timeoutMs: number | undefined,
    options: ConnectOptions | undefined,
  ): Promise<EpollConn> {
    const poller = this.#poller;
    // Held from the socket's first option on (see completed()).
    this.ackHeld = options?.ackWithData === true;
    this.ackWaitMs = options?.ackWaitMs ?? 0;
    return new Promise((resolve, reject) => {
      const deadlineMs = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
      this.connecting = { resolve, reject, deadlineMs, timeoutMs };
      this.#sockaddr = sockaddr;
      poller.join(this);
      poller.push({
        op: OP_SOCKET,
        fd: familyOf(sockaddr),
        off: SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
        userData: userData(this, K_SOCKET),
      });
      this.inFlight++;
      poller.connectStarted(this);
      poller.kick();
    });
  }

  get offRing(): boolean {
    return this.connecting === undefined;
  }

  /** Its socket, TCP_NODELAY or connect on the ring completed with `res`. */
  completed(kind: number, res: number): void {
    const poller = this.#poller;
    if (kind === K_NODELAY) {
      // A kernel older than 6.7 sets no option on the ring: the system call, then.
      if (res < 0 && !this.#closed) poller.setIntOption(this.fd, IPPROTO_TCP, TCP_NODELAY, 1);
      return;
    }
    if (kind === K_QUICKACK) {
      // A kernel older than 6.7 sets no option on the ring: no ACK is held, none is to send.
      if (res < 0) this.ackHeld = false;
      return;
    }
    const connecting = this.connecting;
    if (kind === K_SOCKET) {
      // Closed meanwhile: that said why already.
      if (connecting === undefined) {
        if (res >= 0) poller.libc.close(res);
        return;
      }
      if (res < 0) {
        this.#error = errnoError(-res);
        return this.close();
      }
      this.fd = res;
      // Small writes go out at once, as the runtime's sockets are set up too.
      poller.noDelay(res, this);
      // Before the connect, which the ring starts after it.
      if (this.ackHeld) poller.holdAck(res, this);
      const sockaddr = this.#sockaddr!;
      this.#sockaddr = undefined;
      poller.push({
        op: OP_CONNECT,
        fd: res,
        addr: poller.stage(sockaddr),
        off: sockaddr.length,
        userData: userData(this, K_CONNECT),
      });
      this.inFlight++;
      return;
    }
    if (connecting === undefined) return;
    if (res === 0) {
      this.connecting = undefined;
      this.#poller.connectEnded(this);
      // A failure settles it through close().
      poller.settled = true;
      connecting.resolve(this);
      return;
    }
    this.#error = errnoError(-res);
    this.close();
  }

  get remoteAddr(): Addr {
    return this.#remote ??= { hostname: "", port: 0 };
  }

  get localAddr(): Addr {
    if (this.#local === undefined) {
      if (this.#closed) return { hostname: "", port: 0 };
      this.#local = this.#poller.localAddr(this.fd);
    }
    return this.#local;
  }

  onEvents(events: number): void {
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) !== 0) this.canRead = true;
    if ((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) !== 0) this.peerDone = true;
    if ((events & (EPOLLRDHUP | EPOLLERR)) === EPOLLRDHUP) this.finSeen = true;
    if ((events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) !== 0) this.canWrite = true;
    // A read, a write or a connect waits: these events may settle it.
    if (!this.idle) this.#poller.settled = true;
    if (this.connecting !== undefined) {
      if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) !== 0) this.#connected(events);
      return;
    }
    // Drain toward this socket first: what it makes room for may unblock the other side.
    if (this.inFlow !== undefined) run(this.inFlow);
    if (this.outFlow !== undefined) run(this.outFlow);
    if (this.#reader !== undefined && this.canRead) this.#serveRead();
    if (this.#writes !== undefined && this.canWrite) this.#flushWrites();
  }

  #connected(events: number): void {
    const connecting = this.connecting!;
    // Writable without an error is connected; only a failure needs SO_ERROR's reason.
    const soError = (events & (EPOLLERR | EPOLLHUP)) === 0
      ? 0
      : this.#poller.intOption(this.fd, SOL_SOCKET, SO_ERROR);
    if (soError === 0) {
      this.connecting = undefined;
      this.#poller.connectEnded(this);
      connecting.resolve(this);
      return;
    }
    this.#error = errnoError(Math.abs(soError));
    this.close();
  }

  /** Sends the handshake's last ACK now, if it is still held back. */
  sendHeldAck(): void {
    if (!this.ackHeld) return;
    this.ackHeld = false;
    if (!this.#closed) this.#poller.setIntOption(this.fd, IPPROTO_TCP, TCP_QUICKACK, 1);
  }

  read(buf: Uint8Array): Promise<number | null> {
    // A server that speaks first hears of this connection only from its last ACK.
    this.sendHeldAck();
    this.enterEpoll();
    if (this.#reader !== undefined) {
      return Promise.reject(new NetError("Other", "a read is already pending"));
    }
    if (buf.length === 0) return Promise.resolve(0);
    return new Promise((resolve, reject) => {
      this.#reader = { buf, resolve, reject };
      this.#serveRead();
    });
  }

  /** Settles the pending read if it can be now. */
  #serveRead(): void {
    const reader = this.#reader!;
    if (this.#closed || this.#error !== undefined) {
      this.#reader = undefined;
      reader.reject(this.#error ?? closedError());
      return;
    }
    if (this.#eof) {
      this.#reader = undefined;
      reader.resolve(null);
      return;
    }
    if (!this.canRead) return;
    const libc = this.#poller.libc;
    const n = libc.recv(this.fd, reader.buf, reader.buf.length);
    if (n < 0) {
      const errno = libc.errno();
      if (errno === EAGAIN || errno === EINTR) {
        this.canRead = false;
        return;
      }
      this.#error = errnoError(errno);
      this.#reader = undefined;
      reader.reject(this.#error);
      return;
    }
    this.#reader = undefined;
    if (n === 0) {
      this.#eof = true;
      reader.resolve(null);
      return;
    }
    if (n < reader.buf.length && !this.peerDone) this.canRead = false;
    reader.resolve(n);
  }

  writeAll(data: Uint8Array): Promise<void> {
    if (this.#closed || this.#error !== undefined) {
      return Promise.reject(this.#error ?? closedError());
    }
    if (this.#writeShut) return Promise.reject(new NetError("BrokenPipe", "broken pipe"));
    if (data.length === 0) return WRITTEN;
    this.enterEpoll();
    // Nothing queued and the socket took it all (a chat line, a request): nothing allocated.
    if (this.#writes === undefined && this.canWrite) {
      const w = this.#send(data);
      if (w === data.length) return WRITTEN;
      if (w === SEND_FAILED) return Promise.reject(this.#error);
      if (w > 0) data = data.subarray(w);
    }
    return new Promise((resolve, reject) => {
      (this.#writes ??= []).push({ data, shut: false, resolve, reject });
      this.#flushWrites();
    });
  }

  /**
   * Sends what the socket takes of `data` now: the byte count, with `canWrite` cleared when it
   * was not all; {@linkcode WOULD_BLOCK} when it took nothing; {@linkcode SEND_FAILED} on an
   * error, kept in `#error`.
   */
  #send(data: Uint8Array): number {
    const libc = this.#poller.libc;
    const w = libc.send(this.fd, data, data.length);
    if (w >= 0) {
      // The ACK went with these bytes.
      this.ackHeld = false;
      if (w < data.length) this.canWrite = false;
      return w;
    }
    const errno = libc.errno();
    if (errno === EAGAIN || errno === EINTR) {
      this.canWrite = false;
      return WOULD_BLOCK;
    }
    this.#error = errnoError(errno);
    return SEND_FAILED;
  }

  /** Writes what is queued, in order, while the socket takes it. */
  #flushWrites(): void {
    const writes = this.#writes!;
    while (writes.length > 0) {
      const head = writes[0];
      if (head.shut) {
        writes.shift();
        this.shutWrite();
        head.resolve();
        continue;
      }
      if (!this.canWrite) return;
      const w = this.#send(head.data);
      if (w === SEND_FAILED) {
        this.#failWrites(this.#error!);
        return;
      }
      if (w < head.data.length) {
        if (w > 0) head.data = head.data.subarray(w);
        return;
      }
      writes.shift();
      head.resolve();
    }
    this.#writes = undefined;
  }

  #failWrites(err: NetError): void {
    const writes = this.#writes;
    this.#writes = undefined;
    for (const write of writes ?? []) {
      if (write.shut) write.resolve();
      else write.reject(err);
    }
  }

  closeWrite(): Promise<void> {
    if (this.#closed || this.#writeShut) return Promise.resolve();
    if (this.#writes === undefined) {
      this.shutWrite();
      return Promise.resolve();
    }
    // After the writes already queued.
    return new Promise((resolve) =>
      this.#writes!.push({ data: new Uint8Array(0), shut: true, resolve, reject: () => {} })
    );
  }

  /** Shuts down the write side now (TCP FIN). Never throws. */
  shutWrite(): void {
    if (this.#closed || this.#writeShut) return;
    this.#writeShut = true;
    // A system call even on the ring: io_uring makes a shutdown on a worker thread, where it
    // takes the descriptor by number, maybe once it is another socket's (measured: new
    // connections shut before they were connected).
    this.#poller.libc.shutdown(this.fd, SHUT_WR);
  }

  /** Whether no read, write or connect waits on this socket. */
  get idle(): boolean {
    return this.#reader === undefined && this.#writes === undefined &&
      this.connecting === undefined;
  }

  /**
   * From now on `relay` on the ring reads and writes this socket. Returns whether it was in
   * the epoll set (the caller then removes the descriptor from it).
   */
  onRing(relay: Relay): boolean {
    this.#ringRelay = relay;
    if (this.#slot < 0) return false;
    this.#poller.remove(this.#slot);
    this.#slot = -1;
    return true;
  }

  /** Whether {@linkcode close} was called: the descriptor may belong to another socket now. */
  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const poller = this.#poller;
    if (this.#ringRelay !== undefined) {
      poller.closeOnRing(this.fd, this.#ringRelay);
    } else if (this.inFlight > 0) {
      // Still connecting on the ring (a socket not made yet is closed when it comes).
      if (this.fd >= 0) poller.cancelAndClose(userData(this, K_CONNECT), this.fd);
    } else if (this.#slot < 0 && poller.ring !== undefined) {
      // Never in the epoll set (or its socket never made: nothing to close).
      if (this.fd >= 0) poller.closeOnRing(this.fd, this);
    } else {
      poller.remove(this.#slot);
      poller.libc.close(this.fd);
    }
    const relay = (this.outFlow ?? this.inFlow)?.relay;
    if (
      this.connecting === undefined && this.#reader === undefined &&
      this.#writes === undefined && relay === undefined
    ) return;
    // Someone is waiting: tell them why.
    poller.settled = true;
    const err = this.#error ?? closedError();
    const connecting = this.connecting;
    if (connecting !== undefined) {
      this.connecting = undefined;
      this.#poller.connectEnded(this);
      connecting.reject(err);
    }
    const reader = this.#reader;
    if (reader !== undefined) {
      this.#reader = undefined;
      reader.reject(err);
    }
    if (this.#writes !== undefined) this.#failWrites(err);
    // Closed from outside while relaying: the relay ends with an error, as on the runtime.
    relay?.finish(err);
  }

  /** Fails a connect in progress with `err` (its timeout). */
  abortConnect(err: NetError): void {
    this.#error = err;
    this.close();
  }
}

function closedError(): NetError {
  return eventError("Closed", "connection closed");
}

/** A listening socket of the engine; level-triggered, so a backlog left over comes back. */
class EpollListener implements Listener, Pollable {
  readonly addr: Addr;
  readonly #poller: Poller;
  readonly #fd: number;
  readonly #slot: number;
  #queue: EpollConn[] = [];
  #wake: (() => void) | undefined;
  #closed = false;
  #resting: ReturnType<typeof setTimeout> | undefined;

  /**
   * Accepts are system calls even with a ring: a listener the ring holds would outlive its
   * process for a moment (until the kernel has torn the ring down), taking clients it then
   * resets, where a backend killed should refuse them at once.
   */
  constructor(poller: Poller, fd: number, addr: Addr) {
    this.#poller = poller;
    this.#fd = fd;
    this.addr = addr;
    this.#slot = poller.add(this, fd, EPOLLIN);
  }

  onEvents(): void {
    const poller = this.#poller;
    const libc = poller.libc;
    for (let i = 0; i < ACCEPT_BATCH && !this.#closed; i++) {
      poller.resetAddrLen();
      const fd = libc.accept4(
        this.#fd,
        poller.addrBuf,
        poller.addrLen,
        SOCK_NONBLOCK | SOCK_CLOEXEC,
      );
      if (fd < 0) {
        const errno = libc.errno();
        if (errno === ECONNABORTED || errno === EINTR) continue;
        if (errno === EMFILE || errno === ENFILE || errno === ENOBUFS || errno === ENOMEM) {
          this.#rest();
        }
        // EAGAIN (the backlog is empty) and anything else: wait for the next event.
        break;
      }
      try {
        // With a ring, it enters the epoll set only if read or written to before a relay.
        const remote = decodeSockaddr(poller.addrBuf);
        this.#queue.push(new EpollConn(poller, fd, remote, false, poller.ring === undefined));
      } catch {
        // Not registered (out of memory for the epoll set): turn this one away.
        libc.close(fd);
      }
    }
    const wake = this.#wake;
    if (wake === undefined) return;
    this.#wake = undefined;
    poller.settled = true;
    wake();
  }

  /** Out of descriptors or memory: stop watching for a moment instead of spinning. */
  #rest(): void {
    if (this.#resting !== undefined) return;
    this.#poller.modify(this.#slot, this.#fd, 0);
    this.#resting = setTimeout(() => {
      this.#resting = undefined;
      if (!this.#closed) this.#poller.modify(this.#slot, this.#fd, EPOLLIN);
    }, ACCEPT_BACKOFF_MS);
  }

  [Symbol.asyncIterator](): AsyncIterator<Conn> {
    // By hand rather than as an async generator: one promise per connection, not three.
    return {
      next: (): Promise<IteratorResult<Conn>> => {
        const conn = this.#queue.shift();
        if (conn !== undefined) return Promise.resolve({ value: conn, done: false });
        if (this.#closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => {
          this.#wake = () => resolve(this.#take());
        });
      },
      return: (): Promise<IteratorResult<Conn>> => {
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  #take(): IteratorResult<Conn> {
    const conn = this.#queue.shift();
    return conn === undefined ? { value: undefined, done: true } : { value: conn, done: false };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#resting);
    this.#poller.remove(this.#slot);
    this.#poller.libc.close(this.#fd);
    // Accepted but never taken: nobody else owns these.
    for (const conn of this.#queue.splice(0)) conn.close();
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

/** An address to connect to, encoded, and as the connection will report it. */
interface Target {
  sockaddr: Uint8Array;
  remote: Addr;
}

/** Targets kept encoded at most; past this the cache starts again. */
const TARGETS_MAX = 4096;

/** The target of `ip:port` (`ip` a literal). */
function targetOf(ip: string, port: number): Target {
  const sockaddr = encodeSockaddr({ hostname: ip, port })!;
  return { sockaddr, remote: decodeSockaddr(sockaddr) };
}

/** What the engine gives a {@linkcode Net}: TCP listen, connect and relay. */
export type EpollSockets = Pick<Net, "listen" | "connect" | "relay">;

/** What a runtime brings to its {@linkcode Net} (see {@linkcode runtimeNet}). */
export interface RuntimeParts {
  /** The runtime's name and version, for `--version`. */
  version: string;
  /** Its binding of the C library, or why there is none. */
  libc: () => Libc | { unavailable: string };
  /** Its binding of io_uring's system calls, or why there is none: asked only for a ring. */
  ringSys: () => RingSys | { unavailable: string };
  /** Its own TCP, for `--io runtime` and where the engine cannot run. */
  own: EpollSockets;
  serveHttp: Net["serveHttp"];
}

/**
 * The {@linkcode Net} of a runtime under `io`: TCP through this engine, with its relays on an
 * io_uring ring when `io` asks for that or is `auto` and it can run, else the runtime's own.
 * Throws {@linkcode NetError} when `io` names an engine that cannot run.
 */
export function runtimeNet(io: IoMode, parts: RuntimeParts): Net {
  const own = {
    runtime: parts.version,
    io: "runtime" as const,
    ...parts.own,
    resolve: resolveAll,
    serveHttp: parts.serveHttp,
  };
  if (io === "runtime") return own;
  const libc = parts.libc();
  if ("unavailable" in libc) {
    if (io === "auto") return own;
    throw new NetError("Other", `--io ${io} is not available: ${libc.unavailable}`);
  }
  const ring = io === "epoll" ? undefined : openRelayRing(parts.ringSys());
  if (ring !== undefined && "unavailable" in ring && io === "uring") {
    throw new NetError("Other", `--io uring is not available: ${ring.unavailable}`);
  }
  const onRing = ring !== undefined && !("unavailable" in ring);
  return {
    ...own,
    runtime: `${parts.version}, ${onRing ? "io_uring" : "epoll"}`,
    io: onRing ? "uring" : "epoll",
    ...epollSockets(libc, onRing ? ring : undefined),
  };
}

/** The epoll engine over `libc`, for the calling thread. */
export function epollSockets(libc: Libc, ring?: RelayRing): EpollSockets {
  const poller = new Poller(libc, ring);

  // Backends are connected to over and over: encode each address once. The address objects
  // of backends live as long as the backends, so most lookups are by identity.
  const targets = new Map<string, Target>();
  const targetsByAddr = new WeakMap<Addr, Target>();

  /** What connecting to `addr` tries, in order, as the runtime's own connect would. */
  async function targetsOf(addr: Addr): Promise<Target[]> {
    const key = `${addr.hostname} ${addr.port}`;
    const known = targets.get(key);
    if (known !== undefined) return [known];
    if (encodeSockaddr(addr) === undefined) {
      return (await resolveAll(addr.hostname)).map((ip) => targetOf(ip, addr.port));
    }
    if (targets.size >= TARGETS_MAX) targets.clear();
    const target = targetOf(addr.hostname, addr.port);
    targets.set(key, target);
    return [target];
  }

  function openSocket(addr: Uint8Array): number {
    const fd = libc.socket(familyOf(addr), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw errnoError(libc.errno());
    return fd;
  }

  async function listen(addr: Addr, options?: ListenOptions): Promise<Listener> {
    const [{ sockaddr }] = await targetsOf(addr);
    const fd = openSocket(sockaddr);
    const fail = (): never => {
      const err = errnoError(libc.errno());
      libc.close(fd);
      throw err;
    };
    if (!poller.setIntOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)) fail();
    // Accepted sockets inherit it (Linux): one system call per listener, not per client.
    poller.setIntOption(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    if (options?.reusePort && !poller.setIntOption(fd, SOL_SOCKET, SO_REUSEPORT, 1)) fail();
    if (libc.bind(fd, sockaddr) < 0) fail();
    if (libc.listen(fd, LISTEN_BACKLOG) < 0) fail();
    return new EpollListener(poller, fd, poller.localAddr(fd));
  }

  function connectTo(
    target: Target,
    timeoutMs: number | undefined,
    options: ConnectOptions | undefined,
  ): Promise<EpollConn> {
    const { sockaddr, remote } = target;
    if (poller.ring !== undefined) {
      return new EpollConn(poller, -1, remote, false, false).connectOnRing(
        sockaddr,
        timeoutMs,
        options,
      );
    }
    let conn: EpollConn;
    let fd: number;
    try {
      fd = openSocket(sockaddr);
      try {
        conn = new EpollConn(poller, fd, remote, true, poller.ring === undefined);
      } catch (err) {
        libc.close(fd);
        throw err;
      }
    } catch (err) {
      // Out of descriptors and the like: a rejection, as every other failure to connect.
      return Promise.reject(err);
    }
    // The kernel then holds the last ACK back until something is sent (or 200 ms pass).
    if (options?.ackWithData) {
      conn.ackHeld = poller.setIntOption(fd, IPPROTO_TCP, TCP_QUICKACK, 0);
      conn.ackWaitMs = options.ackWaitMs ?? 0;
    }
    if (libc.connect(fd, sockaddr) === 0) return Promise.resolve(conn);
    const errno = libc.errno();
    if (errno !== EINPROGRESS && errno !== EINTR) {
      conn.close();
      return Promise.reject(errnoError(errno));
    }
    return new Promise((resolve, reject) => {
      const deadlineMs = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
      conn.connecting = { resolve, reject, deadlineMs, timeoutMs };
      poller.connectStarted(conn);
    });
  }

  function connect(addr: Addr, options?: ConnectOptions): Promise<Conn> {
    // The usual case, a backend connected to before, takes no detour through a promise.
    let known = targetsByAddr.get(addr);
    if (known === undefined) {
      known = targets.get(`${addr.hostname} ${addr.port}`);
      if (known !== undefined) targetsByAddr.set(addr, known);
    }
    if (known !== undefined) return connectTo(known, options?.timeoutMs, options);
    return connectFirst(addr, options);
  }

  async function connectFirst(addr: Addr, options: ConnectOptions | undefined): Promise<Conn> {
    const timeoutMs = options?.timeoutMs;
    const found = await targetsOf(addr);
    if (found.length === 1) return connectTo(found[0], timeoutMs, options);
    const started = Date.now();
    let last: unknown;
    // Each address in turn, as the runtime's connect does, within one overall timeout.
    for (const target of found) {
      const left = timeoutMs === undefined ? undefined : timeoutMs - (Date.now() - started);
      if (left !== undefined && left <= 0) break;
      try {
        return await connectTo(target, left, options);
      } catch (err) {
        last = err;
      }
    }
    throw last ?? eventError("TimedOut", `connect timed out after ${timeoutMs} ms`);
  }

  function relay(
    a: Conn,
    b: Conn,
    counters: RelayCounters,
    options?: RelayOptions,
  ): Promise<NetError | undefined> {
    if (!(a instanceof EpollConn) || !(b instanceof EpollConn)) {
      return Promise.resolve(new NetError("Other", "relay of a foreign connection"));
    }
    return new Promise((resolve) => {
      const relay = new Relay(poller, a, b, counters, options, resolve);
      if (a.closed || b.closed) return relay.finish(closedError());
      if (poller.ring !== undefined && a.idle && b.idle) return poller.toRing(relay);
      a.enterEpoll();
      b.enterEpoll();
      poller.startRelay(relay);
    });
  }

  return { listen, connect, relay };
}
