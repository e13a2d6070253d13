/**
 * {@linkcode Libc} through Bun's foreign function interface (`bun:ffi`), so that Bun runs the
 * epoll engine (`epoll.ts`) as Deno does. Lengths are `usize`, which Bun takes as a plain
 * number. `bun:ffi` has no call on another thread: {@linkcode Libc.epollWait} is made by a Web
 * Worker (`_bun_wait_worker.ts`) that blocks in `epoll_wait` on the same epoll set and hands
 * the events back through shared memory.
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

/** What `bun:ffi` gives: declared by hand, as `_bun.d.ts` does for the rest of Bun. */
interface BunFfi {
  dlopen(
    path: string,
    symbols: Record<string, { args: readonly string[]; returns: string }>,
  ): { symbols: Record<string, (...args: unknown[]) => unknown> };
  toArrayBuffer(pointer: number, offset: number, length: number): ArrayBuffer;
  ptr(view: Uint8Array): number;
}

/**
 * Each {@linkcode CType} in `bun:ffi`'s words: `ptr` takes a typed array or an address as a
 * number, `usize` a plain number; a 64-bit result comes as a number where it fits.
 */
const BUN_PARAMS: Record<CType, string> = {
  i32: "i32",
  u32: "u32",
  i64: "i64",
  buf: "ptr",
  len: "usize",
  ptr: "ptr",
};
const BUN_RESULTS: Record<CType, string> = { ...BUN_PARAMS, i64: "i64_fast" };

/** `functions` bound from `libc.so.6` with `bun:ffi`. */
export function bunBind<F extends Record<string, CFunction>>(
  ffi: BunFfi,
  functions: F,
): Record<keyof F, (...args: unknown[]) => unknown> {
  const symbols = Object.fromEntries(
    Object.entries(functions).map((
      [name, { params, result }],
    ) => [name, { args: params.map((t) => BUN_PARAMS[t]), returns: BUN_RESULTS[result] }]),
  );
  return ffi.dlopen("libc.so.6", symbols).symbols as Record<
    keyof F,
    (...args: unknown[]) => unknown
  >;
}

const PAGE = 4096;
const MADV_DONTNEED = 4;

/** `bun:ffi`, loaded the way only Bun understands, so that Deno's checks never resolve it. */
export function bunFfi(): BunFfi {
  return (import.meta as unknown as { require(id: string): BunFfi }).require("bun:ffi");
}

/** What the wait worker is told, once: the epoll set, and where to put what it finds. */
export interface WaitSetup {
  epfd: number;
  events: SharedArrayBuffer;
}

/** Then, per wait: how many events at most, and for how long (-1: until one comes). */
export interface WaitRequest {
  maxEvents: number;
  timeoutMs: number;
}

/** A Bun Worker, which can stop keeping the process alive. */
type RefWorker = Worker & { ref(): void; unref(): void };

/**
 * The C library of this process through `bun:ffi`, or why the epoll engine cannot run here:
 * not Linux, or no `libc.so.6`.
 */
export function bunLibc(): Libc | { unavailable: string } {
  if (process.platform !== "linux") {
    return { unavailable: `it needs Linux, not ${process.platform}` };
  }
  let ffi: BunFfi;
  let c: Record<keyof typeof LIBC_FUNCTIONS, (...args: unknown[]) => unknown>;
  try {
    ffi = bunFfi();
    c = bunBind(ffi, LIBC_FUNCTIONS);
  } catch (err) {
    return { unavailable: `cannot load libc.so.6: ${(err as Error).message}` };
  }
  const errno = new Int32Array(ffi.toArrayBuffer(c.__errno_location() as number, 0, 4));
  const packed = process.arch === "x64";
  const eventSize = packed ? 12 : 16;
  const calls = libcCalls(c as unknown as BoundLibc, (n) => n);
  return {
    ...calls,
    discard: (buf) => {
      const start = ffi.ptr(buf);
      const first = Math.ceil(start / PAGE) * PAGE;
      const end = Math.floor((start + buf.byteLength) / PAGE) * PAGE;
      if (end > first) c.madvise(first, end - first, MADV_DONTNEED);
    },
    epollWait: waitOnWorker(eventSize, calls.epollPoll),
    errno: () => errno[0],
    runtimeTurn: () => new Promise<void>((resolve) => setImmediate(resolve)),
    eventSize,
    eventDataOffset: packed ? 4 : 8,
  };
}

/**
 * The wait worker's module: beside this one, or in a binary of `bun build --compile` (where
 * each entry point's modules are bundled into one, under the binary's root, `/$bunfs/root/`
 * on Linux, the only system the engine runs on) at `net/` under that root.
 */
const WAIT_WORKER_URL = (() => {
  const here = import.meta.url;
  const root = here.indexOf("/$bunfs/root/");
  return root < 0
    ? new URL("./_bun_wait_worker.ts", here).href
    : `${here.slice(0, root)}/$bunfs/root/net/_bun_wait_worker.ts`;
})();

/** How often a loop whose wait worker could not start looks for events instead. */
const FALLBACK_POLL_MS = 10;

/**
 * {@linkcode Libc.epollWait} on a Web Worker, started at the first wait of an epoll set (one
 * per set, each blocked in `epoll_wait` while its set's loop is parked). Bun lets I/O and
 * timers run meanwhile: a Bun immediate polls them (measured: one immediate per socket event,
 * where Deno needs a socket of its own, `_libc_deno.ts`). Should the worker fail to start, the
 * wait looks for events every {@linkcode FALLBACK_POLL_MS} instead, and says so once.
 */
function waitOnWorker(
  eventSize: number,
  poll: Libc["epollPoll"],
): Libc["epollWait"] {
  const waiters = new Map<number, { worker: RefWorker; shared: Uint8Array }>();
  let broken = false;
  const pollLater = async (epfd: number, events: Uint8Array, maxEvents: number) => {
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, FALLBACK_POLL_MS));
      const n = poll(epfd, events, maxEvents, 0);
      if (n !== 0) return n;
    }
  };
  return (epfd, events, maxEvents, timeoutMs) => {
    if (broken) return pollLater(epfd, events, maxEvents);
    let waiter = waiters.get(epfd);
    if (waiter === undefined) {
      const shared = new Uint8Array(new SharedArrayBuffer(events.byteLength));
      const worker = new Worker(WAIT_WORKER_URL) as RefWorker;
      const setup: WaitSetup = { epfd, events: shared.buffer as SharedArrayBuffer };
      worker.postMessage(setup);
      waiter = { worker, shared };
      waiters.set(epfd, waiter);
    }
    const { worker, shared } = waiter;
    // Waiting, the worker keeps the process alive, as a socket being waited on would; idle, not.
    worker.ref();
    return new Promise<number>((resolve) => {
      worker.onmessage = (event: MessageEvent<number>) => {
        worker.unref();
        const n = event.data;
        if (n > 0) events.set(shared.subarray(0, n * eventSize));
        resolve(n);
      };
      worker.onerror = (event: ErrorEvent) => {
        event.preventDefault();
        worker.terminate();
        waiters.delete(epfd);
        if (!broken) {
          broken = true;
          console.error(
            `l4chat: the epoll engine's wait worker failed (${event.message}): ` +
              `looking for events every ${FALLBACK_POLL_MS} ms instead`,
          );
        }
        resolve(pollLater(epfd, events, maxEvents));
      };
      const wait: WaitRequest = {
        maxEvents: Math.min(maxEvents, shared.byteLength / eventSize),
        timeoutMs,
      };
      worker.postMessage(wait);
    });
  };
}
