import assert from "node:assert/strict";
import { L4chat, RawClient, startClnt, startServ } from "./_helpers.ts";

Deno.test("serv relays each line to every client, the sender included", async () => {
  const { proc: serv, port } = await startServ();
  await using _serv = serv;
  await using jin = startClnt(port, "jin");
  await serv.stderr.waitFor(/Connected client IP: 127\.0\.0\.1/);
  const mark = serv.stderr.mark;
  await using sujungwef = startClnt(port, "sujungwef");
  await serv.stderr.waitFor(/Connected client IP: 127\.0\.0\.1/, { from: mark });
  await jin.type("hello\n");
  await jin.stdout.waitFor(/^\[jin\] hello$/);
  await sujungwef.stdout.waitFor(/^\[jin\] hello$/);
  await sujungwef.type("hi jins\n");
  await jin.stdout.waitFor(/^\[sujungwef\] hi jins$/);
  await sujungwef.stdout.waitFor(/^\[sujungwef\] hi jins$/);
  await jin.type("q\n");
  assert.equal(await jin.exited(), 0);
  await serv.stderr.waitFor(/client \d+ terminated/);
});

Deno.test("clnt prints Server disconnected ... and exits 1 when the server goes away", async () => {
  const { proc: serv, port } = await startServ();
  await using _serv = serv;
  await using clnt = startClnt(port, "jin");
  await serv.stderr.waitFor(/Connected client IP/);
  serv.kill("SIGKILL");
  await clnt.stdout.waitFor(/^Server disconnected \.\.\.$/);
  assert.equal(await clnt.exited(), 1);
});

Deno.test("serv relays Korean names and messages byte for byte", async () => {
  const { proc: serv, port } = await startServ();
  await using _serv = serv;
  using raw = await RawClient.connect(port);
  await serv.stderr.waitFor(/Connected client IP/);
  await raw.send("[진수] 안녕하세요 😀\n");
  assert.equal(await raw.readLine(), "[진수] 안녕하세요 😀");
});

Deno.test("clnt with a bad port prints one line and the usage, exit 2", async () => {
  await using clnt = new L4chat(["clnt", "127.0.0.1", "70000", "jin"]);
  assert.equal(await clnt.exited(), 2);
  assert.deepEqual(clnt.stderr.lines, [
    'l4chat clnt: Cannot use <port> "70000": expected a port in 1..65535',
    "usage: l4chat clnt <host> <port> <name> [options]",
  ]);
});
