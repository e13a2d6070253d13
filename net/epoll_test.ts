import assert from "node:assert/strict";
import type { Libc } from "./_libc.ts";
import { denoLibc } from "./_libc_deno.ts";
import { epollSockets } from "./epoll.ts";
import type { Conn } from "./mod.ts";

const libc = denoLibc();
const unavailable = "unavailable" in libc ? libc.unavailable : undefined;

/** `libc` with every descriptor given to `shutdown(2)` recorded in `shut`. */
function recordingShutdowns(libc: Libc): { libc: Libc; shut: number[] } {
  const shut: number[] = [];
  return {
    libc: {
      ...libc,
      shutdown: (fd, how) => {
        shut.push(fd);
        return libc.shutdown(fd, how);
      },
    },
    shut,
  };
}

/** The descriptor of an engine connection. */
function fdOf(conn: Conn): number {
  return (conn as unknown as { fd: number }).fd;
}

async function readAll(conn: Conn): Promise<string> {
  const buf = new Uint8Array(1024);
  let text = "";
  while (true) {
    const n = await conn.read(buf);
    if (n === null) return text;
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
}

Deno.test({
  name: "epoll relay: no shutdown when both directions end in the same batch (the peers' FINs)",
  ignore: unavailable !== undefined,
  async fn() {
    const { libc: recording, shut } = recordingShutdowns(libc as Libc);
    const sockets = epollSockets(recording);
    const frontListener = await sockets.listen({ hostname: "127.0.0.1", port: 0 });
    const backListener = await sockets.listen({ hostname: "127.0.0.1", port: 0 });
    const accept = (listener: typeof frontListener) =>
      listener[Symbol.asyncIterator]().next().then((r) => r.value as Conn);
    const frontAccepted = accept(frontListener);
    const client = await sockets.connect(frontListener.addr, { timeoutMs: 5000 });
    const front = await frontAccepted;
    const backAccepted = accept(backListener);
    const upstream = await sockets.connect(backListener.addr, { timeoutMs: 5000 });
    const server = await backAccepted;
    frontListener.close();
    backListener.close();
    try {
      // A request and a reply, each followed by its FIN, both queued before the relay starts.
      await client.writeAll(new TextEncoder().encode("ping"));
      await client.closeWrite();
      await server.writeAll(new TextEncoder().encode("pong"));
      await server.closeWrite();
      const ended: string[] = [];
      const counters = { bytesUp: 0, bytesDown: 0 };
      const result = await sockets.relay(front, upstream, counters, {
        onEnd: (direction) => ended.push(direction),
      });
      assert.deepEqual(result, {});
      assert.deepEqual(ended.toSorted(), ["down", "up"]);
      assert.deepEqual(counters, { bytesUp: 4, bytesDown: 4 });
      assert.equal(await readAll(client), "pong");
      assert.equal(await readAll(server), "ping");
      // Both sides are closed with their FIN; neither is shut down first.
      assert.deepEqual(shut.filter((fd) => fd === fdOf(front) || fd === fdOf(upstream)), []);
    } finally {
      for (const conn of [client, front, upstream, server]) conn.close();
    }
  },
});

Deno.test({
  name: "epoll relay: the first direction to end is still shut down when the other goes on",
  ignore: unavailable !== undefined,
  async fn() {
    const { libc: recording, shut } = recordingShutdowns(libc as Libc);
    const sockets = epollSockets(recording);
    const frontListener = await sockets.listen({ hostname: "127.0.0.1", port: 0 });
    const backListener = await sockets.listen({ hostname: "127.0.0.1", port: 0 });
    const accept = (listener: typeof frontListener) =>
      listener[Symbol.asyncIterator]().next().then((r) => r.value as Conn);
    const frontAccepted = accept(frontListener);
    const client = await sockets.connect(frontListener.addr, { timeoutMs: 5000 });
    const front = await frontAccepted;
    const backAccepted = accept(backListener);
    const upstream = await sockets.connect(backListener.addr, { timeoutMs: 5000 });
    const server = await backAccepted;
    frontListener.close();
    backListener.close();
    try {
      const ended: string[] = [];
      const relayed = sockets.relay(front, upstream, { bytesUp: 0, bytesDown: 0 }, {
        onEnd: (direction) => ended.push(direction),
      });
      await client.writeAll(new TextEncoder().encode("ping"));
      await client.closeWrite();
      // The server sees the end of the request (the relay's shutdown) before it replies.
      assert.equal(await readAll(server), "ping");
      assert.deepEqual(ended, ["up"]);
      const relayShut = shut.filter((fd) => fd === fdOf(front) || fd === fdOf(upstream));
      assert.deepEqual(relayShut, [fdOf(upstream)]);
      await server.writeAll(new TextEncoder().encode("pong"));
      await server.closeWrite();
      assert.equal(await readAll(client), "pong");
      assert.deepEqual(await relayed, {});
      assert.deepEqual(ended, ["up", "down"]);
    } finally {
      for (const conn of [client, front, upstream, server]) conn.close();
    }
  },
});
