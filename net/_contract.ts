/**
 * The contract every {@linkcode Net} implementation passes (cf. hono's runtime tests): plain
 * cases, so that `deno_test.ts` runs them as `Deno.test`s and `bun_contract.ts` runs them under
 * Bun, where there is no `Deno.test`. Loopback only; every wait is bounded by the case's
 * deadline.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Addr, Conn, Net, RelayCounters } from "./mod.ts";
import { NetError } from "./mod.ts";

/** A listener that completes no handshake once its backlog is full: SYNs go unanswered. */
export interface BlackHole extends Disposable {
  readonly addr: Addr;
}

/** One contract case. */
export interface ContractCase {
  name: string;
  fn: () => Promise<void>;
  /** Why the case cannot run here, if it cannot. */
  ignore?: string;
  /**
   * False for a case that leaves a runtime operation behind on purpose (a connect abandoned
   * at its timeout, which the kernel ends later); Deno's op sanitizer is then turned off.
   */
  sanitizeOps?: boolean;
}

/** Options of {@linkcode netContract}. */
export interface ContractOptions {
  /**
   * Makes a {@linkcode BlackHole}. Without one the connect timeout case is ignored: on loopback
   * nothing else leaves a SYN unanswered, and a listener that never accepts cannot be made
   * with every runtime's own API (Bun's and Node's accept at once).
   */
  blackHole?: () => Promise<BlackHole>;
  /** Bound on each case (ms). */
  caseTimeoutMs?: number;
}

const LOOPBACK = "127.0.0.1";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Rejects after `ms` unless `promise` settles first. */
export async function deadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads until end of stream; returns everything read. */
async function readToEnd(conn: Conn): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const buf = new Uint8Array(64 * 1024);
  let total = 0;
  while (true) {
    const n = await conn.read(buf);
    if (n === null) break;
    parts.push(buf.slice(0, n));
    total += n;
  }
  const all = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    all.set(part, offset);
    offset += part.length;
  }
  return all;
}

/** Reads exactly `length` bytes (fewer only at end of stream). */
async function readExactly(conn: Conn, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let offset = 0;
  while (offset < length) {
    const n = await conn.read(out.subarray(offset));
    if (n === null) break;
    offset += n;
  }
  return out.subarray(0, offset);
}

/** A listener on loopback port 0 and one connection to it, both ends. */
async function pair(net: Net): Promise<{ client: Conn; server: Conn } & Disposable> {
  const listener = await net.listen({ hostname: LOOPBACK, port: 0 });
  try {
    const accepted = listener[Symbol.asyncIterator]().next();
    const client = await net.connect(listener.addr, { timeoutMs: 5000 });
    const { value: server } = await accepted;
    return {
      client,
      server: server as Conn,
      [Symbol.dispose]() {
        client.close();
        (server as Conn).close();
      },
    };
  } finally {
    listener.close();
  }
}

/**
 * A client connected through `net.relay` to a server: client <-> (front, back) <-> server.
 * `relayed` settles when the relay ends.
 */
async function relayed(net: Net): Promise<
  {
    client: Conn;
    server: Conn;
    counters: RelayCounters;
    ended: string[];
    done: ReturnType<Net["relay"]>;
  } & Disposable
> {
  const front = await pair(net);
  const back = await pair(net);
  const counters: RelayCounters = { bytesUp: 0, bytesDown: 0 };
  const ended: string[] = [];
  const done = net.relay(front.server, back.client, counters, {
    onEnd: (direction) => ended.push(direction),
  });
  return {
    client: front.client,
    server: back.server,
    counters,
    ended,
    done,
    [Symbol.dispose]() {
      front[Symbol.dispose]();
      back[Symbol.dispose]();
    },
  };
}

/** Asserts that `promise` rejects with a {@linkcode NetError} whose code is one of `codes`. */
async function rejectsWith(promise: Promise<unknown>, codes: string[]): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof NetError, `expected a NetError, got ${err}`);
    assert.ok(codes.includes(err.code), `expected ${codes.join(" or ")}, got ${err.code}`);
    return true;
  });
}

/** The contract cases for `net`. */
export function netContract(net: Net, options: ContractOptions = {}): ContractCase[] {
  const caseTimeoutMs = options.caseTimeoutMs ?? 20_000;
  const cases: ContractCase[] = [
    {
      name: "listen() on port 0 binds a real port; connect() reaches it",
      fn: async () => {
        using conns = await pair(net);
        assert.equal(conns.client.remoteAddr.port, conns.server.localAddr.port);
        assert.notEqual(conns.client.remoteAddr.port, 0);
        assert.equal(conns.server.remoteAddr.port, conns.client.localAddr.port);
        assert.equal(conns.server.remoteAddr.hostname, LOOPBACK);
        assert.match(net.runtime, /^\w+ \d/);
      },
    },
    {
      name: "listen() on a port in use rejects with AddrInUse",
      fn: async () => {
        const listener = await net.listen({ hostname: LOOPBACK, port: 0 });
        try {
          await rejectsWith(net.listen(listener.addr), ["AddrInUse"]);
        } finally {
          listener.close();
        }
      },
    },
    {
      name: "Listener.close() ends the iteration",
      fn: async () => {
        const listener = await net.listen({ hostname: LOOPBACK, port: 0 });
        const next = listener[Symbol.asyncIterator]().next();
        listener.close();
        listener.close();
        assert.equal((await next).done, true);
      },
    },
    {
      name: "connect() to a closed port rejects with ConnectionRefused",
      fn: async () => {
        const listener = await net.listen({ hostname: LOOPBACK, port: 0 });
        const addr = listener.addr;
        listener.close();
        await rejectsWith(net.connect(addr, { timeoutMs: 5000 }), ["ConnectionRefused"]);
      },
    },
    {
      name: "connect() rejects with TimedOut when no handshake completes",
      ignore: options.blackHole === undefined
        ? "no black hole given: a listener that never accepts needs Deno.listen"
        : undefined,
      sanitizeOps: false,
      fn: async () => {
        using hole = await options.blackHole!();
        const filled: Conn[] = [];
        try {
          // Each connect completes until the backlog is full; the next SYN goes unanswered.
          for (let i = 0; i < 8192; i++) {
            try {
              filled.push(await net.connect(hole.addr, { timeoutMs: 1000 }));
            } catch (err) {
              assert.ok(err instanceof NetError, `expected a NetError, got ${err}`);
              assert.equal(err.code, "TimedOut");
              return;
            }
          }
          assert.fail("every connect completed");
        } finally {
          for (const conn of filled) conn.close();
        }
      },
    },
    {
      name: "read() and writeAll() carry bytes both ways, in order",
      fn: async () => {
        using conns = await pair(net);
        const payload = new Uint8Array(1024 * 1024).map((_, i) => i % 251);
        const [, got] = await Promise.all([
          conns.client.writeAll(payload),
          readExactly(conns.server, payload.length),
        ]);
        assert.deepEqual(got, payload);
        await conns.server.writeAll(encoder.encode("pong"));
        const buf = new Uint8Array(2);
        assert.equal(await conns.client.read(buf), 2);
        assert.equal(decoder.decode(buf), "po");
        assert.equal(decoder.decode(await readExactly(conns.client, 2)), "ng");
      },
    },
    {
      name: "writeAll() waits while the peer does not read (backpressure)",
      fn: async () => {
        using conns = await pair(net);
        // Larger than what the kernel's buffers and the implementation's queue hold.
        const size = 64 * 1024 * 1024;
        let written = false;
        const writing = conns.client.writeAll(new Uint8Array(size)).then(() => written = true);
        assert.equal((await readExactly(conns.server, 1024 * 1024)).length, 1024 * 1024);
        assert.equal(written, false, "writeAll() resolved before the peer read most of it");
        assert.equal(
          (await readExactly(conns.server, size - 1024 * 1024)).length,
          size - 1024 * 1024,
        );
        await writing;
      },
    },
    {
      name: "closeWrite() is end of stream for the peer, which can still write back",
      fn: async () => {
        using conns = await pair(net);
        await conns.client.writeAll(encoder.encode("ping"));
        await conns.client.closeWrite();
        await conns.client.closeWrite();
        assert.equal(decoder.decode(await readToEnd(conns.server)), "ping");
        await conns.server.writeAll(encoder.encode("pong"));
        await conns.server.closeWrite();
        assert.equal(decoder.decode(await readToEnd(conns.client)), "pong");
      },
    },
    {
      name: "close() is idempotent and a read on a closed peer ends",
      fn: async () => {
        using conns = await pair(net);
        conns.client.close();
        conns.client.close();
        assert.equal(await conns.server.read(new Uint8Array(16)), null);
      },
    },
    {
      name: "relay() copies both ways, carries half-close through and counts bytes",
      fn: async () => {
        using r = await relayed(net);
        await r.client.writeAll(encoder.encode("hello"));
        await r.client.closeWrite();
        assert.equal(decoder.decode(await readToEnd(r.server)), "hello");
        // The client's half-close arrived; the server still talks back.
        await r.server.writeAll(encoder.encode("world!"));
        await r.server.closeWrite();
        assert.equal(decoder.decode(await readToEnd(r.client)), "world!");
        assert.equal(await r.done, undefined);
        assert.deepEqual(r.counters, { bytesUp: 5, bytesDown: 6 });
        assert.deepEqual([...r.ended].sort(), ["down", "up"]);
      },
    },
    {
      name: "relay() carries bulk data and a slow reader slows the writer",
      fn: async () => {
        using r = await relayed(net);
        const size = 64 * 1024 * 1024;
        let written = false;
        const writing = r.client.writeAll(new Uint8Array(size).fill(7)).then(() => written = true);
        assert.equal((await readExactly(r.server, 1024 * 1024)).length, 1024 * 1024);
        assert.equal(written, false, "writeAll() resolved before the far end read most of it");
        const rest = await readExactly(r.server, size - 1024 * 1024);
        assert.equal(rest.length, size - 1024 * 1024);
        assert.equal(rest[rest.length - 1], 7);
        await writing;
        await r.client.closeWrite();
        await r.server.closeWrite();
        assert.equal(await r.done, undefined);
        assert.equal(r.counters.bytesUp, size);
      },
    },
    {
      name: "relay() closes both sides when one fails",
      fn: async () => {
        using r = await relayed(net);
        // The client goes away; the relay's writes to it then fail (reset or broken pipe).
        r.client.close();
        const chunk = new Uint8Array(64 * 1024);
        let settled = false;
        r.done.then(() => settled = true);
        for (let i = 0; i < 1024 && !settled; i++) {
          try {
            await r.server.writeAll(chunk);
          } catch {
            break;
          }
        }
        const error = await r.done;
        assert.ok(error instanceof NetError, `expected a NetError, got ${error}`);
        assert.ok(
          ["ConnectionReset", "BrokenPipe", "Closed"].includes(error.code),
          `unexpected ${error.code}`,
        );
        // The relay closed the server's peer too: its stream ends (or resets).
        try {
          await readToEnd(r.server);
        } catch (err) {
          assert.ok(err instanceof NetError, `expected a NetError, got ${err}`);
        }
      },
    },
    {
      name: "resolve() returns IP literals as they are and finds localhost",
      fn: async () => {
        assert.deepEqual(await net.resolve("127.0.0.1"), ["127.0.0.1"]);
        const found = await net.resolve("localhost");
        assert.ok(found.some((ip) => ip === "127.0.0.1" || ip === "::1"), found.join(", "));
      },
    },
    {
      name: "serveHttp() answers with the handler's response until shut down",
      fn: async () => {
        const server = await net.serveHttp(
          { hostname: LOOPBACK, port: 0 },
          (req) => Promise.resolve(new Response(`got ${new URL(req.url).pathname}`)),
        );
        try {
          assert.notEqual(server.addr.port, 0);
          const res = await fetch(`http://${LOOPBACK}:${server.addr.port}/health`);
          assert.equal(res.status, 200);
          assert.equal(await res.text(), "got /health");
        } finally {
          await server.shutdown();
        }
      },
    },
  ];
  return cases.map((c) => ({
    ...c,
    fn: () => deadline(c.fn(), caseTimeoutMs, c.name),
  }));
}
