/**
 * l4chat against programs nobody here wrote: OpenBSD netcat as a chat client, curl through
 * the load balancer, and HAProxy on either side of the PROXY protocol. `.ci/run` installs
 * them (netcat-openbsd, haproxy, curl) when missing.
 */
import assert from "node:assert/strict";
import {
  connectFrom,
  deadline,
  EchoBackend,
  L4chat,
  RawClient,
  startClnt,
  startLb,
  startServ,
} from "./_helpers.ts";

const encoder = new TextEncoder();

/** Starts an external program with piped stdio; fails clearly when it is not installed. */
function spawn(cmd: string, args: string[]): Deno.ChildProcess {
  try {
    return new Deno.Command(cmd, { args, stdin: "piped", stdout: "piped", stderr: "piped" })
      .spawn();
  } catch (err) {
    throw new Error(`${cmd} is needed for this test (.ci/run installs it): ${err}`);
  }
}

async function stop(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch {
    // Already gone.
  }
  await child.stdin.close().catch(() => {});
  const cancel = (stream: ReadableStream) => stream.locked ? undefined : stream.cancel();
  await Promise.all([cancel(child.stdout), cancel(child.stderr), child.status]);
}

/** A free port on 127.0.0.1 (bound and released at once). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * Runs HAProxy in the foreground with one TCP `listen` section (`listen` is its body); resolves
 * once it accepts on `port`.
 */
async function startHaproxy(listen: string, port: number) {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/haproxy.cfg`;
  await Deno.writeTextFile(
    file,
    `global
  nbthread 1
defaults
  mode tcp
  timeout connect 2s
  timeout client 30s
  timeout server 30s
${listen}`,
  );
  const child = spawn("haproxy", ["-f", file, "-db"]);
  await deadline(
    (async () => {
      while (true) {
        try {
          (await Deno.connect({ hostname: "127.0.0.1", port })).close();
          return;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
    })(),
    10_000,
    "haproxy did not start listening",
  );
  return {
    async [Symbol.asyncDispose]() {
      await stop(child);
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("OpenBSD netcat chats with l4chat clnt through serv, both ways", async () => {
  const { proc: serv, port } = await startServ();
  await using _serv = serv;
  const nc = spawn("nc", ["127.0.0.1", String(port)]);
  try {
    await serv.stderr.waitFor(/Connected client IP/);
    await using jin = startClnt(port, "jin");
    await serv.stderr.waitForCount(/Connected client IP/, 2);
    const writer = nc.stdin.getWriter();
    await writer.write(encoder.encode("[nc] 안녕 from netcat\n"));
    await jin.stdout.waitFor(/^\[nc\] 안녕 from netcat$/);
    await jin.type("hi netcat\n");
    const reader = nc.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    await deadline(
      (async () => {
        while (!seen.includes("[jin] hi netcat\n")) {
          const { value, done } = await reader.read();
          if (done) break;
          seen += value;
        }
      })(),
      10_000,
      "netcat never printed jin's line",
    );
    assert.match(seen, /\[nc\] 안녕 from netcat\n\[jin\] hi netcat\n/);
    await reader.cancel();
    writer.releaseLock();
  } finally {
    await stop(nc);
  }
});

Deno.test("curl downloads 8 MiB byte-exact through lb from an HTTP backend", async () => {
  const body = new Uint8Array(8 * 1024 * 1024).map((_, i) => (i * 31 + (i >> 11)) & 0xff);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", body));
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response(body),
  );
  try {
    const { proc: lb, port } = await startLb([server.addr.port]);
    await using _lb = lb;
    const out = await deadline(
      new Deno.Command("curl", {
        args: ["-sS", "--fail", "-o", "-", `http://127.0.0.1:${port}/`],
        stdout: "piped",
        stderr: "piped",
      }).output(),
      30_000,
      "curl did not finish",
    );
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const got = new Uint8Array(await crypto.subtle.digest("SHA-256", out.stdout));
    assert.deepEqual(got, digest);
    await lb.stderr.waitFor(/Current NAT table length : 0/, { from: 1 });
  } finally {
    await server.shutdown();
  }
});

Deno.test("serv --accept-proxy reads the real client IP from HAProxy's send-proxy-v2", async () => {
  const { proc: serv, port: servPort } = await startServ(["--accept-proxy"]);
  await using _serv = serv;
  const port = freePort();
  await using _haproxy = await startHaproxy(
    `listen chat
  bind 127.0.0.1:${port}
  server s1 127.0.0.1:${servPort} send-proxy-v2
`,
    port,
  );
  const socket = await connectFrom("127.0.0.2", port);
  try {
    await serv.stderr.waitFor(/Connected client IP: 127\.0\.0\.2$/);
    const echoed = new Promise<string>((resolve) => socket.once("data", (d) => resolve(String(d))));
    socket.write("[jin] through haproxy\n");
    assert.equal(await deadline(echoed, 10_000, "no echo"), "[jin] through haproxy\n");
  } finally {
    socket.destroy();
  }
});

for (const version of ["v1", "v2"]) {
  Deno.test(`HAProxy with accept-proxy takes lb --send-proxy ${version}`, async () => {
    // An echo backend behind HAProxy: it answers only if HAProxy accepted the header.
    await using echo = new EchoBackend();
    const port = freePort();
    await using _haproxy = await startHaproxy(
      `listen proxied
  bind 127.0.0.1:${port} accept-proxy
  server echo ${echo.addr}
`,
      port,
    );
    const { proc: lb, port: lbPort } = await startLb([port], ["--send-proxy", version]);
    await using _lb = lb;
    using client = await RawClient.connect(lbPort);
    await client.send("ping through two proxies\n");
    assert.equal(await client.readLine(), "ping through two proxies");
  });
}

Deno.test("l4chat --version works as the release binaries run it", async () => {
  await using version = new L4chat(["--version"]);
  assert.equal(await version.exited(), 0);
});
