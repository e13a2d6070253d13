/**
 * {@linkcode Libc} through Deno's foreign function interface (`Deno.dlopen`, which needs
 * `--allow-ffi`). Lengths are passed as `u64` from a `BigInt`: Deno's fast call path takes a
 * BigInt for a 64-bit parameter, where a plain number would go through its slow path (about
 * 300 ns more per call, measured here). Making that BigInt is a call into V8's runtime (about
 * 30 ns), so the lengths the relays use over and over are made once ({@linkcode lengthOf}).
 * Results are read as `i32`: every result l4chat asks for fits, and -1 stays -1.
 *
 * @module
 */
import { type Libc, MSG_NOSIGNAL } from "./_libc.ts";

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  recv: { parameters: ["i32", "buffer", "u64", "i32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "u64", "i32"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  madvise: { parameters: ["pointer", "u64", "i32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "u64"], result: "i32" },
  write: { parameters: ["i32", "buffer", "u64"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: {
    parameters: ["i32", "buffer", "i32", "i32"],
    result: "i32",
    nonblocking: true,
  },
  epoll_poll: { name: "epoll_wait", parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

/** The page size `madvise` works in (x86-64 and arm64 Linux as Deno builds for them). */
const PAGE = 4096n;
const MADV_DONTNEED = 4;

/** Lengths up to this many bytes are kept as BigInts once made: what small writes pass. */
const SMALL_LENGTHS = 4096;
const smallLengths: bigint[] = new Array(SMALL_LENGTHS + 1);
/** The last larger length made, and its BigInt: the read buffer's size, most of the time. */
let lastLength = -1;
let lastBig = 0n;

/** `len` as the BigInt a `u64` parameter takes, made once for the lengths that recur. */
function lengthOf(len: number): bigint {
  if (len <= SMALL_LENGTHS) return smallLengths[len] ??= BigInt(len);
  if (len !== lastLength) {
    lastBig = BigInt(len);
    lastLength = len;
  }
  return lastBig;
}

/**
 * `symbols` of this process's C library, or why they cannot be had: not Linux, no
 * `--allow-ffi`, or no `libc.so.6`.
 */
export function openLibc<S extends Deno.ForeignLibraryInterface>(
  symbols: S,
): Deno.DynamicLibrary<S> | { unavailable: string } {
  if (Deno.build.os !== "linux") return { unavailable: `it needs Linux, not ${Deno.build.os}` };
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    return { unavailable: "it needs --allow-ffi" };
  }
  try {
    return Deno.dlopen("libc.so.6", symbols);
  } catch (err) {
    return { unavailable: `cannot load libc.so.6: ${(err as Error).message}` };
  }
}

/**
 * The calling thread's `errno`, read through a typed array over it: a plain load, where
 * `UnsafePointerView.getInt32` is a call. `location` is what `__errno_location()` returned on
 * this thread; a module that uses it runs on one thread (a Worker loads its own copy).
 */
export function errnoCell(location: Deno.PointerValue): Int32Array {
  return new Int32Array(Deno.UnsafePointerView.getArrayBuffer(location!, 4));
}

/**
 * The C library of this process, or why the epoll engine cannot run here (see
 * {@linkcode openLibc}).
 */
export function denoLibc(): Libc | { unavailable: string } {
  const lib = openLibc(SYMBOLS);
  if ("unavailable" in lib) return lib;
  const c = lib.symbols;
  const errno = errnoCell(c.__errno_location());
  const packed = Deno.build.arch === "x86_64";
  return {
    socket: (domain, type, protocol) => c.socket(domain, type, protocol),
    bind: (fd, addr) => c.bind(fd, addr, addr.length),
    listen: (fd, backlog) => c.listen(fd, backlog),
    accept4: (fd, addr, addrLen, flags) => c.accept4(fd, addr, addrLen, flags),
    connect: (fd, addr) => c.connect(fd, addr, addr.length),
    recv: (fd, buf, len) => c.recv(fd, buf, lengthOf(len), 0),
    send: (fd, buf, len) => c.send(fd, buf, lengthOf(len), MSG_NOSIGNAL),
    shutdown: (fd, how) => c.shutdown(fd, how),
    close: (fd) => c.close(fd),
    setsockopt: (fd, level, name, value) => c.setsockopt(fd, level, name, value, value.length),
    getsockopt: (fd, level, name, value, valueLen) =>
      c.getsockopt(fd, level, name, value, valueLen),
    getsockname: (fd, addr, addrLen) => c.getsockname(fd, addr, addrLen),
    ioctl: (fd, request, arg) => c.ioctl(fd, BigInt(request), arg),
    discard: (buf) => {
      const start = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
      const first = (start + PAGE - 1n) & ~(PAGE - 1n);
      const end = (start + BigInt(buf.byteLength)) & ~(PAGE - 1n);
      if (end > first) c.madvise(Deno.UnsafePointer.create(first), end - first, MADV_DONTNEED);
    },
    eventfd: (initval, flags) => c.eventfd(initval, flags),
    read: (fd, buf, len) => c.read(fd, buf, lengthOf(len)),
    write: (fd, buf, len) => c.write(fd, buf, lengthOf(len)),
    epollCreate1: (flags) => c.epoll_create1(flags),
    epollCtl: (epfd, op, fd, event) => c.epoll_ctl(epfd, op, fd, event),
    epollWait: (epfd, events, maxEvents, timeoutMs) =>
      c.epoll_wait(epfd, events, maxEvents, timeoutMs),
    epollPoll: (epfd, events, maxEvents, timeoutMs) =>
      c.epoll_poll(epfd, events, maxEvents, timeoutMs),
    errno: () => errno[0],
    runtimeTurn: makeRuntimeTurn(),
    eventSize: packed ? 12 : 16,
    eventDataOffset: packed ? 4 : 8,
  };
}

/**
 * A turn of Deno's event loop in which it polls its own I/O and timers, and runs what was ready.
 * `setImmediate` alone is not one: the loop (tokio's, underneath) polls its sockets and timers
 * when it has nothing else to run, or once in a few dozen turns, so a loop kept busy by
 * immediates starves them (measured: 29 immediates for one read of a socket that was ready). A
 * byte sent to itself through a loopback TCP pair, and read back, makes one: the read completes
 * only once the loop has polled, and all else that was ready is seen in the same poll. Callers
 * at the same time share the turn. Without the pair (no `--allow-net` for 127.0.0.1), an
 * immediate.
 */
function makeRuntimeTurn(): () => Promise<void> {
  let pair: { a: Deno.TcpConn; b: Deno.TcpConn } | null | undefined;
  let turning: Promise<void> | undefined;
  const one = new Uint8Array(1);
  const sink = new Uint8Array(16);
  const turn = async () => {
    try {
      pair ??= await wakePair();
      if (pair === null) return await new Promise<void>((resolve) => setImmediate(resolve));
      const { a, b } = pair;
      const wrote = a.write(one);
      if ((await b.read(sink)) === null) throw new Error("closed");
      await wrote;
    } catch {
      // The pair broke (it never should): immediates from now on.
      pair?.a.close();
      pair?.b.close();
      pair = null;
    } finally {
      turning = undefined;
    }
  };
  return () => turning ??= turn();
}

/** Two ends of a loopback TCP connection of the runtime's own, or null when it cannot make one. */
async function wakePair(): Promise<{ a: Deno.TcpConn; b: Deno.TcpConn } | null> {
  // Asked, Deno would prompt on a terminal: only with the permission already granted.
  if (Deno.permissions.querySync({ name: "net", host: "127.0.0.1" }).state !== "granted") {
    return null;
  }
  let listener: Deno.TcpListener | undefined;
  try {
    listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const accepted = listener.accept();
    const a = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    const b = await accepted;
    a.setNoDelay(true);
    return { a, b };
  } catch {
    return null;
  } finally {
    listener?.close();
  }
}
