import assert from "node:assert/strict";
import { connectFrom, deadline, RawClient, startLb, startServ } from "./_helpers.ts";

for (const version of ["v1", "v2"]) {
  Deno.test(`serv --accept-proxy logs the real client IP sent by lb --send-proxy ${version}`, async () => {
    const { proc: serv, port: servPort } = await startServ(["--accept-proxy"]);
    await using _serv = serv;
    const { proc: lb, port } = await startLb([servPort], ["--send-proxy", version]);
    await using _lb = lb;
    // A client from a second loopback address: the server must name it, not the lb.
    const socket = await connectFrom("127.0.0.2", port);
    try {
      await serv.stderr.waitFor(/Connected client IP: 127\.0\.0\.2$/);
      const echoed = new Promise<string>((resolve) =>
        socket.once("data", (d) => resolve(String(d)))
      );
      socket.write("[jin] via proxy\n");
      assert.equal(await deadline(echoed, 10_000, "no echo"), "[jin] via proxy\n");
      assert.equal(serv.stderr.count(/Connected client IP: 127\.0\.0\.1$/), 0);
    } finally {
      socket.destroy();
    }
  });
}

const BAD_HEADERS: [string, string][] = [
  ["a malformed v1 header", "PROXY TCP4 1.2.3.4 nonsense\r\n"],
  ["a chat line instead of a header", "[jin] hello\n"],
  ["a header longer than the limit", `PROXY TCP4 ${"9".repeat(200)}`],
];

for (const [what, bytes] of BAD_HEADERS) {
  Deno.test(`serv --accept-proxy closes a connection that sends ${what}, others unharmed`, async () => {
    const { proc: serv, port } = await startServ(["--accept-proxy"]);
    await using _serv = serv;
    using good = await RawClient.connect(port);
    await good.send("PROXY TCP4 192.0.2.7 192.0.2.9 5555 20000\r\n");
    await serv.stderr.waitFor(/Connected client IP: 192\.0\.2\.7$/);
    using bad = await RawClient.connect(port);
    await bad.send(bytes);
    assert.equal(await bad.closedByPeer(), true);
    await serv.stderr.waitFor(/connection from 127\.0\.0\.1:\d+ closed: /);
    await good.send("[good] still here\n");
    assert.equal(await good.readLine(), "[good] still here");
  });
}

Deno.test("serv --accept-proxy closes a connection whose header never comes", async () => {
  const { proc: serv, port } = await startServ(["--accept-proxy", "--proxy-timeout", "300ms"]);
  await using _serv = serv;
  using silent = await RawClient.connect(port);
  assert.equal(await silent.closedByPeer(), true);
  await serv.stderr.waitFor(/closed: no PROXY header within 300 ms/);
});

Deno.test("serv without --accept-proxy relays a chat line that starts with PROXY", async () => {
  const { proc: serv, port } = await startServ();
  await using _serv = serv;
  using client = await RawClient.connect(port);
  await serv.stderr.waitFor(/Connected client IP: 127\.0\.0\.1$/);
  await client.send("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n");
  assert.equal(await client.readLine(), "PROXY TCP4 1.2.3.4 5.6.7.8 1 2");
});
