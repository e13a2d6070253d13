import assert from "node:assert/strict";
import { startClnt, startLb, startServ } from "./_helpers.ts";

Deno.test("clnt --reconnect: a dropped connection comes back through lb on a live server", async () => {
  const s1 = await startServ(["--presence", "off"]);
  const s2 = await startServ(["--presence", "off"]);
  await using _s1 = s1.proc;
  await using _s2 = s2.proc;
  const { proc: lb, port: lbPort } = await startLb([s1.port, s2.port]);
  await using _lb = lb;
  const mark = lb.stderr.mark;
  await using clnt = startClnt(lbPort, "jin", [
    "--reconnect",
    "--reconnect-min",
    "100ms",
    "--reconnect-max",
    "1s",
  ]);
  const [, backend] = await lb.stderr.waitFor(/client \S+ -> 127\.0\.0\.1:(\d+)$/, { from: mark });
  await clnt.type("first\n");
  await clnt.stdout.waitFor(/^\[jin\] first$/);

  const [dead, alive] = Number(backend) === s1.port ? [s1, s2] : [s2, s1];
  const mark2 = lb.stderr.mark;
  dead.proc.kill("SIGKILL");
  await clnt.stdout.waitFor(
    new RegExp(`^\\* connection lost: reconnecting to 127\\.0\\.0\\.1:${lbPort} \\.\\.\\.$`),
  );
  await clnt.stdout.waitFor(new RegExp(`^\\* reconnected to 127\\.0\\.0\\.1:${lbPort}$`));
  await clnt.type("second\n");
  await clnt.stdout.waitFor(/^\[jin\] second$/);
  // It landed on the live server, and never said "Server disconnected".
  await lb.stderr.waitFor(new RegExp(`client \\S+ -> 127\\.0\\.0\\.1:${alive.port}$`), {
    from: mark2,
  });
  assert.equal(clnt.stdout.count(/Server disconnected/), 0);
  await clnt.type("q\n");
  assert.equal(await clnt.exited(), 0);
});

Deno.test("clnt --reconnect: lines typed while away are not sent, and q still quits", async () => {
  const serv = await startServ(["--presence", "off"]);
  await using _serv = serv.proc;
  await using clnt = startClnt(serv.port, "jin", [
    "--reconnect",
    "--reconnect-min",
    "50ms",
    "--reconnect-max",
    "200ms",
  ]);
  await serv.proc.stderr.waitFor(/Connected client IP/);
  serv.proc.kill("SIGKILL");
  await clnt.stdout.waitFor(/^\* connection lost: reconnecting to /);
  // Typed while away: not sent, and the user is told.
  await clnt.type("lost line\n");
  await clnt.stdout.waitFor(/^\* not connected: line not sent$/);
  await clnt.type("q\n");
  assert.equal(await clnt.exited(), 0);
  assert.equal(clnt.stdout.count(/reconnected/), 0);
});
