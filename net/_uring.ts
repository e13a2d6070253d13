/**
 * An io_uring ring: the submission and completion queues Linux shares with a process, so that
 * one system call (`io_uring_enter`) hands the kernel any number of socket operations and
 * collects what has completed. On the machine l4chat is measured on a system call costs about
 * 1 µs before it does anything; a bare relay on one ring (`bench/reference/uring_relay.ts`) made
 * new connections at 1.22x HAProxy's rate, where the epoll engine, one call per operation, made
 * 0.95x (docs/benchmarks.md). This module is the ring alone, for an engine to build on; how a
 * runtime reaches the system calls and memory it needs is {@linkcode RingSys} (`_uring_deno.ts`,
 * `_uring_bun.ts`).
 *
 * Addresses handed to the kernel stay in use after the call that passes them: they must point
 * into memory that neither moves nor is collected meanwhile. {@linkcode Ring.pin} gives such
 * memory (V8 keeps a typed array of 64 bytes or less inside its heap, where it moves, and frees
 * one nothing references, even while the kernel still writes into it).
 *
 * Needs Linux 6.6 or newer (`IORING_SETUP_NO_SQARRAY`).
 *
 * @module
 */
import type { CFunction } from "./_libc.ts";

/** How a runtime reaches io_uring's system calls and shared memory. */
export interface RingSys {
  /** `io_uring_setup(entries, params)`: the ring's descriptor, or -errno. */
  setup(entries: number, params: Uint8Array): number;
  /** `mmap` of `bytes` of the ring `fd` at `offset`, shared: the memory, or undefined. */
  map(fd: number, bytes: number, offset: number): ArrayBuffer | undefined;
  /**
   * `io_uring_enter(fd, toSubmit, minComplete, flags, arg, argSize)` (`arg` an address, 0 for
   * none): how many were taken, or -errno.
   */
  enter(
    fd: number,
    toSubmit: number,
    minComplete: number,
    flags: number,
    arg?: number,
    argSize?: number,
  ): number;
  /** `io_uring_register(fd, opcode, arg, nrArgs)`: 0 or more, or -errno. */
  register(fd: number, opcode: number, arg: Uint8Array, nrArgs: number): number;
  /** Where `buf`'s bytes are in memory. */
  addressOf(buf: Uint8Array): number;
  close(fd: number): void;
}

/**
 * The C library functions a {@linkcode RingSys} binds: `syscall` (variadic; on x86-64 integer
 * arguments go in the same registers either way) for io_uring's three system calls, and `mmap`.
 */
export const URING_FUNCTIONS = {
  syscall: { params: ["i64", "i64", "i64", "i64", "i64", "i64", "i64"], result: "i64" },
  mmap: { params: ["ptr", "len", "i32", "i32", "i32", "i64"], result: "ptr" },
  close: { params: ["i32"], result: "i32" },
  __errno_location: { params: [], result: "ptr" },
} as const satisfies Record<string, CFunction>;

/** io_uring's system calls on x86-64, and what `map` asks of `mmap`. */
export const SYS_IO_URING_SETUP = 425;
export const SYS_IO_URING_ENTER = 426;
export const SYS_IO_URING_REGISTER = 427;
export const PROT_READ_WRITE = 3;
export const MAP_SHARED_POPULATE = 0x8001;

/** The operations l4chat uses (`enum io_uring_op`). */
export const OP_NOP = 0;
export const OP_POLL_ADD = 6;
export const OP_ACCEPT = 13;
export const OP_ASYNC_CANCEL = 14;
export const OP_CONNECT = 16;
export const OP_CLOSE = 19;
export const OP_SEND = 26;
export const OP_RECV = 27;
export const OP_SHUTDOWN = 34;
export const OP_SOCKET = 45;
export const OP_URING_CMD = 46;
/** `URING_CMD`'s `cmd_op` on a socket: set an option (Linux 6.7+). */
export const SOCKET_SETSOCKOPT = 3;

/** `ioprio` of an accept that goes on accepting (one completion per client). */
export const ACCEPT_MULTISHOT = 1;
/** `ASYNC_CANCEL`'s flags: every entry on the `fd` given (`IORING_ASYNC_CANCEL_ALL | _FD`). */
export const CANCEL_FD_ALL = 3;
/** A completion's flag: more completions will come for the same submission (multishot). */
export const CQE_F_MORE = 1 << 1;
/** A completion's flag: it used a provided buffer, whose id is in the flags' upper 16 bits. */
export const CQE_F_BUFFER = 1;
/** A submission's flag: the kernel picks the buffer from a {@linkcode BufferGroup} when data comes. */
export const SQE_BUFFER_SELECT = 1 << 5;
/**
 * A submission's flag: the next entry starts only once this one has completed in full, and is
 * cancelled ({@linkcode CANCELLED}) if it did not (`IOSQE_IO_LINK`).
 */
export const SQE_LINK = 1 << 2;
/** The result of a receive that found no provided buffer free (`-ENOBUFS`). */
export const NO_BUFFERS = -105;
/** The result of an entry cancelled before it did anything (`-ECANCELED`). */
export const CANCELLED = -125;

const SETUP_CQSIZE = 1 << 3;
const SETUP_COOP_TASKRUN = 1 << 8;
const SETUP_TASKRUN_FLAG = 1 << 9;
const SETUP_SINGLE_ISSUER = 1 << 12;
const SETUP_DEFER_TASKRUN = 1 << 13;
/** `sq_flags`: completions wait to be posted by the next `io_uring_enter`. */
const SQ_TASKRUN = 1 << 2;
/** `cq_flags`: the kernel signals no eventfd while it is set. */
const CQ_EVENTFD_DISABLED = 1;
const REGISTER_EVENTFD = 4;
const SETUP_NO_SQARRAY = 1 << 16;
const ENTER_GETEVENTS = 1;
/** `io_uring_enter`'s `arg` is a `struct io_uring_getevents_arg` (a wait's timeout). */
const ENTER_EXT_ARG = 8;
/** Bytes of `struct io_uring_getevents_arg`, and of the `struct __kernel_timespec` after it. */
const GETEVENTS_ARG_BYTES = 24;
const TIMESPEC_BYTES = 16;
const OFF_SQES = 0x10000000;
/** Bytes of `struct io_uring_params`, and where its two offset structs start. */
const PARAMS_BYTES = 120;
const SQ_OFF = 40;
const CQ_OFF = 80;
const EINTR = 4;
const ETIME = 62;
const TWO_32 = 4294967296;
const REGISTER_PBUF_RING = 22;
const PAGE = 4096;

/** Writes `value` (up to 2^53) as a little-endian u64 into `words` at word `at`. */
function put64(words: Uint32Array, at: number, value: number): void {
  words[at] = value % TWO_32;
  words[at + 1] = Math.floor(value / TWO_32);
}

/** One submission: the fields of `struct io_uring_sqe` that socket operations use. */
export interface Sqe {
  op: number;
  fd: number;
  /** An address: a buffer, a `sockaddr`. */
  addr?: number;
  len?: number;
  /** `msg_flags`, `accept_flags` and the like. */
  opFlags?: number;
  ioprio?: number;
  /** `off`: the address length of a connect, the type of a socket. */
  off?: number;
  /** Comes back with the completion; up to 2^53. */
  userData: number;
  /** `IOSQE_*` flags, such as {@linkcode SQE_BUFFER_SELECT}. */
  sqeFlags?: number;
  /** The {@linkcode BufferGroup} to pick from, with {@linkcode SQE_BUFFER_SELECT}. */
  bufGroup?: number;
  /** A socket command's option: its length and address. */
  optLen?: number;
  optVal?: number;
}

/**
 * Buffers the kernel picks from when data arrives for a receive made with
 * {@linkcode SQE_BUFFER_SELECT} (a provided buffer ring, Linux 5.19+): a receive waiting on an
 * idle socket holds no memory of its own. The completion names the buffer it used
 * ({@linkcode BufferGroup.idOf}); {@linkcode BufferGroup.give} puts it back once its bytes
 * are no longer needed.
 */
export class BufferGroup {
  readonly id: number;
  /** How many buffers, and the bytes of each. */
  readonly count: number;
  readonly size: number;
  readonly #bufs: Uint8Array;
  readonly #bufsAddr: number;
  /** The ring's entries (`struct io_uring_buf`, 16 bytes), as words and as halves. */
  readonly #words: Uint32Array;
  readonly #halves: Uint16Array;
  readonly #mask: number;
  #tail = 0;

  /** Made by {@linkcode Ring.bufferGroup}, which registers `entries` with the kernel. */
  constructor(id: number, count: number, size: number, ring: Ring, entries: Uint8Array) {
    this.id = id;
    this.count = count;
    this.size = size;
    this.#mask = count - 1;
    const bufs = ring.pin(count * size);
    this.#bufs = bufs.buf;
    this.#bufsAddr = bufs.addr;
    this.#words = new Uint32Array(entries.buffer, entries.byteOffset, count * 4);
    this.#halves = new Uint16Array(entries.buffer, entries.byteOffset, count * 8);
    for (let bid = 0; bid < count; bid++) this.#put(bid);
    this.#publish();
  }

  /** The id of the buffer a completion used, from its flags; -1 if it used none. */
  static idOf(flags: number): number {
    return (flags & CQE_F_BUFFER) === 0 ? -1 : flags >>> 16;
  }

  /** The bytes of buffer `bid`. */
  bytes(bid: number, length = this.size): Uint8Array {
    return this.#bufs.subarray(bid * this.size, bid * this.size + length);
  }

  /** Where buffer `bid` is in memory (to send from it). */
  addressOf(bid: number): number {
    return this.#bufsAddr + bid * this.size;
  }

  /** Puts buffer `bid` back for the kernel to pick again. */
  give(bid: number): void {
    this.#put(bid);
    this.#publish();
  }

  #put(bid: number): void {
    // struct io_uring_buf { u64 addr; u32 len; u16 bid; u16 resv; }
    const at = (this.#tail & this.#mask) * 4;
    put64(this.#words, at, this.addressOf(bid));
    this.#words[at + 2] = this.size;
    // Not the whole word: the first entry's `resv` is the ring's tail.
    this.#halves[at * 2 + 6] = bid;
    this.#tail = (this.#tail + 1) & 0xffff;
  }

  #publish(): void {
    // The ring's tail is the first entry's `resv` field.
    Atomics.store(this.#halves, 7, this.#tail);
  }
}

/**
 * An io_uring ring of one thread (`IORING_SETUP_SINGLE_ISSUER`), in one of two ways:
 *
 * - By default, completions are posted at the thread's next entry into the kernel
 *   (`IORING_SETUP_COOP_TASKRUN`) and make {@linkcode Ring.fd} readable. What waits in
 *   {@linkcode Ring.submit} (the benchmark's reference relay) needs no more. A thread that
 *   sleeps elsewhere is not woken to post them: the epoll engine, with the ring's descriptor in
 *   its set and its wait on another thread, once stalled 2.9 s that way (a reply that came 2 s
 *   after its request reached the client at 4.9 s).
 * - `deferred`: completions wait in the kernel until the next {@linkcode Ring.submit}
 *   (`IORING_SETUP_DEFER_TASKRUN`), {@linkcode Ring.due} says when one is worth making, and
 *   {@linkcode Ring.wait} is woken as soon as there is something to post. Some kernels signal
 *   an eventfd given to {@linkcode Ring.notify} then too, whatever the thread is doing, so an
 *   epoll set that holds it wakes for that; others only once they are posted (see there). The
 *   ring's own descriptor never becomes readable then (measured).
 */
export class Ring {
  readonly #sys: RingSys;
  readonly #fd: number;
  readonly #ring: Uint32Array;
  readonly #sqes: Uint32Array;
  readonly #cqes: Int32Array;
  readonly #sqTailAt: number;
  readonly #sqFlagsAt: number;
  readonly #cqFlagsAt: number;
  readonly #deferred: boolean;
  readonly #sqMask: number;
  readonly #sqEntries: number;
  readonly #cqHeadAt: number;
  readonly #cqTailAt: number;
  readonly #cqMask: number;
  /** Memory whose address the kernel may hold: referenced for as long as the ring lives. */
  readonly #pinned: Uint8Array[] = [];
  #sqTail: number;
  /** Queued since the last submission. */
  #queued = 0;
  #closed = false;
  /**
   * Where {@linkcode wait} keeps its `io_uring_getevents_arg` and timeout, once it has waited,
   * and the timeout written there last (in ms).
   */
  #waitArg: { addr: number; words: Uint32Array; ms: number } | undefined;

  /**
   * A ring of `entries` submissions (and four times as many completions), or why there is
   * none here: no io_uring in this kernel, a kernel older than 6.6, or a sandbox (Docker's
   * default seccomp profile forbids io_uring). `deferred`: see {@linkcode Ring}.
   */
  static open(
    sys: RingSys,
    entries: number,
    options: { deferred?: boolean } = {},
  ): Ring | { unavailable: string } {
    const params = new Uint8Array(PARAMS_BYTES);
    const view = new DataView(params.buffer);
    view.setUint32(4, entries * 4, true);
    const taskrun = options.deferred
      ? SETUP_DEFER_TASKRUN | SETUP_TASKRUN_FLAG
      : SETUP_COOP_TASKRUN;
    view.setUint32(8, SETUP_CQSIZE | SETUP_SINGLE_ISSUER | taskrun | SETUP_NO_SQARRAY, true);
    const fd = sys.setup(entries, params);
    if (fd < 0) return { unavailable: `io_uring_setup failed (errno ${-fd})` };
    const sqEntries = view.getUint32(0, true);
    const cqEntries = view.getUint32(4, true);
    const sqOff = (field: number) => view.getUint32(SQ_OFF + field * 4, true);
    const cqOff = (field: number) => view.getUint32(CQ_OFF + field * 4, true);
    // With IORING_FEAT_SINGLE_MMAP (5.4+) both queues' heads and tails share one mapping.
    const ringBytes = Math.max(sqOff(6) + sqEntries * 4, cqOff(5) + cqEntries * 16);
    const ring = sys.map(fd, ringBytes, 0);
    const sqes = sys.map(fd, sqEntries * 64, OFF_SQES);
    if (ring === undefined || sqes === undefined) {
      sys.close(fd);
      return { unavailable: "cannot map the ring's memory" };
    }
    return new Ring(sys, fd, ring, sqes, sqEntries, sqOff, cqOff, cqEntries, options.deferred);
  }

  private constructor(
    sys: RingSys,
    fd: number,
    ring: ArrayBuffer,
    sqes: ArrayBuffer,
    sqEntries: number,
    sqOff: (field: number) => number,
    cqOff: (field: number) => number,
    cqEntries: number,
    deferred = false,
  ) {
    this.#sys = sys;
    this.#deferred = deferred;
    this.#sqFlagsAt = sqOff(4) / 4;
    this.#fd = fd;
    this.#ring = new Uint32Array(ring);
    this.#sqes = new Uint32Array(sqes);
    this.#cqes = new Int32Array(ring, cqOff(5), cqEntries * 4);
    this.#sqEntries = sqEntries;
    this.#sqTailAt = sqOff(1) / 4;
    this.#sqMask = this.#ring[sqOff(2) / 4];
    this.#cqHeadAt = cqOff(0) / 4;
    this.#cqTailAt = cqOff(1) / 4;
    this.#cqFlagsAt = cqOff(6) / 4;
    this.#cqMask = this.#ring[cqOff(2) / 4];
    this.#sqTail = this.#ring[this.#sqTailAt];
  }

  /** Where `buf`'s bytes are in memory; it must stay referenced while the kernel uses them. */
  addressOf(buf: Uint8Array): number {
    return this.#sys.addressOf(buf);
  }

  /**
   * `bytes` of memory that stays where it is for as long as the ring lives, and its address:
   * for buffers and addresses the kernel holds across calls.
   */
  pin(bytes: number): { buf: Uint8Array; addr: number } {
    // Larger than V8 keeps inside its heap, so the bytes are outside it and never move.
    const buf = new Uint8Array(Math.max(bytes, 128));
    this.#pinned.push(buf);
    return { buf: buf.subarray(0, bytes), addr: this.#sys.addressOf(buf) };
  }

  /**
   * Registers `count` buffers of `size` bytes as group `id` (`count` a power of two up to
   * 32768), or says why it could not.
   */
  bufferGroup(id: number, count: number, size: number): BufferGroup | { unavailable: string } {
    // The ring of buffer entries must start on a page.
    const pinned = this.pin(count * 16 + PAGE);
    const skip = (PAGE - (pinned.addr % PAGE)) % PAGE;
    const entries = pinned.buf.subarray(skip, skip + count * 16);
    const entriesAddr = pinned.addr + skip;
    // struct io_uring_buf_reg { u64 ring_addr; u32 ring_entries; u16 bgid; u16 flags; u64 resv[3]; }
    const reg = new Uint32Array(10);
    put64(reg, 0, entriesAddr);
    reg[2] = count;
    reg[3] = id;
    const res = this.#sys.register(this.#fd, REGISTER_PBUF_RING, new Uint8Array(reg.buffer), 1);
    if (res < 0) return { unavailable: `cannot register buffer group ${id} (errno ${-res})` };
    return new BufferGroup(id, count, size, this, entries);
  }

  /** Queues `sqe`; false when the submission queue is full (submit, then queue again). */
  queue(sqe: Sqe): boolean {
    if (this.#queued >= this.#sqEntries) return false;
    const sqes = this.#sqes;
    const at = (this.#sqTail & this.#sqMask) * 16;
    sqes.fill(0, at, at + 16);
    sqes[at] = sqe.op | ((sqe.sqeFlags ?? 0) << 8) | ((sqe.ioprio ?? 0) << 16);
    sqes[at + 1] = sqe.fd;
    put64(sqes, at + 2, sqe.off ?? 0);
    put64(sqes, at + 4, sqe.addr ?? 0);
    sqes[at + 6] = sqe.len ?? 0;
    sqes[at + 7] = sqe.opFlags ?? 0;
    put64(sqes, at + 8, sqe.userData);
    sqes[at + 10] = sqe.bufGroup ?? 0;
    sqes[at + 11] = sqe.optLen ?? 0;
    if (sqe.optVal !== undefined) put64(sqes, at + 12, sqe.optVal);
    this.#sqTail = (this.#sqTail + 1) >>> 0;
    this.#queued++;
    return true;
  }

  /** The ring's descriptor: readable while completions wait (see {@linkcode Ring}). */
  get fd(): number {
    return this.#fd;
  }

  /**
   * Whether completions wait for the next {@linkcode submit} to be posted (a deferred ring),
   * read without a system call.
   */
  get due(): boolean {
    return (Atomics.load(this.#ring, this.#sqFlagsAt) & SQ_TASKRUN) !== 0;
  }

  /**
   * Has the kernel signal eventfd `fd` when completions are ready, or, on a deferred ring,
   * wait to be posted: an epoll set that holds `fd` then wakes for them. 0, or -errno. Not on
   * every kernel: `6.18.44-fc-v1272` (`uname -r` of the benchmark's AMD machine on 2026-12-04)
   * signals it for a deferred ring only as the completions are posted, by this thread's next
   * submission, so the eventfd cannot wake the thread for them; `6.18.44-fc-v1147` (the Intel
   * machine's) did.
   */
  notify(fd: number): number {
    const res = this.#sys.register(
      this.#fd,
      REGISTER_EVENTFD,
      new Uint8Array(new Int32Array([fd]).buffer),
      1,
    );
    return res < 0 ? res : 0;
  }

  /**
   * Whether the eventfd given to {@linkcode notify} is signalled (it is, until told otherwise).
   * A thread that is about to take its completions anyway can spare the kernel the signals (a
   * few % of an `l4chat lb`'s CPU under load): it turns them off while it runs, and on before
   * it waits, then looks at {@linkcode due} and {@linkcode ready} once more, as a signal that
   * came in between was not sent. Written and read without a system call.
   */
  signals(on: boolean): void {
    Atomics.store(this.#ring, this.#cqFlagsAt, on ? 0 : CQ_EVENTFD_DISABLED);
  }

  /** Whether completions were posted that {@linkcode complete} has not taken yet. */
  get ready(): boolean {
    return this.#ring[this.#cqHeadAt] !== Atomics.load(this.#ring, this.#cqTailAt);
  }

  /** Submissions queued and not yet handed to the kernel. */
  get queued(): number {
    return this.#queued;
  }

  /** Submissions that can be queued before the queue is full. */
  get room(): number {
    return this.#sqEntries - this.#queued;
  }

  /**
   * Hands the kernel what was queued and waits until at least `minComplete` completions are
   * ready (0: does not wait). Returns 0, or -errno (an interrupted wait is not an error).
   */
  submit(minComplete: number): number {
    // A deferred ring posts its completions only when asked for events.
    const getEvents = minComplete > 0 || this.#deferred;
    return this.#enter(minComplete, getEvents ? ENTER_GETEVENTS : 0, 0);
  }

  /** `io_uring_enter` with what is queued, and `arg` (a getevents arg, or 0): 0, or -errno. */
  #enter(minComplete: number, flags: number, arg: number): number {
    Atomics.store(this.#ring, this.#sqTailAt, this.#sqTail);
    const queued = this.#queued;
    const argSize = arg === 0 ? 0 : GETEVENTS_ARG_BYTES;
    const res = this.#sys.enter(this.#fd, queued, minComplete, flags, arg, argSize);
    if (res < 0) return res === -EINTR || res === -ETIME ? 0 : res;
    this.#queued -= Math.min(res, queued);
    return 0;
  }

  /**
   * Hands the kernel what was queued and waits until a completion is ready, for `timeoutMs` at
   * most. On a deferred ring this is the wait the kernel wakes for completions to post, where
   * an eventfd may not be signalled until they are posted (see {@linkcode Ring.notify}).
   * Returns 0 (a wait that ran out or was interrupted too), or -errno.
   */
  wait(timeoutMs: number): number {
    if (this.#waitArg === undefined) {
      const arg = this.pin(GETEVENTS_ARG_BYTES + TIMESPEC_BYTES);
      const words = new Uint32Array(arg.buf.buffer, arg.buf.byteOffset, arg.buf.length / 4);
      // sigmask 0 and its size 0: the thread's own; `ts` (word 4) points just past the struct.
      put64(words, 4, arg.addr + GETEVENTS_ARG_BYTES);
      this.#waitArg = { addr: arg.addr, words, ms: -1 };
    }
    const arg = this.#waitArg;
    const ms = Math.max(0, timeoutMs);
    // The loop waits for one of two timeouts: written again only when it changes.
    if (ms !== arg.ms) {
      arg.ms = ms;
      const at = GETEVENTS_ARG_BYTES / 4;
      put64(arg.words, at, Math.floor(ms / 1000));
      put64(arg.words, at + 2, Math.round((ms % 1000) * 1e6));
    }
    return this.#enter(1, ENTER_GETEVENTS | ENTER_EXT_ARG, arg.addr);
  }

  /** Calls `each` with every completion ready, in order; returns how many. */
  complete(each: (userData: number, res: number, flags: number) => void): number {
    const ring = this.#ring;
    const cqes = this.#cqes;
    const mask = this.#cqMask;
    let head = ring[this.#cqHeadAt];
    const tail = Atomics.load(ring, this.#cqTailAt);
    let count = 0;
    while (head !== tail) {
      const at = (head & mask) * 4;
      head = (head + 1) >>> 0;
      // Released before the callback, which may submit and so make room for more.
      Atomics.store(ring, this.#cqHeadAt, head);
      count++;
      each((cqes[at] >>> 0) + (cqes[at + 1] >>> 0) * TWO_32, cqes[at + 2], cqes[at + 3]);
    }
    return count;
  }

  /**
   * Closes the ring; operations in flight are cancelled by the kernel. Its memory stays mapped
   * (a few pages), so that views still held never point at nothing.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#sys.close(this.#fd);
  }
}
