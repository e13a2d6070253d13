import assert from "node:assert/strict";
import { UsageError } from "../cli/errors.ts";
import { parseServArgs } from "./serv_cli.ts";

Deno.test("parseServArgs() turns presence on and Redis off by default", () => {
  const { options, redis } = parseServArgs(["10010"]);
  assert.equal(options.presence, true);
  assert.equal(redis, undefined);
  assert.equal(parseServArgs(["10010", "--presence", "off"]).options.presence, false);
});

Deno.test("parseServArgs() reads --redis and its companions with their defaults", () => {
  assert.deepEqual(parseServArgs(["0", "--redis", "redis://127.0.0.1:6379"]).redis, {
    url: "redis://127.0.0.1:6379",
    displayUrl: "redis://127.0.0.1:6379",
    channel: "l4chat",
    presenceTtlMs: 30_000,
    connectTimeoutMs: 2000,
    retryMaxMs: 5000,
  });
  const { redis } = parseServArgs([
    "0",
    "--redis",
    "redis://:secret@cache.local/2",
    "--channel",
    "room-7",
    "--presence-ttl",
    "10s",
    "--redis-timeout",
    "500ms",
    "--redis-retry-max",
    "1m",
  ]);
  assert.deepEqual(redis, {
    url: "redis://:secret@cache.local/2",
    displayUrl: "redis://:***@cache.local/2",
    channel: "room-7",
    presenceTtlMs: 10_000,
    connectTimeoutMs: 500,
    retryMaxMs: 60_000,
  });
});

Deno.test("parseServArgs() rejects bad cluster flags with one clear message", () => {
  const cases: [string[], string][] = [
    [
      ["--redis", "localhost:6379"],
      'Cannot parse --redis "localhost:6379": expected redis://host:port',
    ],
    [
      ["--redis", "http://h:6379"],
      'Cannot parse --redis "http://h:6379": expected redis://host:port',
    ],
    [["--redis", "redis://"], 'Cannot parse --redis "redis://": expected a host after redis://'],
    [
      ["--redis", "redis://h:99999"],
      'Cannot parse --redis "redis://h:99999": expected redis://host:port',
    ],
    [
      ["--redis", "redis://:pw@h/x"],
      'Cannot parse --redis "redis://:***@h/x": expected a database number such as /0 after the port',
    ],
    [
      ["--redis", "redis://h?x=1"],
      'Cannot parse --redis "redis://h?x=1": expected no query or fragment',
    ],
    [["--channel", "x"], "Cannot use --channel without --redis"],
    [["--presence-ttl", "5s"], "Cannot use --presence-ttl without --redis"],
    [
      ["--redis", "redis://h", "--channel", "a b"],
      'Cannot use --channel "a b": expected 1..200 printable ASCII characters, no spaces',
    ],
    [["--presence", "yes"], 'Cannot use --presence "yes": expected on or off'],
    [
      ["--redis", "redis://h", "--presence-ttl", "0"],
      'Cannot use --presence-ttl "0": expected a duration above zero',
    ],
  ];
  for (const [args, message] of cases) {
    assert.throws(() => parseServArgs(["0", ...args]), (err: unknown) => {
      assert.ok(err instanceof UsageError, `${args.join(" ")}: ${err}`);
      assert.equal(err.message, message);
      return true;
    });
  }
});
