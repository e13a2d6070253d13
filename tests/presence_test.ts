import assert from "node:assert/strict";
import { RawClient, startClnt, startServ } from "./_helpers.ts";

Deno.test("serv announces joins and leaves with the number online", async () => {
  const { proc: serv, port } = await startServ(["--presence-delay", "0ms"]);
  await using _serv = serv;
  await using jin = startClnt(port, "jin");
  await jin.stdout.waitFor(/^\* 127\.0\.0\.1:\d+ joined, 1 online$/);
  await using susu = startClnt(port, "susu");
  const [, susuAddr] = await susu.stdout.waitFor(/^\* (127\.0\.0\.1:\d+) joined, 2 online$/);
  await jin.stdout.waitFor(new RegExp(`^\\* ${susuAddr.replaceAll(".", "\\.")} joined, 2 online$`));
  await susu.type("q\n");
  assert.equal(await susu.exited(), 0);
  await jin.stdout.waitFor(
    new RegExp(`^\\* ${susuAddr.replaceAll(".", "\\.")} left, 1 online$`),
  );
});

Deno.test("serv does not announce a connection that closes before --presence-delay", async () => {
  const { proc: serv, port } = await startServ(["--presence-delay", "3s"]);
  await using _serv = serv;
  await using jin = startClnt(port, "jin");
  await jin.stdout.waitFor(/^\* 127\.0\.0\.1:\d+ joined, 1 online$/);
  // A load balancer's health check: connect, close.
  const mark = serv.stderr.mark;
  const probe = await RawClient.connect(port);
  const probePort = (probe.conn.localAddr as Deno.NetAddr).port;
  probe[Symbol.dispose]();
  await serv.stderr.waitFor(/client \d+ terminated/, { from: mark });
  await using susu = startClnt(port, "susu");
  await jin.stdout.waitFor(/^\* 127\.0\.0\.1:\d+ joined, 2 online$/);
  assert.equal(jin.stdout.count(new RegExp(`:${probePort} `)), 0);
  await susu.type("q\n");
  await jin.stdout.waitFor(/^\* 127\.0\.0\.1:\d+ left, 1 online$/);
});
