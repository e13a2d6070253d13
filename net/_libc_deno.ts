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
import {
  type BoundLibc,
  type CFunction,
  type CType,
  type Libc,
  LIBC_FUNCTIONS,
  libcCalls,
} from "./_libc.ts";

/** Each {@linkcode CType} in Deno's words. */
const DENO_TYPES: Record<CType, Deno.NativeType> = {
  i32: "i32",
  u32: "u32",
  i64: "i64",
  buf: "buffer",
  len: "u64",
  ptr: "pointer",
};

/** `functions` as `Deno.dlopen` takes them. */
export function denoSymbols<F extends Record<string, CFunction>>(
  functions: F,
): { [K in keyof F]: Deno.ForeignFunction } {
  return Object.fromEntries(
    Object.entries(functions).map((
      [name, { params, result }],
    ) => [name, { parameters: params.map((t) => DENO_TYPES[t]), result: DENO_TYPES[result] }]),
  ) as unknown as { [K in keyof F]: Deno.ForeignFunction };
}

const SYMBOLS = {
  ...denoSymbols(LIBC_FUNCTIONS),
  // The wait on another thread (see Libc.epollWait).
  epoll_wait_elsewhere: {
    name: "epoll_wait",
    parameters: ["i32", "buffer", "i32", "i32"],
    result: "i32",
    nonblocking: true,
  },
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
  const errno = errnoCell(c.__errno_location() as Deno.PointerValue);
  const wait = c.epoll_wait_elsewhere as (...args: unknown[]) => Promise<number>;
  const packed = Deno.build.arch === "x86_64";
  return {
    ...libcCalls(c as unknown as BoundLibc, lengthOf),
    discard: (buf) => {
      const start = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
      const first = (start + PAGE - 1n) & ~(PAGE - 1n);
      const end = (start + BigInt(buf.byteLength)) & ~(PAGE - 1n);
      if (end > first) c.madvise(Deno.UnsafePointer.create(first), end - first, MADV_DONTNEED);
    },
    epollWait: (epfd, events, maxEvents, timeoutMs) => wait(epfd, events, maxEvents, timeoutMs),
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
