/**
 * The few Bun globals that `bun.ts` uses, declared by hand (cf. hono
 * `src/adapter/deno/deno.d.ts`) so that Deno's type check covers `bun.ts` without
 * `bun-types`. Exported as types, not as globals, so nothing outside `net/` sees `Bun`.
 * What each member does in Bun 1.4.5 was tried on this machine, not only read in Bun's docs,
 * which disagree with each other on `shutdown()`.
 *
 * @module
 */

/** The server that `Bun.serve` returns. */
export interface BunServer {
  readonly hostname: string | undefined;
  readonly port: number | undefined;
  /** Stops listening; with `closeActiveConnections` false it lets requests in flight finish. */
  stop(closeActiveConnections?: boolean): Promise<void>;
}

/** The options of `Bun.serve` that l4chat passes. */
export interface BunServeOptions {
  hostname: string;
  port: number;
  fetch(req: Request): Response | Promise<Response>;
  error(err: Error): Response | Promise<Response>;
}

/**
 * A TCP socket of `Bun.listen` or `Bun.connect`. Bun buffers nothing on its own: `write()`
 * hands bytes straight to the kernel and says how many it took.
 */
export interface BunSocket<Data = unknown> {
  /** Whatever the caller stores for this socket; `undefined` until set. */
  data: Data;
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  /**
   * Sends what the kernel takes of `data` now: the byte count, possibly fewer than given (0
   * when its buffer is full; the `drain` handler runs once there is room again), or -1 when
   * the socket is closed or its write side shut down.
   */
  write(data: Uint8Array): number;
  /** Without an argument, `shutdown(2)` of the write side (FIN); reads continue. */
  shutdown(): void;
  /** Closes both directions at once; the `close` handler runs before this returns. */
  end(): void;
  /** Stops reading from the kernel, so the peer's window closes (backpressure). */
  pause(): void;
  /** Reads again after {@linkcode BunSocket.pause}. */
  resume(): void;
  setNoDelay(noDelay: boolean): boolean;
}

/**
 * Callbacks of a socket, shared by every socket they are given to; Bun passes the socket.
 * Errors do not come through an `error` callback but as `close`'s second argument, a Node-style
 * error with `code` (`ECONNRESET`, `EPIPE`, ...).
 */
export interface BunSocketHandler<Data = unknown> {
  /** `"uint8array"` delivers plain `Uint8Array`s rather than `Buffer`s. */
  binaryType?: "buffer" | "uint8array";
  /** The connection is up (accepted, or connected), before any `data`. */
  open?(socket: BunSocket<Data>): void;
  /** A chunk read from the kernel, up to 512 KiB, freshly allocated: the receiver may keep it. */
  data(socket: BunSocket<Data>, chunk: Uint8Array): void;
  /** The socket can take more after a `write()` took fewer bytes than given; may also run when nothing waits. */
  drain?(socket: BunSocket<Data>): void;
  /**
   * The peer's FIN arrived (with `allowHalfOpen`, the write side stays open). Not called when
   * this side had shut down its write side already: the socket is then just closed.
   */
  end?(socket: BunSocket<Data>): void;
  /** The socket is gone, with `error` when it failed (reset, broken pipe). */
  close?(socket: BunSocket<Data>, error?: Error): void;
  /** An error Bun did not report through `close`. */
  error?(socket: BunSocket<Data>, error: Error): void;
  /** A connect failed (refused, name not found); `close` does not run for it. */
  connectError?(socket: BunSocket<Data>, error: Error): void;
}

/** What `Bun.listen` returns. */
export interface BunTcpListener {
  /** The port bound (the real one when port 0 was asked for). */
  readonly port: number;
  /** Fills `out` with the bound address. */
  getsockname(out: { address?: string; port?: number; family?: string }): void;
  /** Stops accepting and closes the listening socket; accepted sockets stay open. */
  stop(closeActiveConnections?: boolean): void;
}

/** The options of `Bun.listen` that l4chat passes. Throws a Node-style error (`EADDRINUSE`). */
export interface BunListenOptions<Data> {
  hostname: string;
  port: number;
  /** Keep the write side open after the peer's FIN. */
  allowHalfOpen: boolean;
  /** Sets SO_REUSEPORT before binding. */
  reusePort?: boolean;
  socket: BunSocketHandler<Data>;
}

/** The options of `Bun.connect` that l4chat passes. */
export interface BunConnectOptions<Data> {
  hostname: string;
  port: number;
  allowHalfOpen: boolean;
  /** The socket's `data` from the start, before `open`. */
  data?: Data;
  socket: BunSocketHandler<Data>;
}

/** The part of the `Bun` global that l4chat uses. */
export interface BunGlobal {
  /** Bun's version, e.g. `1.4.5`. */
  readonly version: string;
  serve(options: BunServeOptions): BunServer;
  listen<Data>(options: BunListenOptions<Data>): BunTcpListener;
  /**
   * Connects; resolves with the socket once `open` has run, rejects with a Node-style error
   * (`ECONNREFUSED`, `ENOTFOUND`) after `connectError` has run. There is no timeout and no way
   * to abandon the attempt.
   */
  connect<Data>(options: BunConnectOptions<Data>): Promise<BunSocket<Data>>;
}
