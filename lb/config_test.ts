import assert from "node:assert/strict";
import {
  type ConfigProblem,
  defaultConfig,
  formatConfig,
  formatProblem,
  type LbConfig,
  parseConfigText,
  SETTINGS,
} from "./config.ts";

/** Parses `text`, failing the test with the problems if it is refused. */
function parseOk(text: string): LbConfig {
  const parsed = parseConfigText(text);
  if (!parsed.ok) assert.fail(parsed.problems.map((p) => formatProblem("f", p)).join("\n"));
  return parsed.config;
}

Deno.test("defaultConfig() holds every setting's documented default", () => {
  const config = defaultConfig({ hostname: "0.0.0.0", port: 20000 }, []);
  assert.deepEqual(config, {
    listen: { hostname: "0.0.0.0", port: 20000 },
    backends: [],
    balance: "round-robin",
    connectTimeoutMs: 2000,
    connectTries: 3,
    ackWaitMs: 1,
    finWaitMs: 0,
    hcIntervalMs: 5000,
    hcTimeoutMs: 2000,
    hcFall: 3,
    hcRise: 1,
    maxConns: 10000,
    maxConnsPerIp: 0,
    idleTimeoutMs: 0,
    maxLifetimeMs: 0,
    slowstartMs: 0,
    graceMs: 30000,
    workers: 1,
    sendProxy: undefined,
  });
});

Deno.test("parseConfigText() reads valid files", () => {
  const base = defaultConfig({ hostname: "0.0.0.0", port: 20000 }, []);
  const cases: { name: string; text: string; expected: Partial<LbConfig> }[] = [
    {
      name: "backends only: every default",
      text: '{ "backends": ["127.0.0.1:10010"] }',
      expected: { backends: [{ addr: { hostname: "127.0.0.1", port: 10010 } }] },
    },
    {
      name: "listen as a bare port, IPv6 and host names",
      text: `{
        "listen": 8080,
        "backends": ["[::1]:1", "backend.example:2", { "address": "10.0.0.1:3" }],
      }`,
      expected: {
        listen: { hostname: "0.0.0.0", port: 8080 },
        backends: [
          { addr: { hostname: "::1", port: 1 } },
          { addr: { hostname: "backend.example", port: 2 } },
          { addr: { hostname: "10.0.0.1", port: 3 } },
        ],
      },
    },
    {
      name: "every setting and every backend key, with comments",
      text: `// l4chat lb config
      {
        "listen": "[::1]:0",
        "balance": "least-conn",
        "connect-timeout": "500ms",
        "connect-tries": 2,
        "ack-wait": "0",
        "fin-wait": "5ms",
        "hc-interval": "1s",
        "hc-timeout": 1, // a bare number is seconds
        "hc-fall": 5,
        "hc-rise": "2",
        "max-conns": 100,
        "max-conns-per-ip": 10,
        "idle-timeout": "5m",
        "max-lifetime": "1h",
        "slowstart": "30s",
        "grace": "0",
        "send-proxy": "v1",
        "backends": [
          {
            "address": "127.0.0.1:10010",
            "weight": 3,
            "state": "drain",
            "maxconn": 50,
            "send-proxy": 2,
          },
          { "address": "127.0.0.1:10011", "state": "maint" },
        ],
      }`,
      expected: {
        listen: { hostname: "::1", port: 0 },
        balance: "least-conn",
        connectTimeoutMs: 500,
        connectTries: 2,
        ackWaitMs: 0,
        finWaitMs: 5,
        hcIntervalMs: 1000,
        hcTimeoutMs: 1000,
        hcFall: 5,
        hcRise: 2,
        maxConns: 100,
        maxConnsPerIp: 10,
        idleTimeoutMs: 300_000,
        maxLifetimeMs: 3_600_000,
        slowstartMs: 30_000,
        graceMs: 0,
        sendProxy: 1,
        backends: [
          {
            addr: { hostname: "127.0.0.1", port: 10010 },
            weight: 3,
            state: "drain",
            maxConn: 50,
            sendProxy: 2,
          },
          { addr: { hostname: "127.0.0.1", port: 10011 }, state: "maint" },
        ],
      },
    },
    {
      name: "null leaves a setting at its default",
      text: '{ "send-proxy": null, "max-conns": null, "backends": ["127.0.0.1:1"] }',
      expected: { backends: [{ addr: { hostname: "127.0.0.1", port: 1 } }] },
    },
  ];
  for (const { name, text, expected } of cases) {
    assert.deepEqual(parseOk(text), { ...base, ...expected }, name);
  }
});

Deno.test("parseConfigText() reports every problem with its line, column and path", () => {
  const cases: { name: string; text: string; problems: string[] }[] = [
    {
      name: "a syntax error: one problem, where it is",
      text: '{\n  "backends": ["127.0.0.1:1"\n  "listen": 1\n}',
      problems: ['f:3:3: expected "," or "]"'],
    },
    {
      name: "not an object",
      text: '\n  ["127.0.0.1:1"]',
      problems: ["f:2:3: expected an object with listen, backends and settings"],
    },
    {
      name: "missing and empty backends",
      text: "{}",
      problems: ["f:1:1: backends: missing: list at least one backend"],
    },
    {
      name: "an empty list is reported beside other problems",
      text: '{\n  "max-conns": -1,\n  "backends": [],\n}',
      problems: [
        'f:2:16: max-conns: Cannot use max-conns "-1": expected 0..10000000',
        "f:3:15: backends: empty: list at least one backend",
      ],
    },
    {
      name: "every kind of problem at once, in file order",
      text: `{
  "listen": "nowhere",
  "balance": "fastest",
  "idle-timeout": "soon",
  "connect-timeout": 0,
  "hc-fall": 0,
  "ack-wait": "1s",
  "grace": true,
  "send-proxy": "v3",
  "colour": "blue",
  "backends": [
    "127.0.0.1",
    42,
    { "weight": 2 },
    { "address": "127.0.0.1:1", "weight": 0, "state": "down", "maxconn": "x", "port": 1 },
    { "address": "127.0.0.1:70000", "send-proxy": "v9" },
    "127.0.0.1:2",
    { "address": "127.0.0.1:2", "weight": 2 },
  ],
}`,
      problems: [
        'f:2:13: listen: Cannot parse listen "nowhere": expected host:port',
        'f:3:14: balance: Cannot use balance "fastest": expected ' +
        "round-robin, weighted-round-robin, least-conn, p2c, source-hash, maglev",
        'f:4:19: idle-timeout: Cannot parse idle-timeout "soon": expected a duration such as 500ms, 5s or 2m',
        'f:5:22: connect-timeout: Cannot use connect-timeout "0": expected a duration above zero',
        'f:6:14: hc-fall: Cannot use hc-fall "0": expected 1..1000',
        'f:7:15: ack-wait: Cannot use ack-wait "1s": expected at most 200ms',
        "f:8:12: grace: expected a string or number for grace",
        'f:9:17: send-proxy: Cannot use send-proxy "v3": expected v1 or v2',
        "f:10:13: colour: unknown setting (known: listen, backends, " +
        SETTINGS.map((s) => s.name).join(", ") + ")",
        'f:12:5: backends[0]: Cannot parse address "127.0.0.1": expected host:port',
        'f:13:5: backends[1]: expected "host:port" or an object with an address',
        'f:14:5: backends[2]: missing "address"',
        'f:15:43: backends[3].weight: Cannot use weight "0": expected 1..1000',
        "f:15:55: backends[3].state: expected ready, drain, maint",
        'f:15:74: backends[3].maxconn: Cannot parse maxconn "x": expected a whole number',
        "f:15:87: backends[3].port: unknown key (known: address, weight, state, maxconn, send-proxy)",
        'f:16:18: backends[4].address: Cannot use address "127.0.0.1:70000": expected a port in 1..65535',
        'f:16:51: backends[4].send-proxy: Cannot use send-proxy "v9": expected v1 or v2',
        "f:18:5: backends[6]: duplicate backend 127.0.0.1:2",
      ],
    },
    {
      name: "a duration longer than a timer can wait",
      text: '{ "grace": "600h", "backends": ["127.0.0.1:1"] }',
      problems: ['f:1:12: grace: Cannot use grace "600h": expected at most 596h'],
    },
    {
      name: "backends that is not a list",
      text: '{ "backends": "127.0.0.1:1" }',
      problems: ["f:1:15: backends: expected a list of backends"],
    },
    {
      name: "a file over 1 MiB",
      text: `{ "backends": ["127.0.0.1:1"] }${" ".repeat(1024 * 1024)}`,
      problems: ["f:1:1: file over 1 MiB"],
    },
  ];
  for (const { name, text, problems } of cases) {
    const parsed = parseConfigText(text);
    assert.equal(parsed.ok, false, name);
    const got = (parsed as { problems: ConfigProblem[] }).problems.map((p) =>
      formatProblem("f", p)
    );
    assert.deepEqual(got, problems, name);
  }
});

Deno.test("formatConfig() writes what parseConfigText() reads back unchanged", () => {
  const texts = [
    '{ "backends": ["127.0.0.1:10010"] }',
    `{
      "listen": "[::]:20001",
      "balance": "maglev",
      "max-conns": 0,
      "max-conns-per-ip": 3,
      "idle-timeout": "1.5s",
      "max-lifetime": "2h",
      "slowstart": "10s",
      "grace": 0,
      "hc-interval": "250ms",
      "send-proxy": "v2",
      "backends": [
        { "address": "[::1]:1", "weight": 5, "state": "drain", "maxconn": 7, "send-proxy": "v1" },
        { "address": "backend.example:2", "state": "maint" },
        "127.0.0.1:3",
      ],
    }`,
  ];
  for (const text of texts) {
    const config = parseOk(text);
    const written = formatConfig(config);
    assert.deepEqual(parseOk(written), config, written);
    // Writing it again gives the same text: nothing drifts across write-backs.
    assert.equal(formatConfig(parseOk(written)), written);
  }
});

Deno.test("formatConfig() leaves out settings at their default", () => {
  const config = parseOk('{ "listen": ":20000", "backends": ["127.0.0.1:1"] }');
  assert.equal(
    formatConfig(config),
    '{\n  "listen": "0.0.0.0:20000",\n  "backends": [\n    {\n      "address": "127.0.0.1:1"\n    }\n  ]\n}\n',
  );
});
