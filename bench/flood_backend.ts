/**
 * The backend of the stalled-download workload: listens on 127.0.0.1 at `<port>`, and to every
 * connection that sends a byte writes 64 KiB chunks for as long as the connection takes them,
 * as a file server does to a client that is downloading. Its clients never read: what it has
 * sent piles up in the proxy between them.
 *
 * Usage: deno run --allow-net bench/flood_backend.ts <port>
 *
 * @module
 */

const CHUNK = new Uint8Array(64 * 1024).fill(0x79);

const listener = Deno.listen({ hostname: "127.0.0.1", port: Number(Deno.args[0]) });

async function flood(conn: Deno.Conn): Promise<void> {
  try {
    if (await conn.read(new Uint8Array(1)) === null) return;
    for (;;) await conn.write(CHUNK);
  } catch {
    // The proxy closed the connection: the workload is over.
  } finally {
    conn.close();
  }
}

for await (const conn of listener) flood(conn);
