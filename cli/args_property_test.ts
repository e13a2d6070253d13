import assert from "node:assert/strict";
import fc from "fast-check";
import { parseClntArgs } from "../chat/clnt_cli.ts";
import { parseServArgs } from "../chat/serv_cli.ts";
import { parseLbArgs } from "../lb/cli.ts";
import { SETTINGS } from "../lb/config.ts";
import { parseBytes, parseDurationMs, parseInteger } from "./args.ts";
import { UsageError } from "./errors.ts";

/** Longest delay a timer can take (2^31 - 1 ms); a longer one fires at once. */
const TIMER_MAX_MS = 2 ** 31 - 1;

/** Words a command line is made of: flags, values, hosts, numbers and junk. */
const word = fc.oneof(
  fc.constantFrom(
    ...SETTINGS.map((setting) => `--${setting.name}`),
    "--port",
    "--config",
    "--check",
    "--host",
    "--max-clients",
    "--max-line",
    "--max-output",
    "--accept-proxy",
    "--proxy-timeout",
    "--log-level",
    "--log-format",
    "--connect-timeout",
    "--",
    "-",
    "-x",
    "--port=0",
    "127.0.0.1",
    "[::1]",
    "::",
    "10010",
    "0",
    "65536",
    "5s",
    "500ms",
    "1e3",
    "-1",
    "debug",
    "json",
    "v1",
    "round-robin",
    "10010,weight=3",
    "1,weight=0",
    "1,state=drain,send-proxy=v2",
    "1,weight=1,weight=2",
    "9".repeat(400),
    `${"9".repeat(400)}ms`,
  ),
  fc.string({ maxLength: 12 }),
  fc.nat().map(String),
);
const argv = fc.array(word, { maxLength: 10 });

/** Runs `parse`; returns its result, or the error it threw, which must be a UsageError. */
function tryParse<T>(parse: (args: string[]) => T, args: string[]): T | UsageError {
  try {
    return parse(args);
  } catch (err) {
    assert.ok(err instanceof UsageError, `${JSON.stringify(args)} threw ${err}`);
    assert.ok(!err.message.includes("\n"), "one line");
    return err;
  }
}

/** Every number in `value` (deeply) is finite: nothing out of range slipped through. */
function assertFinite(value: unknown, path = ""): void {
  if (typeof value === "number") assert.ok(Number.isFinite(value), `${path} is ${value}`);
  else if (value !== null && typeof value === "object") {
    for (const [key, child] of Object.entries(value)) assertFinite(child, `${path}.${key}`);
  }
}

Deno.test("parseLbArgs(), parseServArgs(), parseClntArgs() throw only UsageError", () => {
  fc.assert(
    fc.property(argv, (args) => {
      for (const parse of [parseLbArgs, parseServArgs, parseClntArgs] as const) {
        const result = tryParse(parse as (args: string[]) => unknown, args);
        if (!(result instanceof UsageError)) assertFinite(result);
      }
    }),
    { numRuns: 2000 },
  );
});

Deno.test("the duration, size and number parsers accept nothing out of range", () => {
  const text = fc.oneof(
    fc.string({ unit: fc.constantFrom(..."0123456789.-+ emsh"), maxLength: 20 }),
    fc.bigInt({ min: 0n, max: 10n ** 30n }).map((n) => `${n}`),
    fc.tuple(
      fc.bigInt({ min: 0n, max: 10n ** 12n }),
      fc.constantFrom("ms", "s", "m", "h", "k", "g"),
    )
      .map(([n, unit]) => `${n}${unit}`),
  );
  fc.assert(
    fc.property(text, (value) => {
      const duration = tryParse(() => parseDurationMs(value, "--x", true), []);
      if (typeof duration === "number") {
        assert.ok(Number.isInteger(duration) && duration >= 0 && duration <= TIMER_MAX_MS, value);
      }
      const bytes = tryParse(() => parseBytes(value, "--x"), []);
      if (typeof bytes === "number") {
        assert.ok(Number.isSafeInteger(bytes) && bytes > 0, value);
      }
      const integer = tryParse(() => parseInteger(value, "--x", 0, 1000), []);
      if (typeof integer === "number") assert.ok(Number.isInteger(integer) && integer <= 1000);
    }),
    { numRuns: 2000 },
  );
});

/** Writes each flag as `--name value` or `--name=value`, in any order among the positionals. */
function spell(
  positionals: string[],
  flags: [string, string | true][],
  order: number[],
  joined: boolean[],
): string[] {
  const words = flags.map(([name, value], i) =>
    value === true ? [`--${name}`] : joined[i] ? [`--${name}=${value}`] : [`--${name}`, value]
  );
  const out: string[][] = positionals.map((positional) => [positional]);
  words.forEach((flag, i) => out.splice(order[i] % (out.length + 1), 0, flag));
  return out.flat();
}

const spelling = fc.record({
  order: fc.array(fc.nat(), { minLength: 8, maxLength: 8 }),
  joined: fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
});
const duration = fc.oneof(
  fc.integer({ min: 1, max: 100_000 }).map((n) => `${n}ms`),
  fc.integer({ min: 1, max: 1000 }).map((n) => `${n}s`),
);

Deno.test("parseServArgs() reads a valid command line the same however it is written", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 65535 }),
      fc.subarray([
        ["host", "127.0.0.1"],
        ["max-clients", "17"],
        ["max-line", "64KiB"],
        ["max-output", "2m"],
        ["accept-proxy", true],
        ["log-level", "debug"],
        ["log-format", "json"],
      ] as [string, string | true][]),
      duration,
      spelling,
      (port, flags, timeout, { order, joined }) => {
        const all: [string, string | true][] = [...flags, ["proxy-timeout", timeout]];
        const canonical = parseServArgs([
          String(port),
          ...all.flatMap(([n, v]) => v === true ? [`--${n}`] : [`--${n}`, v]),
        ]);
        const spelled = parseServArgs(spell([String(port)], all, order, joined));
        assert.deepEqual(spelled, canonical);
        assert.equal(canonical.options.listen.port, port);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("parseLbArgs() reads a valid command line the same however it is written", () => {
  const backend = fc.tuple(
    fc.oneof(fc.ipV4(), fc.constant("[::1]"), fc.constant("backend.example")),
    fc.integer({ min: 1, max: 65535 }),
    fc.option(fc.integer({ min: 1, max: 1000 }), { nil: undefined }),
  ).map((
    [host, port, weight],
  ) => [host, weight === undefined ? `${port}` : `${port},weight=${weight}`]);
  fc.assert(
    fc.property(
      fc.array(backend, { minLength: 1, maxLength: 4 }),
      fc.subarray([
        ["balance", "least-conn"],
        ["connect-tries", "5"],
        ["max-conns", "100"],
        ["idle-timeout", "0"],
        ["send-proxy", "v2"],
        ["log-level", "warn"],
      ] as [string, string | true][]),
      duration,
      spelling,
      (backends, flags, timeout, { order, joined }) => {
        const positionals = ["127.0.0.1", ...backends.flat()];
        const all: [string, string | true][] = [...flags, ["connect-timeout", timeout], [
          "port",
          "0",
        ]];
        const canonical = parseLbArgs([
          ...positionals,
          ...all.flatMap(([n, v]) => [`--${n}`, v as string]),
        ]);
        // Flags may sit anywhere among the positionals, but must not split a <server> <port> pair
        // from the parser's point of view: positionals keep their order either way.
        assert.deepEqual(parseLbArgs(spell(positionals, all, order, joined)), canonical);
        assert.equal(canonical.config.backends.length, backends.length);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("parseClntArgs() takes any name without a line break, and refuses the rest", () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 20 }), fc.integer({ min: 1, max: 65535 }), (name, port) => {
      const result = tryParse(parseClntArgs, ["127.0.0.1", String(port), name]);
      const valid = name.trim() !== "" && !/[\r\n]/.test(name) && !name.startsWith("-");
      if (valid) assert.ok(!(result instanceof UsageError), `refused ${JSON.stringify(name)}`);
      if (!(result instanceof UsageError)) {
        assert.equal(result.name, name);
        assert.equal(result.server.port, port);
      }
    }),
    { numRuns: 500 },
  );
});
