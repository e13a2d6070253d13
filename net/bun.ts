/**
 * The {@linkcode Net} of Bun, on `node:net` for TCP and `Bun.serve` for HTTP.
 *
 * `node:net` rather than `Bun.listen` / `Bun.connect`: Bun implements it natively on the same
 * sockets, and it already gives what the contract asks for: `allowHalfOpen` with `end()` for
 * half-close, `pause()` / `resume()` and the `drain` event for backpressure, `setNoDelay`,
 * and errors with Node's `code` (`ECONNREFUSED`, ...). With `Bun.connect` each of these
 * would be hand-made from `write()`'s partial counts and the `drain` callback.
 *
 * @module
 */
import { createServer, type Server, Socket } from "node:net";
import type { BunGlobal } from "./_bun.d.ts";
import {
  type Addr,
  type Conn,
  type Direction,
  type HttpServer,
  type Listener,
  type Net,
  NetError,
  type NetErrorCode,
  type RelayCounters,
  type RelayOptions,
  type RelayResult,
} from "./mod.ts";
import { RELAY_BUFFER_MAX } from "./_buffer.ts";
import { resolveAll } from "./_resolve.ts";

const NODE_ERROR_CODES: Record<string, NetErrorCode> = {
  ECONNREFUSED: "ConnectionRefused",
  ECONNRESET: "ConnectionReset",
  ECONNABORTED: "ConnectionReset",
  EPIPE: "BrokenPipe",
  ETIMEDOUT: "TimedOut",
  EADDRINUSE: "AddrInUse",
  EADDRNOTAVAIL: "AddrNotAvailable",
  ENOTFOUND: "NotFound",
  EAI_AGAIN: "NotFound",
  EAI_NONAME: "NotFound",
  EACCES: "PermissionDenied",
  EPERM: "PermissionDenied",
  EBADF: "Closed",
  ERR_SOCKET_CLOSED: "Closed",
  ERR_STREAM_DESTROYED: "Closed",
  ERR_STREAM_WRITE_AFTER_END: "Closed",
};

/** The words Deno's errors use for the common failures, so both runtimes log alike. */
const MESSAGES: Partial<Record<NetErrorCode, string>> = {
  ConnectionRefused: "connection refused",
  ConnectionReset: "connection reset by peer",
  BrokenPipe: "broken pipe",
  AddrInUse: "address already in use",
  AddrNotAvailable: "cannot assign requested address",
};

/** Maps whatever Bun threw or emitted to a {@linkcode NetError}. */
function toNetError(err: unknown): NetError {
  if (err instanceof NetError) return err;
  if (err instanceof Error) {
    const code = NODE_ERROR_CODES[(err as { code?: string }).code ?? ""] ?? "Other";
    return new NetError(code, MESSAGES[code] ?? err.message.toLowerCase(), { cause: err });
  }
  return new NetError("Other", String(err));
}

/** Read queue size (bytes) past which the socket is paused until `read()` catches up. */
const READ_HIGH_WATER = RELAY_BUFFER_MAX;

/**
 * A `node:net` socket behind the pull-based {@linkcode Conn}. Incoming chunks queue up until
 * read; past {@linkcode READ_HIGH_WATER} bytes the socket is paused, so a slow reader stops
 * the kernel's receive window and so the writer.
 */
class BunConn implements Conn {
  readonly socket: Socket;
  readonly localAddr: Addr;
  readonly remoteAddr: Addr;
  #chunks: Uint8Array[] = [];
  #queued = 0;
  #eof = false;
  #error: NetError | undefined;
  #closed = false;
  #wake: (() => void) | undefined;
  /** Writes waiting for `drain`: settled with false when the connection closes. */
  #writers = new Set<(drained: boolean) => void>();
  /** Set while {@linkcode relay} owns this socket: chunks go straight to it, unqueued. */
  #sink: Sink | undefined;
  /** Set by {@linkcode relay}: told once of any failure, even after the read side ended. */
  onFail: ((err: NetError) => void) | undefined;

  constructor(socket: Socket) {
    this.socket = socket;
    this.localAddr = { hostname: socket.localAddress ?? "", port: socket.localPort ?? 0 };
    this.remoteAddr = { hostname: socket.remoteAddress ?? "", port: socket.remotePort ?? 0 };
    socket.setNoDelay(true);
    socket.on("data", (chunk: Uint8Array) => {
      if (this.#sink !== undefined) {
        this.#sink.data(chunk);
        return;
      }
      this.#chunks.push(chunk);
      this.#queued += chunk.length;
      if (this.#queued >= READ_HIGH_WATER) socket.pause();
      this.#notify();
    });
    socket.on("end", () => {
      this.#eof = true;
      this.#notify();
    });
    socket.on("error", (err: Error) => {
      this.#error ??= toNetError(err);
      this.#notify();
    });
    socket.on("close", () => {
      // Closed without end of stream or error: by us, or torn down under us.
      if (!this.#eof) this.#error ??= new NetError("Closed", "connection closed");
      this.#notify();
    });
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
    const onFail = this.onFail;
    if (onFail !== undefined && this.#error !== undefined) {
      this.onFail = undefined;
      onFail(this.#error);
    }
    const sink = this.#sink;
    if (sink === undefined) return;
    // As readChunk(): closed here is never a clean end; otherwise end of stream comes first.
    if (this.#closed || (this.#error !== undefined && !this.#eof)) {
      this.#sink = undefined;
      sink.error(this.#error ?? new NetError("Closed", "connection closed"));
    } else if (this.#eof) {
      this.#sink = undefined;
      sink.end();
    }
  }

  /**
   * Hands every chunk from now on to `sink` as it arrives, after those already queued, then
   * `sink.end()` at end of stream or `sink.error()` on failure. For {@linkcode relay} only.
   */
  drainTo(sink: Sink): void {
    for (const chunk of this.#chunks.splice(0)) sink.data(chunk);
    this.#queued = 0;
    if (this.socket.isPaused()) this.socket.resume();
    this.#sink = sink;
    this.#notify();
  }

  /** The next queued chunk as it arrived, or null at end of stream. One reader at a time. */
  async readChunk(): Promise<Uint8Array | null> {
    while (true) {
      const chunk = this.#chunks.shift();
      if (chunk !== undefined) {
        this.#queued -= chunk.length;
        if (this.#queued < READ_HIGH_WATER && this.socket.isPaused()) this.socket.resume();
        return chunk;
      }
      // Closed here: whatever the runtime reports afterwards, this side did not end cleanly.
      if (this.#closed) throw this.#error ?? new NetError("Closed", "connection closed");
      if (this.#eof) return null;
      if (this.#error !== undefined) throw this.#error;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }

  /** Puts back the unread tail of a chunk, to be read first. */
  #unshift(rest: Uint8Array): void {
    this.#chunks.unshift(rest);
    this.#queued += rest.length;
  }

  async read(buf: Uint8Array): Promise<number | null> {
    const chunk = await this.readChunk();
    if (chunk === null) return null;
    const n = Math.min(chunk.length, buf.length);
    buf.set(chunk.subarray(0, n));
    if (n < chunk.length) this.#unshift(chunk.subarray(n));
    return n;
  }

  /**
   * Writes `data` without waiting when the socket takes it; when its buffer is full, waits
   * for `drain` (backpressure). Rejects with the socket's error if it fails first.
   */
  write(data: Uint8Array): Promise<void> {
    if (this.#error !== undefined) return Promise.reject(this.#error);
    if (this.socket.write(data)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const settle = (drained: boolean) => {
        this.#writers.delete(settle);
        this.socket.off("drain", onDrain);
        this.socket.off("close", onClose);
        if (drained) resolve();
        else reject(this.#error ?? new NetError("Closed", "connection closed"));
      };
      const onDrain = () => settle(true);
      const onClose = () => settle(false);
      this.#writers.add(settle);
      this.socket.on("drain", onDrain);
      this.socket.on("close", onClose);
    });
  }

  async writeAll(data: Uint8Array): Promise<void> {
    // The socket keeps `data` until it is sent; the caller may reuse its buffer at once.
    await this.write(data.slice());
  }

  closeWrite(): Promise<void> {
    if (!this.socket.destroyed && !this.socket.writableEnded) this.socket.end();
    return Promise.resolve();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // Wake a pending read and fail pending writes now, rather than trust that the runtime
    // emits "close" for a socket destroyed here.
    this.#error ??= new NetError("Closed", "connection closed");
    this.socket.destroy();
    this.#notify();
    for (const settle of [...this.#writers]) settle(false);
  }
}

class BunListener implements Listener {
  readonly addr: Addr;
  #server: Server;
  #pending: BunConn[] = [];
  #closed = false;
  #wake: (() => void) | undefined;

  constructor(server: Server) {
    this.#server = server;
    const bound = server.address();
    this.addr = typeof bound === "object" && bound !== null
      ? { hostname: bound.address, port: bound.port }
      : { hostname: "", port: 0 };
    server.on("connection", (socket: Socket) => {
      if (this.#closed) {
        socket.destroy();
        return;
      }
      this.#pending.push(new BunConn(socket));
      this.#notify();
    });
    // Accept errors (out of file descriptors and the like) must not crash the process.
    server.on("error", () => {});
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Conn> {
    while (true) {
      const conn = this.#pending.shift();
      if (conn !== undefined) {
        yield conn;
        continue;
      }
      if (this.#closed) return;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#server.close();
    // Accepted but never taken: nobody else owns these.
    for (const conn of this.#pending.splice(0)) conn.close();
    this.#notify();
  }
}

/** Where a relayed socket's chunks go (see {@linkcode BunConn.drainTo}). */
interface Sink {
  data(chunk: Uint8Array): void;
  end(): void;
  error(err: NetError): void;
}

/**
 * Copies `src` to `dst` until end of stream, then half-closes `dst`. Push-based, as Node's
 * `pipe`: each chunk is written as it arrives, with no promise or buffer per chunk; when
 * `dst` cannot take more, `src` is paused until `dst` drains.
 */
function pump(
  src: BunConn,
  dst: BunConn,
  counters: RelayCounters,
  direction: Direction,
  options: RelayOptions | undefined,
): Promise<void> {
  const key = direction === "up" ? "bytesUp" : "bytesDown";
  const onChunk = options?.onChunk;
  const resume = () => src.socket.resume();
  return new Promise((resolve, reject) => {
    src.drainTo({
      data(chunk) {
        counters[key] += chunk.length;
        if (onChunk !== undefined) onChunk(direction, chunk.length);
        if (!dst.socket.write(chunk)) {
          src.socket.pause();
          dst.socket.once("drain", resume);
        }
      },
      end() {
        dst.closeWrite();
        options?.onEnd?.(direction);
        resolve();
      },
      error: reject,
    });
  });
}

function relay(
  a: Conn,
  b: Conn,
  counters: RelayCounters,
  options?: RelayOptions,
): Promise<RelayResult> {
  const ca = a as BunConn;
  const cb = b as BunConn;
  let error: NetError | undefined;
  const fail = (err: unknown) => {
    // The first failure wins; closing both sides ends the other direction too.
    if (error === undefined) error = toNetError(err);
    a.close();
    b.close();
  };
  // A write that fails shows up as an error on the written socket, whose own read side may
  // have ended already.
  ca.onFail = fail;
  cb.onFail = fail;
  return Promise.all([
    pump(ca, cb, counters, "up", options).catch(fail),
    pump(cb, ca, counters, "down", options).catch(fail),
  ]).then(() => {
    ca.onFail = undefined;
    cb.onFail = undefined;
    return error === undefined ? {} : { error };
  });
}

function connect(addr: Addr, options?: { timeoutMs?: number }): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const socket = new Socket({ allowHalfOpen: true });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const settle = (err?: unknown) => {
      clearTimeout(timer);
      socket.off("connect", onConnect);
      socket.off("error", settle);
      if (err === undefined) {
        resolve(new BunConn(socket));
      } else {
        socket.destroy();
        reject(toNetError(err));
      }
    };
    const onConnect = () => settle();
    socket.once("connect", onConnect);
    socket.once("error", settle);
    const timeoutMs = options?.timeoutMs;
    if (timeoutMs !== undefined) {
      timer = setTimeout(
        () => settle(new NetError("TimedOut", `connect timed out after ${timeoutMs} ms`)),
        timeoutMs,
      );
    }
    socket.connect({ host: addr.hostname, port: addr.port });
  });
}

function listen(addr: Addr): Promise<Listener> {
  return new Promise((resolve, reject) => {
    const server = createServer({ allowHalfOpen: true });
    const onError = (err: Error) => {
      server.close();
      reject(toNetError(err));
    };
    server.once("error", onError);
    server.listen({ host: addr.hostname, port: addr.port }, () => {
      server.off("error", onError);
      resolve(new BunListener(server));
    });
  });
}

function bunGlobal(): BunGlobal {
  return (globalThis as unknown as { Bun: BunGlobal }).Bun;
}

function serveHttp(
  addr: Addr,
  handler: (req: Request) => Promise<Response>,
): Promise<HttpServer> {
  try {
    const server = bunGlobal().serve({
      hostname: addr.hostname,
      port: addr.port,
      fetch: handler,
      error: () => new Response("internal error", { status: 500 }),
    });
    return Promise.resolve({
      addr: { hostname: server.hostname ?? addr.hostname, port: server.port ?? addr.port },
      shutdown: () => server.stop(),
    });
  } catch (err) {
    return Promise.reject(toNetError(err));
  }
}

/** The {@linkcode Net} of Bun: `node:net` sockets and `Bun.serve`. */
export function bunNet(): Net {
  return {
    runtime: `bun ${bunGlobal().version}`,
    io: "runtime",
    listen,
    connect,
    relay,
    resolve: resolveAll,
    serveHttp,
  };
}
