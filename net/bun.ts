/**
 * The {@linkcode Net} of Bun, on `Bun.listen` / `Bun.connect` for TCP and `Bun.serve` for HTTP.
 *
 * Not `node:net`: there every socket is a full `stream.Duplex` in JavaScript over Bun's native
 * socket. On this machine `lb` on `node:net` held 13.8 KB of RSS per idle proxied connection at
 * 2,000 and 10.1 KB at 9,900; on these sockets 8.2 KB and 4.3 KB (`deno task bench`). Here the
 * relay is push-based: Bun hands each chunk it reads (up to 512 KiB) to the socket's `data`
 * handler, which writes it to the other socket at once; nothing per chunk allocates a promise.
 * Backpressure and half-close are made by hand in `_bun_conn.ts`, from `write()`'s partial
 * counts, `drain`, `pause()` / `resume()` and `shutdown()`.
 *
 * @module
 */
import type { BunGlobal, BunSocket, BunSocketHandler, BunTcpListener } from "./_bun.d.ts";
import { BunConn, toNetError } from "./_bun_conn.ts";
import {
  type Addr,
  type Conn,
  type ConnectOptions,
  type HttpServer,
  type IoMode,
  type Listener,
  type ListenOptions,
  type Net,
  NetError,
  type RelayCounters,
  type RelayOptions,
} from "./mod.ts";
import { bunLibc } from "./_libc_bun.ts";
import { runtimeNet } from "./epoll.ts";
import { bunRingSys } from "./_uring_bun.ts";

function bunGlobal(): BunGlobal {
  return (globalThis as unknown as { Bun: BunGlobal }).Bun;
}

class BunListener implements Listener {
  readonly addr: Addr;
  #server: BunTcpListener;
  #pending: BunConn[] = [];
  #closed = false;
  #waiter: ((result: IteratorResult<Conn>) => void) | undefined;

  constructor(addr: Addr, options: ListenOptions | undefined) {
    this.#server = bunGlobal().listen<BunConn>({
      hostname: addr.hostname,
      port: addr.port,
      allowHalfOpen: true,
      reusePort: options?.reusePort,
      socket: BunConn.handler((socket) => this.#accept(socket)),
    });
    const bound: { address?: string; port?: number } = {};
    this.#server.getsockname(bound);
    this.addr = { hostname: bound.address ?? addr.hostname, port: bound.port ?? this.#server.port };
  }

  #accept(socket: BunSocket<BunConn>): void {
    const conn = new BunConn(socket);
    if (this.#closed) {
      conn.close();
      return;
    }
    const waiter = this.#waiter;
    if (waiter === undefined) {
      this.#pending.push(conn);
    } else {
      this.#waiter = undefined;
      waiter({ value: conn, done: false });
    }
  }

  /** One iteration at a time, as `for await` does; a promise only when nothing is pending. */
  #next(): Promise<IteratorResult<Conn>> {
    const conn = this.#pending.shift();
    if (conn !== undefined) return Promise.resolve({ value: conn, done: false });
    if (this.#closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => this.#waiter = resolve);
  }

  [Symbol.asyncIterator](): AsyncIterator<Conn> {
    return {
      next: () => this.#next(),
      return: () => Promise.resolve({ value: undefined, done: true }),
    };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // Stops accepting; the connections already handed out stay open, their owners close them.
    this.#server.stop();
    // Accepted but never taken: nobody else owns these.
    for (const conn of this.#pending.splice(0)) conn.close();
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.({ value: undefined, done: true });
  }
}

/**
 * Binds a TCP listener, as {@linkcode Net.listen}; with `reusePort`, sets SO_REUSEPORT first.
 * Rejects with {@linkcode NetError} (`AddrInUse`, ...).
 */
function listen(addr: Addr, options?: ListenOptions): Promise<Listener> {
  try {
    return Promise.resolve(new BunListener(addr, options));
  } catch (err) {
    return Promise.reject(toNetError(err));
  }
}

/** A connect in progress: the `data` of its socket until `open` replaces it with the BunConn. */
class ConnectAttempt {
  readonly promise: Promise<Conn>;
  resolve!: (conn: Conn) => void;
  reject!: (err: NetError) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
  timedOut = false;

  constructor() {
    this.promise = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
}

function connectTimedOut(attempt: ConnectAttempt, timeoutMs: number): void {
  // Bun cannot abandon a connect: if it completes later, `open` closes the socket.
  attempt.timedOut = true;
  attempt.reject(new NetError("TimedOut", `connect timed out after ${timeoutMs} ms`));
}

/** Every connecting socket's handlers: shared, the attempt rides in the socket's `data`. */
const CONNECT_HANDLER: BunSocketHandler<BunConn> = {
  ...BunConn.handler((socket) => {
    const attempt = socket.data as unknown as ConnectAttempt;
    const conn = new BunConn(socket);
    clearTimeout(attempt.timer);
    if (attempt.timedOut) conn.close();
    else attempt.resolve(conn);
  }),
  connectError: (socket, err) => {
    const attempt = socket.data as unknown as ConnectAttempt;
    clearTimeout(attempt.timer);
    if (!attempt.timedOut) attempt.reject(toNetError(err));
  },
};

/** Bun.connect's own promise: its outcome reaches the attempt through the handlers. */
function ignore(): void {}

function connect(addr: Addr, options?: ConnectOptions): Promise<Conn> {
  const attempt = new ConnectAttempt();
  const timeoutMs = options?.timeoutMs;
  if (timeoutMs !== undefined) {
    attempt.timer = setTimeout(connectTimedOut, timeoutMs, attempt, timeoutMs);
  }
  try {
    bunGlobal().connect<BunConn>({
      hostname: addr.hostname,
      port: addr.port,
      allowHalfOpen: true,
      data: attempt as unknown as BunConn,
      socket: CONNECT_HANDLER,
    }).catch(ignore);
  } catch (err) {
    // Arguments Bun refuses at once (a port out of range, say).
    clearTimeout(attempt.timer);
    attempt.reject(toNetError(err));
  }
  return attempt.promise;
}

function relay(
  a: Conn,
  b: Conn,
  counters: RelayCounters,
  options?: RelayOptions,
): Promise<NetError | undefined> {
  return BunConn.relay(a as BunConn, b as BunConn, counters, options);
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

/**
 * The {@linkcode Net} of Bun. TCP goes through the epoll engine (`epoll.ts`, on `bun:ffi`), with
 * its relays on an io_uring ring, when `io` asks for that or is `auto` and it can run here, else
 * through `Bun.listen` / `Bun.connect`; HTTP is `Bun.serve` either way. Throws
 * {@linkcode NetError} when `io` names an engine that cannot run.
 */
export function bunNet(options: { io?: IoMode } = {}): Net {
  return runtimeNet(options.io ?? "auto", {
    version: `bun ${bunGlobal().version}`,
    libc: bunLibc,
    ringSys: bunRingSys,
    own: { listen, connect, relay },
    serveHttp,
  });
}
