import assert from "node:assert/strict";
import { L4chat, RawClient, startClnt, startLb, startServ } from "./_helpers.ts";
import { RedisServer } from "./_redis.ts";

/** redis-server has no Windows build. */
const NO_REDIS = { ignore: Deno.build.os === "windows" };

const SUBSCRIBED = /cluster: server \S+ subscribed to (\S+) on/;
const SUBSCRIBED_ID = /cluster: server (\S+) subscribed to/;

/** Starts `count` servers sharing `redis`, each waited for until it is subscribed. */
async function startCluster(redis: RedisServer, count: number, args: string[] = []) {
  const servers = [];
  for (let i = 0; i < count; i++) {
    const server = await startServ(["--redis", redis.url, "--redis-retry-max", "300ms", ...args]);
    servers.push(server);
    await server.proc.stderr.waitFor(SUBSCRIBED);
  }
  return servers;
}

/** Starts a client of the server `serv` and waits until that server has it in its room. */
async function joinServer(serv: L4chat, port: number, name: string): Promise<L4chat> {
  const mark = serv.stderr.mark;
  const clnt = startClnt(port, name);
  await serv.stderr.waitFor(/Connected client IP/, { from: mark });
  return clnt;
}

/**
 * Connects clients through the load balancer one at a time and returns them with the port
 * of the server each landed on (from the load balancer's log), each once that server has it
 * in its room. The load balancer must not be health-checking meanwhile (`--hc-interval 1h`):
 * a check would look like a client to the server.
 */
async function joinThroughLb(
  lb: L4chat,
  lbPort: number,
  servers: { proc: L4chat; port: number }[],
  names: string[],
) {
  const clients: { name: string; clnt: L4chat; backend: number }[] = [];
  for (const name of names) {
    const lbMark = lb.stderr.mark;
    const servMarks = servers.map(({ proc }) => proc.stderr.mark);
    const clnt = startClnt(lbPort, name);
    const match = await lb.stderr.waitFor(/client \S+ -> 127\.0\.0\.1:(\d+)$/, { from: lbMark });
    const backend = Number(match[1]);
    const index = servers.findIndex((s) => s.port === backend);
    await servers[index].proc.stderr.waitFor(/Connected client IP/, { from: servMarks[index] });
    clients.push({ name, clnt, backend });
  }
  return clients;
}

/** Lines of `clnt`'s output that are chat lines (not `* ` notices). */
function chatLines(clnt: L4chat): string[] {
  return clnt.stdout.lines.filter((line) => line.startsWith("["));
}

async function everyoneSeesEveryLineOnce(serverCount: number, linesEach: number) {
  await using redis = await RedisServer.start();
  const servers = await startCluster(redis, serverCount);
  const { proc: lb, port: lbPort } = await startLb(servers.map((s) => s.port), [
    "--hc-interval",
    "1h",
  ]);
  await using _lb = lb;
  // The first health checks run at start; let them come and go before clients join.
  for (const { proc } of servers) await proc.stderr.waitFor(/client \d+ terminated/);
  const names = Array.from({ length: serverCount * 2 }, (_, i) => `user${i}`);
  const clients = await joinThroughLb(lb, lbPort, servers, names);
  try {
    // Round robin gave every server two clients: without the cluster they could not talk.
    assert.deepEqual(
      new Set(clients.map((c) => c.backend)),
      new Set(servers.map((s) => s.port)),
    );
    const expected: string[] = [];
    await Promise.all(clients.map(async ({ name, clnt }) => {
      let text = "";
      for (let i = 0; i < linesEach; i++) text += `line ${i} from ${name} 안녕\n`;
      await clnt.type(text);
    }));
    for (const { name } of clients) {
      for (let i = 0; i < linesEach; i++) expected.push(`[${name}] line ${i} from ${name} 안녕`);
    }
    // A last line from each client, after all the others: once a client has seen them all,
    // every line before them (same sender, same order) has arrived too.
    for (const { name, clnt } of clients) await clnt.type(`done ${name}\n`);
    for (const { clnt } of clients) {
      for (const { name } of clients) await clnt.stdout.waitFor(new RegExp(`^\\[${name}\\] done`));
    }
    for (const { name, clnt } of clients) {
      const seen = chatLines(clnt);
      for (const line of expected) {
        assert.equal(seen.filter((l) => l === line).length, 1, `${name} saw "${line}" once`);
      }
      assert.equal(seen.length, expected.length + clients.length, `${name} saw nothing else`);
      // Each sender's lines arrive in the order sent, whichever server relayed them.
      for (const sender of clients) {
        const own = seen.filter((l) => l.startsWith(`[${sender.name}] line `));
        assert.deepEqual(
          own,
          expected.filter((l) => l.startsWith(`[${sender.name}] line `)),
          `${name} got ${sender.name}'s lines in order`,
        );
      }
    }
  } finally {
    for (const { clnt } of clients) await clnt[Symbol.asyncDispose]();
    for (const { proc } of servers) await proc[Symbol.asyncDispose]();
  }
}

Deno.test(
  "serv --redis: two servers behind lb, every client sees every line once, in order",
  NO_REDIS,
  async () => {
    await everyoneSeesEveryLineOnce(2, 20);
  },
);

Deno.test(
  "serv --redis: three servers behind lb, every client sees every line once, in order",
  NO_REDIS,
  async () => {
    await everyoneSeesEveryLineOnce(3, 20);
  },
);

Deno.test("serv --redis: presence counts are cluster-wide", NO_REDIS, async () => {
  await using redis = await RedisServer.start();
  const [s1, s2] = await startCluster(redis, 2, ["--presence-delay", "0ms"]);
  await using _s1 = s1.proc;
  await using _s2 = s2.proc;
  await using alice = startClnt(s1.port, "alice");
  await alice.stdout.waitFor(/^\* 127\.0\.0\.1:\d+ joined, 1 online$/);
  await using bob = startClnt(s2.port, "bob");
  // Bob's server counts alice's too, and alice (on the other server) hears of bob.
  const joined = await bob.stdout.waitFor(/^\* (127\.0\.0\.1:\d+) joined, 2 online$/);
  await alice.stdout.waitFor(
    new RegExp(`^\\* ${joined[1].replaceAll(".", "\\.")} joined, 2 online$`),
  );
  await bob.type("q\n");
  assert.equal(await bob.exited(), 0);
  await alice.stdout.waitFor(/^\* 127\.0\.0\.1:\d+ left, 1 online$/);
  // A server that stops takes its clients out of the count.
  const beforeCarol = alice.stdout.mark;
  await using carol = startClnt(s2.port, "carol");
  await alice.stdout.waitFor(/^\* 127\.0\.0\.1:\d+ joined, 2 online$/, { from: beforeCarol });
  s2.proc.kill("SIGTERM");
  assert.equal(await s2.proc.exited(), 0);
  assert.equal(await carol.exited(), 1);
  const mark = alice.stdout.mark;
  await using dave = startClnt(s1.port, "dave");
  await dave.stdout.waitFor(/^\* 127\.0\.0\.1:\d+ joined, 2 online$/);
  await alice.stdout.waitFor(/^\* 127\.0\.0\.1:\d+ joined, 2 online$/, { from: mark });
});

Deno.test(
  "serv --redis: Redis killed and restarted, local chat goes on, cluster delivery resumes",
  NO_REDIS,
  async () => {
    await using redis = await RedisServer.start();
    const [s1, s2] = await startCluster(redis, 2, ["--presence", "off"]);
    const [, s2Id] = [s1, s2].map(({ proc }) =>
      proc.stderr.lines.join("\n").match(SUBSCRIBED_ID)![1]
    );
    await using _s1 = s1.proc;
    await using _s2 = s2.proc;
    await using a1 = await joinServer(s1.proc, s1.port, "a1");
    await using a2 = await joinServer(s1.proc, s1.port, "a2");
    await using b = await joinServer(s2.proc, s2.port, "b");
    await b.type("before\n");
    for (const clnt of [a1, a2, b]) await clnt.stdout.waitFor(/^\[b\] before$/);

    await redis.kill();
    for (const { proc } of [s1, s2]) await proc.stderr.waitFor(/redis \S+ unreachable/);
    await a1.type("during the outage\n");
    await a1.stdout.waitFor(/^\[a1\] during the outage$/);
    await a2.stdout.waitFor(/^\[a1\] during the outage$/);
    await b.type("b alone\n");
    await b.stdout.waitFor(/^\[b\] b alone$/);

    await redis.restart();
    for (const { proc } of [s1, s2]) {
      await proc.stderr.waitFor(/redis \S+ back: cluster delivery resumed on l4chat \(1 lines/);
    }
    await b.type("after\n");
    await a1.type("after too\n");
    for (const clnt of [a1, a2, b]) {
      await clnt.stdout.waitFor(/^\[b\] after$/);
      await clnt.stdout.waitFor(/^\[a1\] after too$/);
    }
    // What was said during the outage stayed on its server, and nothing came twice.
    assert.equal(b.stdout.count(/during the outage/), 0);
    assert.equal(a1.stdout.count(/b alone/), 0);
    for (const clnt of [a1, a2, b]) {
      assert.equal(clnt.stdout.count(/^\[b\] before$/), 1);
      assert.equal(clnt.stdout.count(/^\[b\] after$/), 1);
    }
    // s1 had heard from s2 before ("before"), so it knows it missed "b alone".
    await s1.proc.stderr.waitFor(new RegExp(`missed 1 lines of server ${s2Id}`));
    // The outage was logged once per server, however many reconnects failed.
    for (const { proc } of [s1, s2]) {
      assert.equal(proc.stderr.count(/redis \S+ unreachable/), 1, proc.stderr.lines.join("\n"));
    }
  },
);

Deno.test(
  "serv --redis starts without Redis, chats locally and joins once Redis is up",
  NO_REDIS,
  async () => {
    await using redis = await RedisServer.start();
    const port = redis.port;
    await redis.kill();
    const { proc: serv, port: servPort } = await startServ([
      "--redis",
      `redis://127.0.0.1:${port}`,
      "--redis-timeout",
      "200ms",
      "--redis-retry-max",
      "300ms",
      "--presence",
      "off",
    ]);
    await using _serv = serv;
    await serv.stderr.waitFor(/redis \S+ unreachable .*chat stays local to this server, retrying/);
    using raw = await RawClient.connect(servPort);
    await raw.send("[raw] alone\n");
    assert.equal(await raw.readLine(), "[raw] alone");
    await redis.restart();
    await serv.stderr.waitFor(SUBSCRIBED);
    const [other] = await startCluster(redis, 1, ["--presence", "off"]);
    await using _other = other.proc;
    using raw2 = await RawClient.connect(other.port);
    await raw2.send("[raw2] together\n");
    assert.equal(await raw.readLine(), "[raw2] together");
  },
);

Deno.test("serv with a bad --redis URL prints one line and the usage, exit 2", async () => {
  await using serv = new L4chat(["serv", "0", "--redis", "localhost:6379"]);
  assert.equal(await serv.exited(), 2);
  assert.deepEqual(serv.stderr.lines, [
    'l4chat serv: Cannot parse --redis "localhost:6379": expected redis://host:port',
    "usage: l4chat serv <port> [--host ADDR] [options]",
  ]);
});
