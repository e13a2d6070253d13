/**
 * Chat fan-out load for `l4chat serv`: `--clients` clients join one room, two of them send
 * 40-byte lines and every client counts what it receives. Prints `joined` once every client
 * has received a first line, waits for a line on stdin, runs the load for `--seconds`, then
 * prints one JSON object and exits.
 *
 * - `--rate 0` (saturated): the senders write batches as fast as the slowest client keeps
 *   up with (at most `WINDOW_LINES` in flight), so no client is ever disconnected.
 * - `--rate R`: R lines/s in all, each line carrying its send time; up to `SAMPLED` clients
 *   parse lines and record the delivery latency.
 * - `--stalled`: one more client that joins and never reads.
 * - `--io`: the generator's own sockets, as `l4chat --io` (default `auto`).
 *
 * Its sockets are l4chat's own `Net` (the epoll engine where it can run) and it finds the send
 * times in the bytes, not in decoded text, so that the load generator, which reads what every
 * client receives, takes as little of the machine as it can: with Deno's own sockets and a
 * regular expression per line it used about a core at 500,000 lines/s to 100 clients on the
 * benchmark machine, as much as the server it measures.
 *
 * Usage: deno run --allow-net --allow-ffi bench/chat_load.ts --port P --clients N --seconds S
 * [--rate R] [--stalled] [--io auto|epoll|runtime]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { takeIoFlag } from "../cli/args.ts";
import { type Conn, loadNet } from "../net/mod.ts";
import { quantile } from "./_stats.ts";

const LINE_BYTES = 40;
const SENDERS = 2;
const WINDOW_LINES = 4000;
const BATCH_LINES = 100;
const SAMPLED = 20;
const JOIN_TIMEOUT_MS = 60_000;

let parsed: ReturnType<typeof takeIoFlag>;
try {
  parsed = takeIoFlag(Deno.args);
} catch (err) {
  console.error(`chat load: ${(err as Error).message}`);
  Deno.exit(2);
}
const { values } = parseArgs({
  args: parsed.rest,
  options: {
    port: { type: "string" },
    clients: { type: "string" },
    seconds: { type: "string" },
    rate: { type: "string", default: "0" },
    stalled: { type: "boolean", default: false },
  },
});
const port = Number(values.port);
const clientCount = Number(values.clients);
const seconds = Number(values.seconds);
const rate = Number(values.rate);
const encoder = new TextEncoder();
const net = await loadNet({ io: parsed.io });
const NEWLINE = 0x0a;
const DIGIT_0 = 0x30;
const DOT = 0x2e;

/** One line of exactly LINE_BYTES bytes (with its `\n`) starting with `text`. */
function line(text: string): string {
  return text.padEnd(LINE_BYTES - 1, ".").slice(0, LINE_BYTES - 1) + "\n";
}

/**
 * Delivery latencies in a buffer allocated before the run: a growing array of 300,000
 * numbers made the generator's own young-generation collections take 10 to 25 ms during the
 * measurement (copying the array), and every line in flight was charged those pauses.
 */
class Latencies {
  readonly #ms: Float64Array;
  length = 0;
  /** Samples that did not fit (reported; the capacity is sized to make this 0). */
  dropped = 0;

  constructor(capacity: number) {
    this.#ms = new Float64Array(capacity);
  }

  add(ms: number): void {
    if (this.length < this.#ms.length) this.#ms[this.length++] = ms;
    else this.dropped++;
  }

  values(): number[] {
    return Array.from(this.#ms.subarray(0, this.length));
  }
}

class Receiver {
  bytes = 0;
  latencies: Latencies | undefined;
  /** Whether the next byte starts a line. */
  #atLineStart = true;

  constructor(readonly conn: Conn, sampled: boolean) {
    // Every line of the measured seconds, with room for a sender catching up.
    if (sampled) this.latencies = new Latencies(Math.ceil(rate * seconds * 1.5) + 1000);
  }

  async run(measuring: () => boolean): Promise<void> {
    const buf = new Uint8Array(64 * 1024);
    try {
      while (true) {
        const n = await this.conn.read(buf);
        if (n === null) return;
        this.bytes += n;
        if (this.latencies !== undefined) this.#parse(buf.subarray(0, n), measuring());
      }
    } catch {
      // Closed at the end of the run.
    }
  }

  /**
   * Finds the lines that start in `chunk` with a send time (`t<ms>.<µs>`) and records their
   * latency. By bytes, not text: 100,000 lines/s to parse must not slow the generator. A time
   * split across two reads is skipped (one sample in thousands).
   */
  #parse(chunk: Uint8Array, record: boolean): void {
    const now = performance.now();
    let i = this.#atLineStart ? 0 : chunk.indexOf(NEWLINE) + 1;
    while (i > 0 || (i === 0 && this.#atLineStart)) {
      if (i >= chunk.length) break;
      if (record && chunk[i] === 0x74 /* t */) {
        let value = 0;
        let scale = 0;
        let j = i + 1;
        for (; j < chunk.length; j++) {
          const c = chunk[j];
          if (c === DOT && scale === 0) scale = 1;
          else if (c >= DIGIT_0 && c <= DIGIT_0 + 9) {
            value = value * 10 + c - DIGIT_0;
            if (scale > 0) scale *= 10;
          } else break;
        }
        if (j < chunk.length && scale > 0) this.latencies!.add(now - value / scale);
      }
      const next = chunk.indexOf(NEWLINE, i);
      if (next === -1) break;
      i = next + 1;
    }
    this.#atLineStart = chunk[chunk.length - 1] === NEWLINE;
  }
}

async function connectAll(count: number): Promise<Conn[]> {
  const out: Conn[] = [];
  while (out.length < count) {
    const n = Math.min(100, count - out.length);
    out.push(
      ...await Promise.all(
        Array.from(
          { length: n },
          () => net.connect({ hostname: "127.0.0.1", port }, { timeoutMs: 10_000 }),
        ),
      ),
    );
  }
  return out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const conns = await connectAll(clientCount);
const stalled = values.stalled ? (await connectAll(1))[0] : undefined;
const step = Math.max(1, Math.floor(clientCount / SAMPLED));
const receivers = conns.map((conn, i) => new Receiver(conn, rate > 0 && i % step === 0));
let measuring = false;
const readers = receivers.map((r) => r.run(() => measuring));

// Every client has joined once it has received a line sent after its connect.
const deadline = Date.now() + JOIN_TIMEOUT_MS;
let joined = false;
while (!joined && Date.now() < deadline) {
  for (const r of receivers) r.bytes = 0;
  await conns[0].writeAll(encoder.encode(line("join")));
  await sleep(100);
  joined = receivers.every((r) => r.bytes >= LINE_BYTES);
}
if (!joined) {
  console.log(JSON.stringify({ error: "clients did not all join" }));
  Deno.exit(1);
}
await sleep(200);
console.log("joined");
const stdin = Deno.stdin.readable.getReader();
await stdin.read();
stdin.releaseLock();

const senders = conns.slice(0, SENDERS);
let sentLines = 0;
let running = true;

function minReceivedLines(base: number[]): number {
  let min = Infinity;
  for (let i = 0; i < receivers.length; i++) {
    const lines = (receivers[i].bytes - base[i]) / LINE_BYTES;
    if (lines < min) min = lines;
  }
  return min;
}

async function saturate(sender: Conn, base: number[]): Promise<void> {
  const batch = encoder.encode(line("x").repeat(BATCH_LINES));
  while (running) {
    if (sentLines - minReceivedLines(base) > WINDOW_LINES) {
      await sleep(0);
      continue;
    }
    sentLines += BATCH_LINES;
    await sender.writeAll(batch);
  }
}

async function paced(sender: Conn, senderRate: number, startMs: number): Promise<void> {
  let sent = 0;
  while (running) {
    const now = performance.now();
    const due = Math.floor(((now - startMs) / 1000) * senderRate) - sent;
    if (due > 0) {
      const text = line(`t${now.toFixed(3)}`).repeat(due);
      sent += due;
      sentLines += due;
      await sender.writeAll(encoder.encode(text));
    }
    await sleep(1);
  }
}

// Settle for a fifth of the run (at most 1 s), then measure.
const settleMs = Math.min(1000, seconds * 200);
const base = receivers.map((r) => r.bytes);
const startMs = performance.now();
const loops = senders.map((sender) =>
  rate > 0 ? paced(sender, rate / SENDERS, startMs) : saturate(sender, base)
);
await sleep(settleMs);
measuring = true;
const from = receivers.reduce((sum, r) => sum + r.bytes, 0);
const t0 = performance.now();
await sleep(seconds * 1000);
const to = receivers.reduce((sum, r) => sum + r.bytes, 0);
const t1 = performance.now();
measuring = false;
running = false;
await Promise.race([Promise.all(loops), sleep(2000)]);
const latencies = receivers.flatMap((r) => r.latencies?.values() ?? []);
const dropped = receivers.reduce((sum, r) => sum + (r.latencies?.dropped ?? 0), 0);
let stalledEvicted = false;
if (stalled !== undefined) {
  // Evicted means the server closed it: reading now finds the end after its backlog.
  const buf = new Uint8Array(1 << 20);
  const end = Date.now() + 3000;
  try {
    while (Date.now() < end) {
      const n = await Promise.race([stalled.read(buf), sleep(500).then(() => 0)]);
      if (n === null) {
        stalledEvicted = true;
        break;
      }
      if (n === 0) break;
    }
  } catch {
    stalledEvicted = true;
  }
  stalled.close();
}
for (const conn of conns) conn.close();
await Promise.race([Promise.all(readers), sleep(2000)]);
console.log(JSON.stringify({
  clients: clientCount,
  rate,
  seconds: (t1 - t0) / 1000,
  linesPerSecond: (to - from) / LINE_BYTES / ((t1 - t0) / 1000),
  sentLines,
  p50Ms: quantile(latencies, 0.5),
  p99Ms: quantile(latencies, 0.99),
  samples: latencies.length,
  dropped,
  stalled: stalled !== undefined,
  stalledEvicted,
}));
Deno.exit(0);
