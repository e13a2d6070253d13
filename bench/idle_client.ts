/**
 * Holds idle TCP connections to `127.0.0.1:<port>` for the memory workloads. For each count in
 * `<counts>` (comma-separated, rising) it opens connections until it holds that many, prints
 * `held <n>` and waits for a line on stdin; after the last it closes them all and exits.
 * Reads nothing; with `send`, it sends one byte on each connection (a request whose answer it
 * will not read), and nothing otherwise.
 *
 * Usage: deno run --allow-net bench/idle_client.ts <port> <count>[,<count>...] [send]
 *
 * @module
 */

const BATCH = 200;
const CONNECT_TIMEOUT_MS = 60_000;

const [portText, countsText, mode] = Deno.args;
const request = mode === "send" ? new Uint8Array([0x53]) : undefined;
const port = Number(portText);
const counts = countsText.split(",").map(Number);
const conns: Deno.TcpConn[] = [];
const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
const started = Date.now();

async function nextLine(): Promise<void> {
  await lines.read();
}

for (const count of counts) {
  while (conns.length < count) {
    if (Date.now() - started > CONNECT_TIMEOUT_MS) {
      console.log(`failed ${conns.length}`);
      Deno.exit(1);
    }
    const n = Math.min(BATCH, count - conns.length);
    const batch = await Promise.allSettled(
      Array.from({ length: n }, () => Deno.connect({ hostname: "127.0.0.1", port })),
    );
    for (const result of batch) {
      if (result.status !== "fulfilled") continue;
      conns.push(result.value);
      if (request !== undefined) await result.value.write(request);
    }
  }
  console.log(`held ${conns.length}`);
  await nextLine();
}
for (const conn of conns) conn.close();
