/**
 * {@linkcode RingSys} through Deno's foreign function interface (`--allow-ffi`): the system
 * calls by number, through the C library's `syscall`, on x86-64 Linux.
 *
 * @module
 */
import { errnoCell, openLibc } from "./_libc_deno.ts";
import type { RingSys } from "./_uring.ts";

const SYS_IO_URING_SETUP = 425n;
const SYS_IO_URING_ENTER = 426n;
const SYS_IO_URING_REGISTER = 427n;
const PROT_READ_WRITE = 3;
const MAP_SHARED_POPULATE = 0x8001;
const MAP_FAILED = 0xffffffffffffffffn;

const SYMBOLS = {
  // `syscall` is variadic; on x86-64 integer arguments go in the same registers either way.
  syscall: { parameters: ["i64", "i64", "i64", "i64", "i64", "i64", "i64"], result: "i64" },
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  close: { parameters: ["i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

/** The system calls of a ring, or why this process cannot make them. */
export function denoRingSys(): RingSys | { unavailable: string } {
  // The system call numbers below are x86-64's.
  if (Deno.build.arch !== "x86_64") return { unavailable: "it needs x86-64" };
  const lib = openLibc(SYMBOLS);
  if ("unavailable" in lib) return lib;
  const c = lib.symbols;
  const errno = errnoCell(c.__errno_location());
  const addressOf = (buf: Uint8Array) =>
    Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
  /** System call `nr` with up to four arguments: its result, or -errno (`syscall` gives -1). */
  const call = (nr: bigint, a: number, b: number, c3 = 0, d = 0) => {
    const res = Number(c.syscall(nr, BigInt(a), BigInt(b), BigInt(c3), BigInt(d), 0n, 0n));
    return res === -1 ? -errno[0] : res;
  };
  return {
    setup: (entries, params) => call(SYS_IO_URING_SETUP, entries, addressOf(params)),
    map(fd, bytes, offset) {
      const ptr = c.mmap(
        null,
        BigInt(bytes),
        PROT_READ_WRITE,
        MAP_SHARED_POPULATE,
        fd,
        BigInt(offset),
      );
      if (ptr === null || BigInt(Deno.UnsafePointer.value(ptr)) === MAP_FAILED) return undefined;
      return Deno.UnsafePointerView.getArrayBuffer(ptr, bytes);
    },
    enter: (fd, toSubmit, minComplete, flags) =>
      call(SYS_IO_URING_ENTER, fd, toSubmit, minComplete, flags),
    register: (fd, opcode, arg, nrArgs) =>
      call(SYS_IO_URING_REGISTER, fd, opcode, addressOf(arg), nrArgs),
    addressOf,
    close: (fd) => void c.close(fd),
  };
}
