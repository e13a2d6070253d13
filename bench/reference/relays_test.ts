import assert from "node:assert/strict";
import { freePort } from "../_procs.ts";
import { buildC } from "../_contenders.ts";

/** Echoes each connection of `listener` back, then shuts its write side at the end of its stream. */
async function echoAll(listener: Deno.Listener): Promise<void> {
  const echo = async (conn: Deno.Conn) => {
    const buf = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        let sent = 0;
        while (sent < n) sent += await conn.write(buf.subarray(sent, n));
      }
      await conn.closeWrite();
    } catch {
      // A probe that went away.
    } finally {
      conn.close();
    }
  };
  try {
    for await (const conn of listener) echo(conn);
  } catch {
    // Closed.
  }
}

/** Resolves once `port` takes a connection, false if `exited` first or after `timeoutMs`. */
async function accepting(port: number, exited: Promise<unknown>, timeoutMs: number) {
  let gone = false;
  exited.then(() => gone = true);
  const deadline = Date.now() + timeoutMs;
  while (!gone && Date.now() < deadline) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return true;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  return false;
}

/** The path of the reference relay `file`. */
function relayPath(file: string): string {
  return new URL(`./${file}`, import.meta.url).pathname;
}

/** The C reference relay, built once with gcc (warnings are errors) into a temporary folder. */
let cRelay: Promise<string> | undefined;
function builtCRelay(): Promise<string> {
  cRelay ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "l4chat-c-relay-" });
    const binary = await buildC("c_relay.c", dir, "c_relay", ["-Wall", "-Werror"]);
    assert.ok(binary !== undefined, "gcc could not build c_relay.c (its error is above)");
    return binary;
  })();
  return cRelay;
}

/** A reference relay's command line, given its listening and backend ports. */
type RelayCommand = (ports: string[]) => Promise<[cmd: string, args: string[]]>;

const denoRelay = (file: string): RelayCommand => (ports) =>
  Promise.resolve([Deno.execPath(), ["run", "--quiet", "--allow-ffi", relayPath(file), ...ports]]);
const cRelayIn = (mode: string): RelayCommand => async (ports) => [
  await builtCRelay(),
  [...ports, mode],
];

const RELAYS: [string, RelayCommand][] = [
  ["uring_relay.ts", denoRelay("uring_relay.ts")],
  ["epoll_relay.ts", denoRelay("epoll_relay.ts")],
  ["c_relay.c copy", cRelayIn("copy")],
  ["c_relay.c splice", cRelayIn("splice")],
];

// The relays are Linux's: epoll, io_uring, splice(2), accept4(2).
const NOT_LINUX = { ignore: Deno.build.os !== "linux" };

for (const [name, command] of RELAYS) {
  Deno.test(
    `${name} relays both ways byte for byte, and passes on a half-close`,
    NOT_LINUX,
    async () => {
      const backend = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const echoing = echoAll(backend);
      const port = freePort();
      const [cmd, args] = await command([String(port), String(backend.addr.port)]);
      const relay = new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).spawn();
      const stderr = relay.stderr.pipeThrough(new TextDecoderStream()).getReader();
      try {
        if (!await accepting(port, relay.status, 15_000)) {
          const { value } = await stderr.read();
          // A kernel without io_uring (or a sandbox that forbids it) cannot run the reference.
          if (value?.includes("no io_uring")) return console.warn(value.trim());
          assert.fail(`the relay did not start: ${value}`);
        }
        const data = crypto.getRandomValues(new Uint8Array(65536));
        const sent = new Uint8Array(46 * data.length);
        for (let at = 0; at < sent.length; at += data.length) sent.set(data, at);
        sent[sent.length - 1] ^= 0xff;
        const client = await Deno.connect({ hostname: "127.0.0.1", port });
        // Read to the end of the stream, which closes the connection.
        const received = new Response(client.readable).bytes();
        let at = 0;
        while (at < sent.length) at += await client.write(sent.subarray(at));
        await client.closeWrite();
        // The echo comes back whole and then ends: the client's FIN went through, and the backend's.
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error("no end of the echo within 20 s")), 20_000);
        });
        try {
          assert.deepEqual(await Promise.race([received, late]), sent);
        } finally {
          clearTimeout(timer);
        }
      } finally {
        backend.close();
        await echoing;
        try {
          relay.kill("SIGKILL");
        } catch {
          // Already gone.
        }
        await relay.status;
        await stderr.cancel();
      }
    },
  );
}
