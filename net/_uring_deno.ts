/**
 * {@linkcode RingSys} through Deno's foreign function interface (`--allow-ffi`): the system
 * calls by number, through the C library's `syscall`, on x86-64 Linux.
 *
 * @module
 */
import { denoSymbols, errnoCell, openLibc } from "./_libc_deno.ts";
import {
  MAP_SHARED_POPULATE,
  PROT_READ_WRITE,
  type RingSys,
  SYS_IO_URING_ENTER,
  SYS_IO_URING_REGISTER,
  SYS_IO_URING_SETUP,
  URING_FUNCTIONS,
} from "./_uring.ts";

const MAP_FAILED = 0xffffffffffffffffn;

/** The system calls of a ring, or why this process cannot make them. */
export function denoRingSys(): RingSys | { unavailable: string } {
  // The system call numbers below are x86-64's.
  if (Deno.build.arch !== "x86_64") return { unavailable: "it needs x86-64" };
  const lib = openLibc(denoSymbols(URING_FUNCTIONS));
  if ("unavailable" in lib) return lib;
  const c = lib.symbols;
  const errno = errnoCell(c.__errno_location() as Deno.PointerValue);
  const addressOf = (buf: Uint8Array) =>
    Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
  /** System call `nr` with up to six arguments: its result, or -errno (`syscall` gives -1). */
  const call = (nr: number, a: number, b: number, c3 = 0, d = 0, e = 0, f = 0) => {
    const res = Number(
      c.syscall(
        BigInt(nr),
        BigInt(a),
        BigInt(b),
        BigInt(c3),
        BigInt(d),
        BigInt(e),
        BigInt(f),
      ) as bigint,
    );
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
      ) as Deno.PointerValue;
      if (ptr === null || BigInt(Deno.UnsafePointer.value(ptr)) === MAP_FAILED) return undefined;
      return Deno.UnsafePointerView.getArrayBuffer(ptr, bytes);
    },
    enter: (fd, toSubmit, minComplete, flags, arg = 0, argSize = 0) =>
      call(SYS_IO_URING_ENTER, fd, toSubmit, minComplete, flags, arg, argSize),
    register: (fd, opcode, arg, nrArgs) =>
      call(SYS_IO_URING_REGISTER, fd, opcode, addressOf(arg), nrArgs),
    addressOf,
    close: (fd) => void c.close(fd),
  };
}
