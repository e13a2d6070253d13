import type { Conn, Listener, Net } from "./mod.ts";
import { deadline } from "./_contract.ts";

/**
 * The other process of the engine tests that need their traffic to come from outside
 * ({@linkcode spawnPeers}).
 *
 * @module
 */

/**
 * `deno eval PING_PONG <relay port> <rounds> <wait>`: prints the port of its server, connects
 * its client to the relay, with `wait` 1 reads a line from its standard input first, then plays
 * ping-pong through the relay, one round at a time, and closes; exit 1 on a short read.
 */
const PING_PONG = `
const [port, rounds, wait] = Deno.args.map(Number);
const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
console.log(listener.addr.port);
const server = await listener.accept();
const client = await Deno.connect({ hostname: "127.0.0.1", port });
const buf = new Uint8Array(16);
if (wait === 1) await Deno.stdin.read(buf);
for (let i = 0; i < rounds; i++) {
  await client.write(new TextEncoder().encode("ping"));
  if ((await server.read(buf)) !== 4) Deno.exit(1);
  await server.write(new TextEncoder().encode("pong"));
  if ((await client.read(buf)) !== 4) Deno.exit(1);
}
client.close();
server.close();
listener.close();
`;

/** The peers' process: its stdout's lines and its stdin; disposing of it ends it. */
export interface Peers extends AsyncDisposable {
  readonly lines: ReadableStreamDefaultReader<string>;
  readonly stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly status: Promise<Deno.CommandStatus>;
}

/** Starts {@linkcode PING_PONG} against the relay's `port`; with `wait`, it waits for a line. */
export function spawnPeers(port: number, rounds: number, wait = false): Peers {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", PING_PONG, String(port), String(rounds), wait ? "1" : "0"],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const stdin = child.stdin.getWriter();
  return {
    lines,
    stdin,
    status: child.status,
    async [Symbol.asyncDispose]() {
      try {
        child.kill();
      } catch {
        // It has exited.
      }
      await child.status;
      await stdin.close().catch(() => {});
      // Cancelling the reader cancels the pipe and the child's stdout under it.
      await lines.cancel().catch(() => {});
    },
  };
}

/**
 * The two ends a proxy relays between, for the peers of {@linkcode PING_PONG}: the client's
 * connection accepted on `listener`, and a connection from `sockets` to the peers' server, whose
 * port is the first line they print (read from `lines`). Rejects after 10 s.
 */
export function relayEnds(
  sockets: Pick<Net, "connect">,
  listener: Listener,
  lines: ReadableStreamDefaultReader<string>,
): Promise<{ front: Conn; upstream: Conn }> {
  return deadline(connectEnds(sockets, listener, lines), 10_000, "the relay's two ends");
}

async function connectEnds(
  sockets: Pick<Net, "connect">,
  listener: Listener,
  lines: ReadableStreamDefaultReader<string>,
): Promise<{ front: Conn; upstream: Conn }> {
  const serverPort = Number((await lines.read()).value);
  const accepted = listener[Symbol.asyncIterator]().next();
  const upstream = await sockets.connect({ hostname: "127.0.0.1", port: serverPort });
  try {
    return { front: (await accepted).value as Conn, upstream };
  } catch (err) {
    upstream.close();
    throw err;
  }
}
