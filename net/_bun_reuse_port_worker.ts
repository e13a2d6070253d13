/**
 * A Web Worker for the `reusePort` case of `bun_contract.ts`: told `{ name, port }`, it listens
 * on 127.0.0.1 at that port (0 for any) with `reusePort`, posts `{ port }` once bound (or
 * `{ error }`), then writes `name` to every connection it accepts and closes it.
 *
 * @module
 */
import { bunNet } from "./bun.ts";

/** The worker side of `postMessage`, which Deno's window types do not declare. */
const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<{ name: string; port: number }>) => void) | null;
  postMessage(message: unknown): void;
};

const net = bunNet();
const encoder = new TextEncoder();

scope.onmessage = async (event) => {
  scope.onmessage = null;
  let listener;
  try {
    listener = await net.listen({ hostname: "127.0.0.1", port: event.data.port }, {
      reusePort: true,
    });
  } catch (err) {
    scope.postMessage({ error: String(err) });
    return;
  }
  scope.postMessage({ port: listener.addr.port });
  for await (const conn of listener) {
    await conn.writeAll(encoder.encode(event.data.name)).catch(() => {});
    await conn.closeWrite();
    // The client closes first; reading to its end keeps TIME_WAIT on the client's side.
    const buf = new Uint8Array(16);
    while (await conn.read(buf).catch(() => null) !== null);
    conn.close();
  }
};
