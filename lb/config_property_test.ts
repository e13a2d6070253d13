import assert from "node:assert/strict";
import fc from "fast-check";
import { JsoncSyntaxError, parseJsonc, toPlain } from "./_jsonc.ts";
import { BALANCERS } from "./balancers/mod.ts";
import {
  CONFIG_MAX_BYTES,
  defaultConfig,
  formatConfig,
  type LbConfig,
  parseConfigText,
} from "./config.ts";

/** Text over the characters JSON is made of, so that the parser gets deep before it fails. */
const jsonish = fc.string({
  unit: fc.constantFrom(...'{}[]":,0123456789-+.eE truefalsnul\\/*\n\t\r\u00e9'),
  maxLength: 80,
});

/** Text that is often nearly a config: a valid one with characters changed, cut or added. */
const nearConfig = fc.tuple(
  fc.jsonValue({ maxDepth: 3 }).map((value) =>
    JSON.stringify({ listen: "127.0.0.1:0", backends: ["127.0.0.1:1"], x: value }, null, 1)
  ),
  fc.array(fc.tuple(fc.nat(), fc.constantFrom(...'{}[]":,0-9 /*\nabc'))),
  fc.nat(),
).map(([text, changes, cut]) => {
  const chars = [...text];
  for (const [at, char] of changes) chars.splice(at % (chars.length + 1), 1, char);
  return chars.join("").slice(0, cut % (chars.length + 1));
});

const anyText = fc.oneof(fc.string({ maxLength: 200 }), jsonish, nearConfig);

/** Runs parseJsonc; returns the node, or the error, which must be a JsoncSyntaxError. */
function tryJsonc(text: string) {
  try {
    return parseJsonc(text);
  } catch (err) {
    assert.ok(err instanceof JsoncSyntaxError, `threw ${err}`);
    assert.ok(err.line >= 1 && err.column >= 1);
    return err;
  }
}

Deno.test("parseJsonc() throws only JsoncSyntaxError, with a position, whatever the text", () => {
  fc.assert(fc.property(anyText, (text) => void tryJsonc(text)), { numRuns: 2000 });
});

Deno.test("parseJsonc() agrees with JSON.parse on text without comments or trailing commas", () => {
  fc.assert(
    fc.property(fc.oneof(jsonish, fc.json({ maxDepth: 4 })), (text) => {
      // Comments and trailing commas are JSONC's additions; a BOM JSON.parse does not skip.
      fc.pre(!text.includes("/") && !/,\s*[\]}]/.test(text) && !text.includes("\uFEFF"));
      let expected: unknown;
      let valid = true;
      try {
        expected = JSON.parse(text);
      } catch {
        valid = false;
      }
      const node = tryJsonc(text);
      if (node instanceof JsoncSyntaxError) {
        // JSON.parse takes the last of duplicate keys; JSONC refuses them, as it refuses depth.
        assert.ok(!valid || /duplicate key|nested too deeply/.test(node.message), node.message);
      } else {
        assert.ok(valid, `accepted ${JSON.stringify(text)}`);
        assert.deepEqual(toPlain(node), expected);
      }
    }),
    { numRuns: 2000 },
  );
});

Deno.test("parseJsonc() reads JSON the same with comments and trailing commas added", () => {
  fc.assert(
    fc.property(
      fc.jsonValue({ maxDepth: 4 }),
      fc.array(fc.constantFrom(" ", "\n", "// c\n", "/* c */", "/**/", "\t"), { maxLength: 30 }),
      (value, fillers) => {
        // Fillers after every structural character, and a trailing comma after every last item.
        let i = 0;
        let text = "";
        let inString = false;
        let escaped = false;
        let opened = false;
        for (const char of JSON.stringify(value, null, 1)) {
          if (inString) {
            text += char;
            if (escaped) escaped = false;
            else if (char === "\\") escaped = true;
            else if (char === '"') inString = false;
            continue;
          }
          if ((char === "]" || char === "}") && !opened) text += ",";
          text += char;
          if (char === '"') inString = true;
          if ("{[,:".includes(char)) text += fillers[i++ % Math.max(fillers.length, 1)] ?? "";
          if (!/\s/.test(char)) opened = char === "{" || char === "[";
        }
        const node = parseJsonc(text);
        assert.deepEqual(toPlain(node), JSON.parse(JSON.stringify(value)));
      },
    ),
    { numRuns: 500 },
  );
});

Deno.test("parseConfigText() never throws, and reports each problem with a position", () => {
  fc.assert(
    fc.property(anyText, (text) => {
      const parsed = parseConfigText(text);
      if (parsed.ok) {
        assert.ok(parsed.config.backends.length > 0);
        return;
      }
      assert.ok(parsed.problems.length > 0);
      for (const problem of parsed.problems) {
        assert.ok(problem.line >= 1 && problem.column >= 1 && problem.message !== "");
      }
    }),
    { numRuns: 2000 },
  );
  assert.equal(parseConfigText(" ".repeat(CONFIG_MAX_BYTES + 1)).ok, false);
});

const ms = fc.integer({ min: 1, max: 3_600_000 });
const optionalMs = fc.oneof(fc.constant(0), ms);
const backendConfig = fc.record({
  addr: fc.record({
    hostname: fc.oneof(fc.ipV4(), fc.ipV6()),
    port: fc.integer({ min: 1, max: 65535 }),
  }),
  weight: fc.option(fc.integer({ min: 1, max: 1000 }), { nil: undefined }),
  state: fc.option(fc.constantFrom("ready", "drain", "maint" as const), { nil: undefined }),
  maxConn: fc.option(fc.integer({ min: 1, max: 10_000_000 }), { nil: undefined }),
  sendProxy: fc.option(fc.constantFrom(1 as const, 2 as const), { nil: undefined }),
}, { requiredKeys: ["addr"] });

const lbConfig: fc.Arbitrary<LbConfig> = fc.record({
  listen: fc.record({ hostname: fc.ipV4(), port: fc.integer({ min: 0, max: 65535 }) }),
  balance: fc.constantFrom(...Object.keys(BALANCERS)),
  connectTimeoutMs: ms,
  connectTries: fc.integer({ min: 1, max: 100 }),
  ackWaitMs: fc.integer({ min: 0, max: 200 }),
  finWaitMs: fc.integer({ min: 0, max: 200 }),
  hcIntervalMs: ms,
  hcTimeoutMs: ms,
  hcFall: fc.integer({ min: 1, max: 1000 }),
  hcRise: fc.integer({ min: 1, max: 1000 }),
  maxConns: fc.integer({ min: 0, max: 10_000_000 }),
  maxConnsPerIp: fc.integer({ min: 0, max: 10_000_000 }),
  idleTimeoutMs: optionalMs,
  maxLifetimeMs: optionalMs,
  slowstartMs: optionalMs,
  graceMs: optionalMs,
  workers: fc.integer({ min: 1, max: 64 }),
  sendProxy: fc.option(fc.constantFrom(1 as const, 2 as const), { nil: undefined }),
  backends: fc.uniqueArray(backendConfig, {
    minLength: 1,
    maxLength: 5,
    selector: (backend) => `${backend.addr.hostname}:${backend.addr.port}`,
  }),
});

/** `config` as parseConfigText gives it back: absent options stay absent, defaults dropped. */
function canonical(config: LbConfig): LbConfig {
  const backends = config.backends.map((backend) => {
    const out = { ...backend, addr: { ...backend.addr } };
    for (const key of Object.keys(out) as (keyof typeof out)[]) {
      if (out[key] === undefined) delete out[key];
    }
    if (out.weight === 1) delete out.weight;
    if (out.state === "ready") delete out.state;
    return out;
  });
  return {
    ...defaultConfig({ ...config.listen }, []),
    ...config,
    listen: { ...config.listen },
    backends,
  };
}

Deno.test("parseConfigText() reads back every config formatConfig() writes", () => {
  fc.assert(
    fc.property(lbConfig, (config) => {
      // IPv6 backends come back as written; normalize them the way the parser keeps them.
      const parsed = parseConfigText(formatConfig(config));
      assert.ok(parsed.ok, JSON.stringify(!parsed.ok && parsed.problems));
      assert.deepEqual(canonical(parsed.config), canonical(config));
    }),
    { numRuns: 300 },
  );
});
