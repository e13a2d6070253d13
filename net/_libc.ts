/**
 * The part of Linux's C library that the epoll engine (`epoll.ts`) calls, as a plain interface
 * so the engine does not depend on how a runtime reaches native code (`_libc_deno.ts` binds it
 * with `Deno.dlopen`), with the two things the engine needs of the runtime's event loop: a
 * wait on another thread ({@linkcode Libc.epollWait}) and a turn of the loop that polls the
 * runtime's own I/O ({@linkcode Libc.runtimeTurn}). Also the constants, the errno vocabulary
 * and the `sockaddr` codec the engine needs. Every C call returns what the C function returns
 * (`-1` on failure, with the reason in {@linkcode Libc.errno}).
 *
 * @module
 */
import { type Addr, NetError, type NetErrorCode } from "./mod.ts";
import { formatIp, parseIp } from "./proxy_protocol.ts";

/** The system calls of the epoll engine. Lengths are byte counts from the start of a buffer. */
export interface Libc {
  socket(domain: number, type: number, protocol: number): number;
  /** Binds `fd` to the encoded `sockaddr` in `addr`. */
  bind(fd: number, addr: Uint8Array): number;
  listen(fd: number, backlog: number): number;
  /** `addrLen` holds one u32: the size of `addr` in, the address's size out. */
  accept4(fd: number, addr: Uint8Array, addrLen: Uint8Array, flags: number): number;
  connect(fd: number, addr: Uint8Array): number;
  /** `recv(fd, buf, len, 0)`. */
  recv(fd: number, buf: Uint8Array, len: number): number;
  /** `send(fd, buf, len, MSG_NOSIGNAL)`: a closed peer is an error, never a signal. */
  send(fd: number, buf: Uint8Array, len: number): number;
  shutdown(fd: number, how: number): number;
  close(fd: number): number;
  setsockopt(fd: number, level: number, name: number, value: Uint8Array): number;
  /** `valueLen` holds one u32, as `addrLen` of {@linkcode Libc.accept4}. */
  getsockopt(
    fd: number,
    level: number,
    name: number,
    value: Uint8Array,
    valueLen: Uint8Array,
  ): number;
  getsockname(fd: number, addr: Uint8Array, addrLen: Uint8Array): number;
  /** `ioctl(fd, request, arg)` with a pointer argument. */
  ioctl(fd: number, request: number, arg: Uint8Array): number;
  /**
   * Gives the whole pages inside `buf` back to the kernel (`madvise(MADV_DONTNEED)`): they no
   * longer count in the process's memory, and read as zeros when next touched.
   */
  discard(buf: Uint8Array): void;
  eventfd(initval: number, flags: number): number;
  read(fd: number, buf: Uint8Array, len: number): number;
  write(fd: number, buf: Uint8Array, len: number): number;
  epollCreate1(flags: number): number;
  /** `event` is one encoded `struct epoll_event` (see {@linkcode Libc.eventSize}). */
  epollCtl(epfd: number, op: number, fd: number, event: Uint8Array): number;
  /**
   * `epoll_wait` on another thread, so that the runtime's own event loop goes on meanwhile.
   * Resolves to the number of events written into `events`, or -1.
   */
  epollWait(
    epfd: number,
    events: Uint8Array,
    maxEvents: number,
    timeoutMs: number,
  ): Promise<number>;
  /**
   * `epoll_wait` on this thread, which it blocks: what is ready now (`timeoutMs` 0) or within
   * `timeoutMs`.
   */
  epollPoll(epfd: number, events: Uint8Array, maxEvents: number, timeoutMs: number): number;
  /**
   * Resolves once the runtime's event loop has turned, polling its own I/O and timers on the
   * way: what the engine awaits, now and then, so the runtime's own work goes on.
   */
  runtimeTurn(): Promise<void>;
  /** The calling thread's `errno`, read right after the call that failed. */
  errno(): number;
  /** Bytes of one `struct epoll_event` (12 on x86_64, where it is packed; 16 elsewhere). */
  readonly eventSize: number;
  /** Offset of its 64-bit `data` field. */
  readonly eventDataOffset: number;
}

/**
 * How a C function the engine binds takes each parameter and gives its result, in words each
 * runtime's foreign function interface translates (`_libc_deno.ts`, `_libc_bun.ts`): `buf`
 * is a typed array passed as a pointer to its bytes, `len` a `size_t`, `ptr` an address.
 */
export type CType = "i32" | "u32" | "i64" | "buf" | "len" | "ptr";

/** A C function's parameters and result. */
export interface CFunction {
  readonly params: readonly CType[];
  readonly result: CType;
}

/** The C library functions of {@linkcode Libc}, as each runtime binds them. */
export const LIBC_FUNCTIONS = {
  socket: { params: ["i32", "i32", "i32"], result: "i32" },
  bind: { params: ["i32", "buf", "u32"], result: "i32" },
  listen: { params: ["i32", "i32"], result: "i32" },
  accept4: { params: ["i32", "buf", "buf", "i32"], result: "i32" },
  connect: { params: ["i32", "buf", "u32"], result: "i32" },
  recv: { params: ["i32", "buf", "len", "i32"], result: "i32" },
  send: { params: ["i32", "buf", "len", "i32"], result: "i32" },
  shutdown: { params: ["i32", "i32"], result: "i32" },
  close: { params: ["i32"], result: "i32" },
  setsockopt: { params: ["i32", "i32", "i32", "buf", "u32"], result: "i32" },
  getsockopt: { params: ["i32", "i32", "i32", "buf", "buf"], result: "i32" },
  getsockname: { params: ["i32", "buf", "buf"], result: "i32" },
  ioctl: { params: ["i32", "len", "buf"], result: "i32" },
  madvise: { params: ["ptr", "len", "i32"], result: "i32" },
  eventfd: { params: ["u32", "i32"], result: "i32" },
  read: { params: ["i32", "buf", "len"], result: "i32" },
  write: { params: ["i32", "buf", "len"], result: "i32" },
  epoll_create1: { params: ["i32"], result: "i32" },
  epoll_ctl: { params: ["i32", "i32", "i32", "buf"], result: "i32" },
  epoll_wait: { params: ["i32", "buf", "i32", "i32"], result: "i32" },
  __errno_location: { params: [], result: "ptr" },
} as const satisfies Record<string, CFunction>;

/**
 * The functions of {@linkcode LIBC_FUNCTIONS} as a runtime bound them: each returns the C
 * function's `int` (or, for `__errno_location`, the runtime's pointer value).
 */
export type BoundLibc = Record<keyof typeof LIBC_FUNCTIONS, (...args: never[]) => unknown>;

/** The parts of {@linkcode Libc} each runtime adds to {@linkcode libcCalls}. */
export type LibcRuntimeParts = Pick<
  Libc,
  "discard" | "epollWait" | "runtimeTurn" | "errno" | "eventSize" | "eventDataOffset"
>;

/**
 * The system calls of {@linkcode Libc} over the functions a runtime bound, `len` giving what
 * that runtime's binding takes for a `len` parameter.
 */
export function libcCalls(
  bound: BoundLibc,
  len: (n: number) => number | bigint,
): Omit<Libc, keyof LibcRuntimeParts> {
  // Every function of the table returns an `int`, passed on as it is.
  const c = bound as unknown as Record<keyof BoundLibc, (...args: unknown[]) => number>;
  return {
    socket: (domain, type, protocol) => c.socket(domain, type, protocol),
    bind: (fd, addr) => c.bind(fd, addr, addr.length),
    listen: (fd, backlog) => c.listen(fd, backlog),
    accept4: (fd, addr, addrLen, flags) => c.accept4(fd, addr, addrLen, flags),
    connect: (fd, addr) => c.connect(fd, addr, addr.length),
    recv: (fd, buf, n) => c.recv(fd, buf, len(n), 0),
    send: (fd, buf, n) => c.send(fd, buf, len(n), MSG_NOSIGNAL),
    shutdown: (fd, how) => c.shutdown(fd, how),
    close: (fd) => c.close(fd),
    setsockopt: (fd, level, name, value) => c.setsockopt(fd, level, name, value, value.length),
    getsockopt: (fd, level, name, value, valueLen) =>
      c.getsockopt(fd, level, name, value, valueLen),
    getsockname: (fd, addr, addrLen) => c.getsockname(fd, addr, addrLen),
    ioctl: (fd, request, arg) => c.ioctl(fd, len(request), arg),
    eventfd: (initval, flags) => c.eventfd(initval, flags),
    read: (fd, buf, n) => c.read(fd, buf, len(n)),
    write: (fd, buf, n) => c.write(fd, buf, len(n)),
    epollCreate1: (flags) => c.epoll_create1(flags),
    epollCtl: (epfd, op, fd, event) => c.epoll_ctl(epfd, op, fd, event),
    epollPoll: (epfd, events, maxEvents, timeoutMs) =>
      c.epoll_wait(epfd, events, maxEvents, timeoutMs),
  };
}

export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_REUSEADDR = 2;
export const SO_ERROR = 4;
export const SO_SNDBUF = 7;
export const SO_REUSEPORT = 15;
export const IPPROTO_TCP = 6;
export const TCP_NODELAY = 1;
/** `ioctl` request: bytes in a socket's send queue not sent yet (held back by the peer's window). */
export const SIOCOUTQNSD = 0x894b;
/** `ioctl` request: bytes waiting in a socket's receive queue. */
export const FIONREAD = 0x541b;
export const TCP_QUICKACK = 12;
export const SHUT_WR = 1;
export const SHUT_RDWR = 2;
/** `send`'s flag: a closed peer is an error, never a signal. */
export const MSG_NOSIGNAL = 0x4000;
/** `send` flag: a stream socket's send completes only once every byte is taken (io_uring). */
export const MSG_WAITALL = 0x100;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CTL_MOD = 3;
export const EPOLLIN = 0x1;
export const EPOLLOUT = 0x4;
export const EPOLLERR = 0x8;
export const EPOLLHUP = 0x10;
export const EPOLLRDHUP = 0x2000;
export const EPOLLET = 0x80000000;

export const EINTR = 4;
export const EAGAIN = 11;
export const EINPROGRESS = 115;
export const EMFILE = 24;
export const ENFILE = 23;
export const ENOBUFS = 105;
export const ENOMEM = 12;
export const ECONNABORTED = 103;

/** errno values l4chat tells apart: the code of the one vocabulary, and Deno's words. */
const ERRNO: Record<number, [NetErrorCode, string]> = {
  1: ["PermissionDenied", "operation not permitted"],
  9: ["Closed", "bad file descriptor"],
  13: ["PermissionDenied", "permission denied"],
  23: ["Other", "too many open files in system"],
  24: ["Other", "too many open files"],
  32: ["BrokenPipe", "broken pipe"],
  98: ["AddrInUse", "address already in use"],
  99: ["AddrNotAvailable", "cannot assign requested address"],
  101: ["Other", "network is unreachable"],
  103: ["ConnectionReset", "software caused connection abort"],
  104: ["ConnectionReset", "connection reset by peer"],
  105: ["Other", "no buffer space available"],
  107: ["Other", "transport endpoint is not connected"],
  110: ["TimedOut", "connection timed out"],
  111: ["ConnectionRefused", "connection refused"],
  113: ["Other", "no route to host"],
};

/**
 * A {@linkcode NetError} without a stack trace: a network event, not a bug, so where in
 * l4chat it was noticed says nothing, and capturing it costs more than the system call did.
 */
export function eventError(code: NetErrorCode, message: string): NetError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new NetError(code, message);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** The {@linkcode NetError} for `errno`, in the words Deno uses for the same failure. */
export function errnoError(errno: number, action?: string): NetError {
  const [code, words] = ERRNO[errno] ?? ["Other", `os error ${errno}`];
  return eventError(code, action === undefined ? words : `${action}: ${words}`);
}

/** Largest encoded address: `struct sockaddr_in6` (28 bytes), rounded up. */
export const SOCKADDR_MAX = 32;

/**
 * Encodes `addr` as a `struct sockaddr_in` or `sockaddr_in6`; undefined when its hostname is
 * not an IP literal.
 */
export function encodeSockaddr(addr: Addr): Uint8Array | undefined {
  const ip = parseIp(addr.hostname);
  if (ip === undefined) return undefined;
  const out = new Uint8Array(ip.length === 4 ? 16 : 28);
  const view = new DataView(out.buffer);
  view.setUint16(0, ip.length === 4 ? AF_INET : AF_INET6, true);
  view.setUint16(2, addr.port, false);
  out.set(ip, ip.length === 4 ? 4 : 8);
  return out;
}

/** The family of an encoded `sockaddr`, little-endian as {@linkcode encodeSockaddr} writes it. */
export function sockaddrFamily(bytes: Uint8Array): number {
  return bytes[0] | (bytes[1] << 8);
}

/** IPv4 addresses written out, by their 32 bits; past {@linkcode IPV4_NAMES_MAX} it starts again. */
const ipv4Names = new Map<number, string>();
const IPV4_NAMES_MAX = 4096;

/**
 * Decodes a `struct sockaddr_in` or `sockaddr_in6`. An IPv4-mapped IPv6 address is written
 * `::ffff:a.b.c.d`, as Deno and Node write it. An IPv4 address seen before gives the same
 * string again: no text is made per accepted client, and the string's hash, which the
 * per-address limits look it up by, is already known.
 */
export function decodeSockaddr(bytes: Uint8Array): Addr {
  const family = sockaddrFamily(bytes);
  const port = (bytes[2] << 8) | bytes[3];
  if (family === AF_INET) {
    const key = (bytes[4] * 0x1000000) + ((bytes[5] << 16) | (bytes[6] << 8) | bytes[7]);
    let hostname = ipv4Names.get(key);
    if (hostname === undefined) {
      if (ipv4Names.size >= IPV4_NAMES_MAX) ipv4Names.clear();
      hostname = `${bytes[4]}.${bytes[5]}.${bytes[6]}.${bytes[7]}`;
      ipv4Names.set(key, hostname);
    }
    return { hostname, port };
  }
  if (family !== AF_INET6) return { hostname: "", port: 0 };
  const ip = bytes.subarray(8, 24);
  const mapped = ip.subarray(0, 10).every((b) => b === 0) && ip[10] === 0xff && ip[11] === 0xff;
  return {
    hostname: mapped ? `::ffff:${ip.subarray(12).join(".")}` : formatIp(ip),
    port,
  };
}
