import {
  type Addr,
  type Conn,
  type ConnectOptions,
  type Direction,
  type HttpServer,
  type IoMode,
  type Listener,
  type ListenOptions,
  type Net,
  NetError,
  type NetErrorCode,
  type RelayCounters,
  type RelayOptions,
} from "./mod.ts";
import {
  giveLargeBuffer,
  RELAY_BUFFER_CLASSES,
  RELAY_BUFFER_MIN,
  takeLargeBuffer,
} from "./_buffer.ts";
import { denoLibc } from "./_libc_deno.ts";
import { runtimeNet } from "./epoll.ts";
import { denoRingSys } from "./_uring_deno.ts";

const TOP_LEVEL = RELAY_BUFFER_CLASSES.length - 1;
/** A read at least this large that does not fill the buffer still means a bulk flow. */
const STREAMING_BYTES = 32 * 1024;

const DENO_ERROR_CODES: Record<string, NetErrorCode> = {
  ConnectionRefused: "ConnectionRefused",
  ConnectionReset: "ConnectionReset",
  ConnectionAborted: "ConnectionReset",
  BrokenPipe: "BrokenPipe",
  TimedOut: "TimedOut",
  AddrInUse: "AddrInUse",
  AddrNotAvailable: "AddrNotAvailable",
  NotFound: "NotFound",
  PermissionDenied: "PermissionDenied",
  NotCapable: "PermissionDenied",
  BadResource: "Closed",
  Interrupted: "Closed",
};

/** Maps whatever Deno threw to a {@linkcode NetError}. */
function toNetError(err: unknown): NetError {
  if (err instanceof NetError) return err;
  if (err instanceof Error) {
    let code = DENO_ERROR_CODES[err.name] ?? "Other";
    const message = err.message.replace(/ \(os error \d+\)$/, "").toLowerCase();
    if (code === "Other" && /lookup address|name or service|no address/i.test(message)) {
      code = "NotFound";
    }
    return new NetError(code, message, { cause: err });
  }
  return new NetError("Other", String(err));
}

function toAddr(addr: Deno.Addr): Addr {
  const net = addr as Deno.NetAddr;
  return { hostname: net.hostname, port: net.port };
}

class DenoConn implements Conn {
  readonly inner: Deno.TcpConn;
  // Made on first use: an idle proxied connection should hold as little as possible.
  #localAddr: Addr | undefined;
  #remoteAddr: Addr | undefined;
  #closed = false;

  constructor(inner: Deno.TcpConn) {
    this.inner = inner;
    try {
      inner.setNoDelay(true);
    } catch {
      // The peer may already have reset the connection; the first read will say so.
    }
  }

  get localAddr(): Addr {
    return this.#localAddr ??= toAddr(this.inner.localAddr);
  }

  get remoteAddr(): Addr {
    return this.#remoteAddr ??= toAddr(this.inner.remoteAddr);
  }

  async read(buf: Uint8Array): Promise<number | null> {
    try {
      return await this.inner.read(buf);
    } catch (err) {
      throw toNetError(err);
    }
  }

  async writeAll(data: Uint8Array): Promise<void> {
    try {
      let written = 0;
      while (written < data.length) {
        written += await this.inner.write(data.subarray(written));
      }
    } catch (err) {
      throw toNetError(err);
    }
  }

  async closeWrite(): Promise<void> {
    try {
      await this.inner.closeWrite();
    } catch {
      // Already closed or reset: there is nothing left to shut down.
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.inner.close();
    } catch {
      // Closed by the runtime already.
    }
  }
}

class DenoListener implements Listener {
  readonly addr: Addr;
  #inner: Deno.TcpListener;
  #closed = false;

  constructor(inner: Deno.TcpListener) {
    this.#inner = inner;
    this.addr = toAddr(inner.addr);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Conn> {
    while (!this.#closed) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#inner.accept();
      } catch (err) {
        if (this.#closed || (err instanceof Error && err.name === "BadResource")) return;
        // Out of file descriptors and the like: back off briefly rather than spin or stop.
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      yield new DenoConn(conn);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#inner.close();
    } catch {
      // Already closed.
    }
  }
}

/**
 * Copies `src` to `dst` until end of stream, then half-closes `dst`. Reads go into a small
 * buffer while the flow is idle or chatty, and into pooled large ones, sized up while reads
 * fill them, during bulk transfers; see `_buffer.ts`. Nothing here allocates per chunk but
 * the write's view.
 */
async function pump(
  src: Deno.TcpConn,
  dst: Deno.TcpConn,
  counters: RelayCounters,
  direction: Direction,
  options: RelayOptions | undefined,
  ended: { count: number },
): Promise<void> {
  const key = direction === "up" ? "bytesUp" : "bytesDown";
  const onChunk = options?.onChunk;
  const small = new Uint8Array(RELAY_BUFFER_MIN);
  let buf = small;
  let level = 0;
  try {
    while (true) {
      const n = await src.read(buf);
      if (n === null) break;
      let written = await dst.write(n === buf.length ? buf : buf.subarray(0, n));
      while (written < n) written += await dst.write(buf.subarray(written, n));
      counters[key] += n;
      if (onChunk !== undefined) onChunk(direction, n);
      if (buf === small) {
        if (n === buf.length) buf = takeLargeBuffer(level);
      } else if (n === buf.length) {
        if (level < TOP_LEVEL) {
          giveLargeBuffer(buf, level);
          buf = takeLargeBuffer(++level);
        }
      } else if (n < STREAMING_BYTES) {
        // Drained and slowing down: wait for the next data in the small buffer, not in a
        // large one (an idle connection holds no large buffer).
        giveLargeBuffer(buf, level);
        if (level > 0) level--;
        buf = small;
      } else if (n < buf.length >> 2 && level > 0) {
        giveLargeBuffer(buf, level);
        buf = takeLargeBuffer(--level);
      }
    }
  } finally {
    if (buf !== small) giveLargeBuffer(buf, level);
  }
  // The last direction to end needs no shutdown: the relay closes both sides next.
  if (++ended.count < 2) {
    try {
      await dst.closeWrite();
    } catch {
      // The peer is already gone; the other direction will find out.
    }
  }
  options?.onEnd?.(direction);
}

async function relay(
  a: Conn,
  b: Conn,
  counters: RelayCounters,
  options?: RelayOptions,
): Promise<NetError | undefined> {
  const ca = (a as DenoConn).inner;
  const cb = (b as DenoConn).inner;
  let error: NetError | undefined;
  const fail = (err: unknown) => {
    // The first failure wins; closing both sides ends the other direction's pending read.
    if (error === undefined) error = toNetError(err);
    a.close();
    b.close();
  };
  const ended = { count: 0 };
  await Promise.all([
    pump(ca, cb, counters, "up", options, ended).catch(fail),
    pump(cb, ca, counters, "down", options, ended).catch(fail),
  ]);
  a.close();
  b.close();
  return error;
}

async function connect(addr: Addr, options?: ConnectOptions): Promise<Conn> {
  const pending = Deno.connect({ hostname: addr.hostname, port: addr.port, transport: "tcp" });
  const timeoutMs = options?.timeoutMs;
  if (timeoutMs === undefined) {
    try {
      return new DenoConn(await pending);
    } catch (err) {
      throw toNetError(err);
    }
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new NetError("TimedOut", `connect timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    return new DenoConn(await Promise.race([pending, timeout]));
  } catch (err) {
    // A connect that completes after the timeout must not leak its socket.
    pending.then((conn) => conn.close(), () => {});
    throw toNetError(err);
  } finally {
    clearTimeout(timer);
  }
}

async function listen(addr: Addr, options?: ListenOptions): Promise<Listener> {
  // Deno exits the whole process (code 70) when an unstable API is used without its flag;
  // Deno.listenDatagram exists only with that same flag, --unstable-net.
  if (options?.reusePort && !("listenDatagram" in Deno)) {
    throw new NetError("Other", "reusePort with --io runtime needs deno run --unstable-net");
  }
  try {
    return await Promise.resolve(
      new DenoListener(
        Deno.listen({
          hostname: addr.hostname,
          port: addr.port,
          transport: "tcp",
          // Unstable in Deno 2.9: only asked for when wanted, and then needs --unstable-net.
          ...(options?.reusePort ? { reusePort: true } : {}),
        }),
      ),
    );
  } catch (err) {
    throw toNetError(err);
  }
}

function serveHttp(
  addr: Addr,
  handler: (req: Request) => Promise<Response>,
): Promise<HttpServer> {
  return new Promise((resolveServer, rejectServer) => {
    try {
      const server = Deno.serve({
        hostname: addr.hostname,
        port: addr.port,
        onListen: () => {},
        onError: () => new Response("internal error", { status: 500 }),
      }, handler);
      resolveServer({ addr: toAddr(server.addr), shutdown: () => server.shutdown() });
    } catch (err) {
      rejectServer(toNetError(err));
    }
  });
}

/**
 * The {@linkcode Net} of Deno. TCP goes through the epoll engine (`epoll.ts`), with its relays
 * on an io_uring ring, when `io` asks for that or is `auto` and it can run here, else through
 * `Deno.listen` and `Deno.connect`; HTTP is `Deno.serve` either way. Throws
 * {@linkcode NetError} when `io` names an engine that cannot run.
 */
export function denoNet(options: { io?: IoMode } = {}): Net {
  return runtimeNet(options.io ?? "auto", {
    version: `deno ${Deno.version.deno}`,
    libc: denoLibc,
    ringSys: denoRingSys,
    own: { listen, connect, relay },
    serveHttp,
  });
}
