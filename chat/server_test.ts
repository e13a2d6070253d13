import assert from "node:assert/strict";
import type { Addr, Conn, Listener, Net } from "../net/mod.ts";
import { runServ } from "./server.ts";

const decoder = new TextDecoder();

/**
 * A connection whose writes complete at once, as the epoll engine's do when the socket takes
 * them: what the server coalesces shows in how many writes it makes.
 */
class FakeConn implements Conn {
  readonly localAddr: Addr = { hostname: "127.0.0.1", port: 10010 };
  readonly remoteAddr: Addr;
  readonly writes: string[] = [];
  #endRead: ((n: null) => void) | undefined;
  #closed = false;

  constructor(port: number, readonly onWrite: () => void) {
    this.remoteAddr = { hostname: "127.0.0.1", port };
  }

  /** Lines received whose text matches `pattern`. */
  count(pattern: RegExp): number {
    return this.writes.join("").split("\n").filter((line) => pattern.test(line)).length;
  }

  read(): Promise<number | null> {
    if (this.#closed) return Promise.resolve(null);
    return new Promise((resolve) => this.#endRead = resolve);
  }

  writeAll(data: Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("closed"));
    this.writes.push(decoder.decode(data));
    this.onWrite();
    return Promise.resolve();
  }

  closeWrite(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {
    this.#closed = true;
    this.#endRead?.(null);
  }
}

/** A listener that yields the connections given to `arrive`. */
class FakeListener implements Listener {
  readonly addr: Addr = { hostname: "127.0.0.1", port: 10010 };
  readonly #queue: FakeConn[] = [];
  #next: ((conn: FakeConn | undefined) => void) | undefined;
  #closed = false;

  arrive(conn: FakeConn): void {
    if (this.#next !== undefined) {
      const next = this.#next;
      this.#next = undefined;
      next(conn);
    } else {
      this.#queue.push(conn);
    }
  }

  close(): void {
    this.#closed = true;
    this.#next?.(undefined);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Conn> {
    while (!this.#closed) {
      const conn = this.#queue.shift() ??
        await new Promise<FakeConn | undefined>((resolve) => this.#next = resolve);
      if (conn === undefined) return;
      yield conn;
    }
  }
}

Deno.test("serv announces a burst of joins and leaves in one write per client", async () => {
  const listener = new FakeListener();
  const net = { listen: () => Promise.resolve(listener) } as unknown as Net;
  const server = await runServ(net, {
    listen: { hostname: "127.0.0.1", port: 0 },
    maxClients: 1000,
    maxLine: 1024,
    maxOutput: 1 << 20,
    presence: true,
    presenceDelayMs: 50,
  });
  const clients = 100;
  let check = () => {};
  const conns = Array.from({ length: clients }, (_, i) => new FakeConn(40000 + i, () => check()));
  const until = (done: () => boolean) =>
    new Promise<void>((resolve) => {
      check = () => done() && resolve();
      check();
    });
  try {
    const everyoneJoined = until(() =>
      conns.every((conn) => conn.count(/ joined, \d+ online$/) === clients)
    );
    for (const conn of conns) listener.arrive(conn);
    await everyoneJoined;
    // One timer per client made a write of one notice per join: 100 writes to each client.
    for (const conn of conns) assert.ok(conn.writes.length <= 3, `${conn.writes.length} writes`);
    assert.equal(conns[0].count(/^\* 127\.0\.0\.1:40099 joined, 100 online$/), 1);

    const [leaving, staying] = [conns.slice(0, 50), conns.slice(50)];
    const before = staying.map((conn) => conn.writes.length);
    const everyoneSawLeaves = until(() =>
      staying.every((conn) => conn.count(/ left, \d+ online$/) === leaving.length)
    );
    for (const conn of leaving) conn.close();
    await everyoneSawLeaves;
    staying.forEach((conn, i) => assert.ok(conn.writes.length - before[i] <= 3));
    assert.equal(staying[0].count(/^\* 127\.0\.0\.1:40049 left, 50 online$/), 1);
  } finally {
    await server.stop();
  }
});
