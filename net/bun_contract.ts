/**
 * Runs the {@linkcode netContract} under Bun, which has no `Deno.test`:
 * `bun net/bun_contract.ts [auto|epoll|runtime]` (the `--io` to load the Net with). `bun_test.ts` starts it from `deno test`, handing it a black hole
 * in `L4CHAT_BLACK_HOLE` (`127.0.0.1:<port>`) for the connect timeout case. Prints one line per
 * case and a closing `N passed, N failed, N skipped`; exits 1 if any case failed.
 *
 * @module
 */
import assert from "node:assert/strict";
import process from "node:process";
import { type BlackHole, type ContractCase, netContract } from "./_contract.ts";
import { type Conn, type IoMode, type Listener, loadNet, type Net, NetError } from "./mod.ts";

const io = (process.argv[2] ?? "auto") as IoMode;
const net = await loadNet({ io });
if (!net.runtime.startsWith("bun ") || (io !== "auto" && net.io !== io)) {
  process.stderr.write(`bun_contract.ts: expected Bun with --io ${io}, runs on ${net.runtime}\n`);
  process.exit(2);
}

const hole = process.env.L4CHAT_BLACK_HOLE?.match(/^(.+):(\d+)$/);
const blackHole = hole
  ? (): Promise<BlackHole> =>
    Promise.resolve({
      addr: { hostname: hole[1], port: Number(hole[2]) },
      [Symbol.dispose]: () => {},
    })
  : undefined;

/** Starts `_bun_reuse_port_worker.ts` listening on `port`; resolves with the port bound. */
async function startListenerWorker(name: string, port: number): Promise<[Worker, number]> {
  const worker = new Worker(new URL("./_bun_reuse_port_worker.ts", import.meta.url), {
    type: "module",
  });
  const reply = new Promise<{ port?: number; error?: string }>((resolve, reject) => {
    worker.onmessage = (event) => resolve(event.data);
    worker.onerror = (event) => reject(new Error(`worker ${name}: ${event.message}`));
  });
  worker.postMessage({ name, port });
  const { port: bound, error } = await reply;
  if (bound === undefined) {
    worker.terminate();
    throw new Error(`worker ${name} cannot listen: ${error}`);
  }
  return [worker, bound];
}

/** Reads until end of stream, as text. */
async function readText(conn: Conn): Promise<string> {
  const buf = new Uint8Array(64);
  let text = "";
  let n;
  while ((n = await conn.read(buf)) !== null) text += new TextDecoder().decode(buf.subarray(0, n));
  return text;
}

/** Connects to `listener`, sends `text` and reads what comes back until end of stream. */
async function echoed(net: Net, listener: Listener, text: string): Promise<string> {
  const conn = await net.connect(listener.addr, { timeoutMs: 5000 });
  try {
    await conn.writeAll(new TextEncoder().encode(text));
    await conn.closeWrite();
    return await readText(conn);
  } finally {
    conn.close();
  }
}

/** What Bun's Net does beyond the shared contract. */
function bunCases(net: Net): ContractCase[] {
  return [{
    // With the epoll engine, a loop with nothing to do parks on the wait worker
    // (`_libc_bun.ts`) after 20 quiet waits of a millisecond; only its wake-up brings the
    // next connection in. (A worker that cannot start is reported on stderr, which
    // `bun_test.ts` checks.)
    name: "a connection after the loop has been idle is accepted and relayed",
    fn: async () => {
      const listener = await net.listen({ hostname: "127.0.0.1", port: 0 });
      const serving = (async () => {
        for await (const conn of listener) {
          const buf = new Uint8Array(64);
          let n;
          while ((n = await conn.read(buf)) !== null) await conn.writeAll(buf.subarray(0, n));
          await conn.closeWrite();
          conn.close();
        }
      })();
      try {
        assert.equal(await echoed(net, listener, "first"), "first");
        // Idle time is what is tested: nothing to await but the clock.
        await new Promise((resolve) => setTimeout(resolve, 200));
        assert.equal(await echoed(net, listener, "after a rest"), "after a rest");
      } finally {
        listener.close();
        await serving;
      }
    },
  }, {
    name: "reads whose data came in one turn of the event loop are woken together",
    fn: async () => {
      const listener = await net.listen({ hostname: "127.0.0.1", port: 0 });
      const accepted = listener[Symbol.asyncIterator]();
      const conns: Conn[] = [];
      try {
        const pair = async () => {
          const near = await net.connect(listener.addr, { timeoutMs: 5000 });
          conns.push(near, (await accepted.next()).value as Conn);
          return [near, conns.at(-1)!];
        };
        const [a, farA] = await pair();
        const [b, farB] = await pair();
        let bRead = false;
        const readB = farB.read(new Uint8Array(16)).then(() => bRead = true);
        const readA = farA.read(new Uint8Array(16)).then(async () => {
          // Microtasks only: woken one callback at a time, B's read is still waiting here.
          for (let i = 0; i < 10; i++) await null;
          return bRead;
        });
        // On loopback both arrive before Bun looks again: one turn of its event loop.
        await Promise.all([a.writeAll(new Uint8Array([1])), b.writeAll(new Uint8Array([2]))]);
        assert.equal(await readA, true);
        await readB;
      } finally {
        for (const conn of conns) conn.close();
        listener.close();
      }
    },
  }, {
    name: "listen() with reusePort: two Workers listen on one port and both accept",
    ignore: process.platform === "linux"
      ? undefined
      : "only Linux spreads the connections of one port over its listeners",
    fn: async () => {
      const workers: Worker[] = [];
      try {
        const [a, port] = await startListenerWorker("A", 0);
        workers.push(a);
        // Without reusePort the port is taken.
        await assert.rejects(
          net.listen({ hostname: "127.0.0.1", port }),
          (err) => err instanceof NetError && err.code === "AddrInUse",
        );
        const [b] = await startListenerWorker("B", port);
        workers.push(b);
        // The kernel picks a listener by a hash of each connection's addresses and ports.
        const seen = new Set<string>();
        for (let i = 0; i < 200 && seen.size < 2; i++) {
          const conn = await net.connect({ hostname: "127.0.0.1", port }, { timeoutMs: 5000 });
          try {
            seen.add(await readText(conn));
          } finally {
            conn.close();
          }
        }
        assert.deepEqual([...seen].sort(), ["A", "B"]);
      } finally {
        for (const worker of workers) worker.terminate();
      }
    },
  }];
}

let passed = 0, failed = 0, skipped = 0;
for (const c of [...netContract(net, { blackHole }), ...bunCases(net)]) {
  if (c.ignore !== undefined) {
    skipped++;
    process.stdout.write(`bunNet: ${c.name} ... skipped (${c.ignore})\n`);
    continue;
  }
  try {
    await c.fn();
    passed++;
    process.stdout.write(`bunNet: ${c.name} ... ok\n`);
  } catch (err) {
    failed++;
    process.stdout.write(`bunNet: ${c.name} ... FAILED\n${(err as Error).stack ?? err}\n`);
  }
}
process.stdout.write(`${passed} passed, ${failed} failed, ${skipped} skipped\n`);
process.exit(failed > 0 ? 1 : 0);
