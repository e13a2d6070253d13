/**
 * {@linkcode RingSys} through Deno's foreign function interface (`--allow-ffi`): the system
 * calls by number, through the C library's `syscall`, on x86-64 Linux.
 *
 * @module
 */
import { openLibc } from "./_libc_deno.ts";
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
  // `syscall` returns -1 and leaves the reason in errno (of this thread: the ring's one).
  const errno = new Int32Array(Deno.UnsafePointerView.getArrayBuffer(c.__errno_location()!, 4));
  const result = (res: number | bigint) => Number(res) === -1 ? -errno[0] : Number(res);
  const addressOf = (buf: Uint8Array) =>
    Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
  return {
    setup: (entries, params) =>
      result(
        c.syscall(SYS_IO_URING_SETUP, BigInt(entries), BigInt(addressOf(params)), 0n, 0n, 0n, 0n),
      ),
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
      result(
        c.syscall(
          SYS_IO_URING_ENTER,
          BigInt(fd),
          BigInt(toSubmit),
          BigInt(minComplete),
          BigInt(flags),
          0n,
          0n,
        ),
      ),
    register: (fd, opcode, arg, nrArgs) =>
      result(
        c.syscall(
          SYS_IO_URING_REGISTER,
          BigInt(fd),
          BigInt(opcode),
          BigInt(addressOf(arg)),
          BigInt(nrArgs),
          0n,
          0n,
        ),
      ),
    addressOf,
    close: (fd) => void c.close(fd),
  };
}
