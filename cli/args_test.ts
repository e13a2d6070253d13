import assert from "node:assert/strict";
import {
  parseBytes,
  parseDurationMs,
  parseFlags,
  parseHost,
  parseHostPort,
  parseInteger,
  parsePort,
  takeIoFlag,
} from "./args.ts";
import { UsageError } from "./errors.ts";

/** Asserts that `fn` throws a UsageError whose message is exactly `message`. */
function assertUsageError(fn: () => unknown, message: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof UsageError, `expected a UsageError, got ${err}`);
    assert.equal(err.message, message);
    return true;
  });
}

Deno.test("parsePort() accepts 1..65535, and 0 only when asked", () => {
  const ok: [string, boolean, number][] = [
    ["1", false, 1],
    ["20000", false, 20000],
    ["65535", false, 65535],
    ["0", true, 0],
    ["00080", false, 80],
  ];
  for (const [text, allowZero, port] of ok) {
    assert.equal(parsePort(text, "--port", allowZero), port);
  }
  const bad: [string, boolean, string][] = [
    ["0", false, 'Cannot use --port "0": expected a port in 1..65535'],
    ["65536", true, 'Cannot use --port "65536": expected a port in 0..65535'],
    ["", false, 'Cannot parse --port "": expected a port number'],
    ["-1", false, 'Cannot parse --port "-1": expected a port number'],
    ["80x", false, 'Cannot parse --port "80x": expected a port number'],
    ["8.0", false, 'Cannot parse --port "8.0": expected a port number'],
    ["123456", false, 'Cannot parse --port "123456": expected a port number'],
  ];
  for (const [text, allowZero, message] of bad) {
    assertUsageError(() => parsePort(text, "--port", allowZero), message);
  }
});

Deno.test("parseHost() takes names and IP literals and strips IPv6 brackets", () => {
  const cases: [string, string][] = [
    ["127.0.0.1", "127.0.0.1"],
    ["localhost", "localhost"],
    ["chat-1.example.com", "chat-1.example.com"],
    ["::1", "::1"],
    ["[::1]", "::1"],
    ["[fe80::1%eth0]", "fe80::1%eth0"],
    ["::", "::"],
  ];
  for (const [text, host] of cases) assert.equal(parseHost(text, "<server>"), host);
  for (const text of ["", "[]", "a b", "http://x", "10010", "[::1", "::1]"]) {
    assertUsageError(
      () => parseHost(text, "<server>"),
      `Cannot parse <server> "${text}": expected a host name or IP address`,
    );
  }
});

Deno.test("parseHostPort() reads host:port, [ipv6]:port and :port", () => {
  const cases: [string, string, number][] = [
    ["127.0.0.1:10010", "127.0.0.1", 10010],
    ["localhost:1", "localhost", 1],
    ["[::1]:20000", "::1", 20000],
    [":8080", "0.0.0.0", 8080],
  ];
  for (const [text, hostname, port] of cases) {
    assert.deepEqual(parseHostPort(text, "--admin"), { hostname, port });
  }
  for (const text of ["127.0.0.1", "::1:80", "host:", "host:port", "[::1]80"]) {
    assertUsageError(
      () => parseHostPort(text, "--admin"),
      `Cannot parse --admin "${text}": expected host:port`,
    );
  }
  assertUsageError(
    () => parseHostPort("h:70000", "--admin"),
    'Cannot use --admin "h:70000": expected a port in 1..65535',
  );
});

Deno.test("parseDurationMs() reads ms, s, m, h and bare seconds", () => {
  const cases: [string, number][] = [
    ["500ms", 500],
    ["5s", 5000],
    ["5", 5000],
    ["1.5m", 90_000],
    ["2h", 7_200_000],
    [" 200ms ", 200],
  ];
  for (const [text, ms] of cases) assert.equal(parseDurationMs(text, "--hc-interval"), ms);
  assert.equal(parseDurationMs("0", "--grace", true), 0);
  assertUsageError(
    () => parseDurationMs("0s", "--hc-interval"),
    'Cannot use --hc-interval "0s": expected a duration above zero',
  );
  for (const text of ["", "5 s", "-1s", "5d", "s", "1e3"]) {
    assertUsageError(
      () => parseDurationMs(text, "--hc-interval"),
      `Cannot parse --hc-interval "${text}": expected a duration such as 500ms, 5s or 2m`,
    );
  }
});

Deno.test("parseBytes() reads plain bytes and k, m, g units in any case", () => {
  const cases: [string, number][] = [
    ["4096", 4096],
    ["64k", 65536],
    ["64KiB", 65536],
    ["1m", 1048576],
    ["1MB", 1048576],
    ["1g", 1073741824],
    ["10b", 10],
  ];
  for (const [text, bytes] of cases) assert.equal(parseBytes(text, "--max-line"), bytes);
  assertUsageError(
    () => parseBytes("0", "--max-line"),
    'Cannot use --max-line "0": expected a size above zero',
  );
  for (const text of ["", "1.5m", "-1", "12 parsecs"]) {
    assertUsageError(
      () => parseBytes(text, "--max-line"),
      `Cannot parse --max-line "${text}": expected a size such as 4096, 64KiB or 1MiB`,
    );
  }
});

Deno.test("parseInteger() reads whole numbers within bounds", () => {
  assert.equal(parseInteger("3", "--hc-fall", 1, 1000), 3);
  assert.equal(parseInteger("1000", "--hc-fall", 1, 1000), 1000);
  assertUsageError(
    () => parseInteger("0", "--hc-fall", 1, 1000),
    'Cannot use --hc-fall "0": expected 1..1000',
  );
  assertUsageError(
    () => parseInteger("-2", "--hc-fall", 1, 1000),
    'Cannot use --hc-fall "-2": expected 1..1000',
  );
  for (const text of ["", "1.5", "three", "3x"]) {
    assertUsageError(
      () => parseInteger(text, "--hc-fall", 1, 1000),
      `Cannot parse --hc-fall "${text}": expected a whole number`,
    );
  }
});

Deno.test("parseFlags() returns flags and positionals, and one-line errors for misuse", () => {
  const spec = { port: { type: "string" }, help: { type: "boolean", short: "h" } } as const;
  const { values, positionals } = parseFlags(["a", "--port", "1", "b", "-h"], spec);
  assert.deepEqual({ ...values }, { port: "1", help: true });
  assert.deepEqual(positionals, ["a", "b"]);
  assert.deepEqual({ ...parseFlags(["--port=2"], spec).values }, { port: "2" });
  assertUsageError(() => parseFlags(["--prot", "1"], spec), "Unknown flag --prot");
  assertUsageError(() => parseFlags(["-x"], spec), "Unknown flag -x");
  assertUsageError(() => parseFlags(["--port"], spec), "Missing or bad value for --port");
});

Deno.test("takeIoFlag() takes --io out of the arguments, in either form", () => {
  assert.deepEqual(takeIoFlag(["10010", "--io", "runtime", "--port", "1"]), {
    io: "runtime",
    rest: ["10010", "--port", "1"],
  });
  assert.deepEqual(takeIoFlag(["--io=epoll"]), { io: "epoll", rest: [] });
  assert.deepEqual(takeIoFlag(["a", "b"]), { io: "auto", rest: ["a", "b"] });
  assertUsageError(
    () => takeIoFlag(["--io", "iouring"]),
    'Cannot parse --io "iouring": expected auto, uring, epoll, runtime',
  );
  assertUsageError(() => takeIoFlag(["--io"]), "Missing value of --io");
});
