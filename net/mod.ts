/**
 * The runtime seam: the only module family in l4chat that touches sockets.
 *
 * Shared code declares what it needs of the network as {@linkcode Net}; each runtime implements
 * it (`deno.ts`, `bun.ts`) and the rest of l4chat never imports an implementation. `main.ts`
 * calls {@linkcode loadNet} once and passes the result down. Every implementation passes the
 * contract in `_contract.ts` (`deno_test.ts` runs it under Deno, `bun_test.ts` under Bun).
 *
 * @example Listen, connect and echo one chunk
 * ```ts ignore
 * import { loadNet } from "./mod.ts";
 * const net = await loadNet();
 * const listener = await net.listen({ hostname: "127.0.0.1", port: 0 });
 * const client = await net.connect(listener.addr, { timeoutMs: 1000 });
 * ```
 *
 * @module
 */

/** A TCP endpoint. `hostname` is an IP literal (without brackets) or a host name. */
export interface Addr {
  hostname: string;
  port: number;
}

/** A connected TCP socket. Owned by whoever received it: they must call `close()`. */
export interface Conn {
  /** This side's address. */
  readonly localAddr: Addr;
  /** The peer's address. */
  readonly remoteAddr: Addr;
  /** Reads into `buf`; resolves to the byte count, or `null` at end of stream. */
  read(buf: Uint8Array): Promise<number | null>;
  /**
   * Writes all of `data`, waiting while the peer is slow (backpressure). Returns
   * {@linkcode WRITTEN} itself when the socket took all of it at once (where the sockets can
   * tell), so that a caller can go on without waiting for a promise to settle.
   */
  writeAll(data: Uint8Array): Promise<void>;
  /** Shuts down the write side (TCP half-close); reads continue. Never throws. */
  closeWrite(): Promise<void>;
  /** Closes both directions. Idempotent, never throws. */
  close(): void;
}

/**
 * What {@linkcode Conn.writeAll} returns when the socket took everything at once: settled,
 * allocated once. Compare by identity; any other promise may still be pending.
 */
export const WRITTEN: Promise<void> = Promise.resolve();

/** Options of {@linkcode Net.listen}. */
export interface ListenOptions {
  /**
   * Sets `SO_REUSEPORT` (Linux): several listeners (one per worker) share the port and the
   * kernel spreads new connections over them.
   */
  reusePort?: boolean;
}

/** How {@linkcode Net.connect} connects. */
export interface ConnectOptions {
  /** Fails with `TimedOut` after this many ms; no limit without it. */
  timeoutMs?: number;
  /**
   * Hold the handshake's last ACK back and send it with the first bytes written, or when a
   * relay of this connection starts with nothing to send, or at the first read, whichever
   * comes first (HAProxy's `option tcp-smart-connect`). The server then learns of the
   * connection and its first bytes at once, and is woken once for both. For a connection
   * written or relayed at once: a server that speaks first is otherwise kept waiting, at most
   * for the kernel's delayed-ACK time (200 ms). Where the sockets cannot do it, it is ignored.
   */
  ackWithData?: boolean;
  /**
   * With `ackWithData`: how long, in ms, a relay that starts with nothing to send keeps the ACK
   * back for the client's first bytes to carry it, while the sockets have other work; it goes
   * at once whenever they would otherwise wait. 0 (the default): it goes when the relay starts.
   * A server that speaks first hears of the connection up to this much later under load.
   */
  ackWaitMs?: number;
}

/** Accepts connections until closed. */
export interface Listener extends AsyncIterable<Conn> {
  /** The bound address, with the real port when port 0 was asked for. */
  readonly addr: Addr;
  /** Stops accepting; the iteration ends. Idempotent. */
  close(): void;
}

/**
 * Byte counters that {@linkcode Net.relay} updates in place while it copies. `a` is the
 * downstream side (the client), `b` the upstream side (the backend).
 */
export interface RelayCounters {
  /** Bytes copied from `a` to `b`. */
  bytesUp: number;
  /** Bytes copied from `b` to `a`. */
  bytesDown: number;
}

/** One direction of a relay: `up` is `a` to `b`, `down` is `b` to `a`. */
export type Direction = "up" | "down";

/** Options of {@linkcode Net.relay}. */
export interface RelayOptions {
  /** Called after each chunk is written; only pass it when it is needed (debug logging). */
  onChunk?: (direction: Direction, bytes: number) => void;
  /**
   * Called once per direction when it has finished cleanly: its source reached end of stream
   * and the other side's write half was shut down, or, when both directions end together, is
   * about to be closed. Not called for a direction ended by error.
   */
  onEnd?: (direction: Direction) => void;
  /**
   * How long, in ms, the backend's end of stream waits to be passed on to the client, for the
   * client to close first, as an HTTP client does once it has read a `Connection: close` reply:
   * the relay then closes both sides with no shutdown, and the client, not this process, keeps
   * the TIME_WAIT. A client that waits for the end sees it this much later (and up to 1 ms more). 0 (the
   * default): it goes at once. Where the sockets cannot do it, it is ignored.
   */
  finWaitMs?: number;
}

/** A running HTTP server. */
export interface HttpServer {
  readonly addr: Addr;
  /** Stops the server; resolves when it has finished. */
  shutdown(): Promise<void>;
}

/** What l4chat needs of the network. Every implementation passes `net/_contract.ts`. */
export interface Net {
  /** The runtime's name, for `--version` and logs. */
  readonly runtime: string;
  /**
   * The sockets in use: the epoll engine with relays on io_uring, the epoll engine alone, or
   * the runtime's own (see {@linkcode IoMode}).
   */
  readonly io: "uring" | "epoll" | "runtime";
  /** Binds a TCP listener. Rejects with {@linkcode NetError} (`AddrInUse`, ...). */
  listen(addr: Addr, options?: ListenOptions): Promise<Listener>;
  /**
   * Connects with TCP_NODELAY set. Rejects with {@linkcode NetError}: `ConnectionRefused`,
   * `TimedOut` after `timeoutMs`, `NotFound` when the name does not resolve.
   */
  connect(addr: Addr, options?: ConnectOptions): Promise<Conn>;
  /**
   * Copies bytes both ways between `a` and `b` until both directions reach end of stream.
   * When one side ends its stream, the other side's write half is shut down (half-close is
   * carried through); when the second ends, both connections are closed (the close is that
   * side's end of stream). An error on either side closes both at once. Updates `counters`
   * in place. Resolves with the first error seen on either side if one ended it early, with
   * undefined otherwise (a value that is not an object, so that settling the promise looks
   * up no `then`). Never rejects; closes both connections however it ends.
   */
  relay(
    a: Conn,
    b: Conn,
    counters: RelayCounters,
    options?: RelayOptions,
  ): Promise<NetError | undefined>;
  /** Resolves `hostname` to every address it has (IP literals resolve to themselves). */
  resolve(hostname: string): Promise<string[]>;
  /** Serves HTTP on `addr` with `handler`. */
  serveHttp(addr: Addr, handler: (req: Request) => Promise<Response>): Promise<HttpServer>;
}

/** The one vocabulary for network failures, whatever the runtime reported. */
export type NetErrorCode =
  | "ConnectionRefused"
  | "ConnectionReset"
  | "BrokenPipe"
  | "TimedOut"
  | "AddrInUse"
  | "AddrNotAvailable"
  | "NotFound"
  | "PermissionDenied"
  | "Closed"
  | "Other";

/** A network failure with a runtime-independent `code`. */
export class NetError extends Error {
  /** What went wrong, in l4chat's vocabulary. */
  readonly code: NetErrorCode;

  constructor(code: NetErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "NetError";
    this.code = code;
  }
}

/** Formats an address as `ip:port`, with brackets around IPv6 literals. */
export function formatAddr(addr: Addr): string {
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}

/**
 * Which sockets l4chat uses. `epoll`: the engine of `epoll.ts` (Linux; Deno with
 * `--allow-ffi`, or Bun); `uring`: that engine with its relays on an io_uring ring (also Linux
 * 6.6+ on x86-64, where io_uring is allowed); `runtime`: the runtime's own; `auto`: the first of
 * `uring`, `epoll` and `runtime` that can run.
 */
export type IoMode = "auto" | "uring" | "epoll" | "runtime";

/** The values of {@linkcode IoMode}, for `--io`. */
export const IO_MODES: readonly IoMode[] = ["auto", "uring", "epoll", "runtime"];

/** Options of {@linkcode loadNet}. */
export interface LoadNetOptions {
  /** Default `auto`. */
  io?: IoMode;
}

/**
 * Loads the {@linkcode Net} of the runtime l4chat runs on. Called once, by `main.ts` (and by
 * each worker of `lb --workers`). The only place in l4chat that asks which runtime it is on.
 * Rejects with {@linkcode NetError} when `io` names an engine that cannot run here.
 */
export async function loadNet(options: LoadNetOptions = {}): Promise<Net> {
  const io = options.io ?? "auto";
  if ("Bun" in globalThis) {
    const { bunNet } = await import("./bun.ts");
    return bunNet({ io });
  }
  const { denoNet } = await import("./deno.ts");
  return denoNet({ io });
}
