/**
 * {@linkcode RingSys} through Bun's foreign function interface (`bun:ffi`): the system calls
 * by number, through the C library's `syscall`, on x86-64 Linux, as `_uring_deno.ts` makes
 * them for Deno.
 *
 * @module
 */
import { bunBind, bunFfi } from "./_libc_bun.ts";
import {
  MAP_SHARED_POPULATE,
  PROT_READ_WRITE,
  type RingSys,
  SYS_IO_URING_ENTER,
  SYS_IO_URING_REGISTER,
  SYS_IO_URING_SETUP,
  URING_FUNCTIONS,
} from "./_uring.ts";

/** The system calls of a ring, or why this process cannot make them. */
export function bunRingSys(): RingSys | { unavailable: string } {
  // The system call numbers below are x86-64's.
  if (process.arch !== "x64") return { unavailable: "it needs x86-64" };
  if (process.platform !== "linux") {
    return { unavailable: `it needs Linux, not ${process.platform}` };
  }
  const ffi = bunFfi();
  let c: Record<keyof typeof URING_FUNCTIONS, (...args: unknown[]) => unknown>;
  try {
    c = bunBind(ffi, URING_FUNCTIONS);
  } catch (err) {
    return { unavailable: `cannot load libc.so.6: ${(err as Error).message}` };
  }
  const errno = new Int32Array(ffi.toArrayBuffer(c.__errno_location() as number, 0, 4));
  const addressOf = (buf: Uint8Array) => ffi.ptr(buf);
  /** System call `nr` with up to six arguments: its result, or -errno (`syscall` gives -1). */
  const call = (nr: number, a: number, b: number, c3 = 0, d = 0, e = 0, f = 0) => {
    const res = Number(c.syscall(nr, a, b, c3, d, e, f));
    return res === -1 ? -errno[0] : res;
  };
  return {
    setup: (entries, params) => call(SYS_IO_URING_SETUP, entries, addressOf(params)),
    map(fd, bytes, offset) {
      const at = Number(c.mmap(null, bytes, PROT_READ_WRITE, MAP_SHARED_POPULATE, fd, offset));
      // MAP_FAILED is (void *) -1, which comes as no address a process has (below 2^47).
      if (!(at > 0 && at < 2 ** 47)) return undefined;
      return ffi.toArrayBuffer(at, 0, bytes);
    },
    enter: (fd, toSubmit, minComplete, flags, arg = 0, argSize = 0) =>
      call(SYS_IO_URING_ENTER, fd, toSubmit, minComplete, flags, arg, argSize),
    register: (fd, opcode, arg, nrArgs) =>
      call(SYS_IO_URING_REGISTER, fd, opcode, addressOf(arg), nrArgs),
    addressOf,
    close: (fd) => void c.close(fd),
  };
}
