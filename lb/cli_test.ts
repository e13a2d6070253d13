import assert from "node:assert/strict";
import { UsageError } from "../cli/errors.ts";
import type { BackendConfig } from "./backend.ts";
import { BALANCERS } from "./balancers/mod.ts";
import { LB_HELP, parseLbArgs } from "./cli.ts";

Deno.test("parseLbArgs() reads backends with and without a weight", () => {
  const cases: { args: string[]; backends: BackendConfig[]; bind?: string }[] = [
    {
      args: ["10.0.0.1", "10010"],
      backends: [{ addr: { hostname: "10.0.0.1", port: 10010 } }],
    },
    {
      // The original's form, bind address first, unchanged.
      args: ["172.18.136.132", "172.18.158.107", "10010", "172.18.158.107", "10011"],
      bind: "172.18.136.132",
      backends: [
        { addr: { hostname: "172.18.158.107", port: 10010 } },
        { addr: { hostname: "172.18.158.107", port: 10011 } },
      ],
    },
    {
      args: ["10.0.0.1", "10010,weight=3", "10.0.0.2", "10011"],
      backends: [
        { addr: { hostname: "10.0.0.1", port: 10010 }, weight: 3 },
        { addr: { hostname: "10.0.0.2", port: 10011 } },
      ],
    },
    {
      args: ["::", "[::1]", "10010,weight=1000", "backend.example", "1,weight=1"],
      bind: "::",
      backends: [
        { addr: { hostname: "::1", port: 10010 }, weight: 1000 },
        { addr: { hostname: "backend.example", port: 1 }, weight: 1 },
      ],
    },
  ];
  for (const { args, backends, bind } of cases) {
    const { config: options } = parseLbArgs(args);
    assert.deepEqual(options.backends, backends, args.join(" "));
    assert.equal(options.listen.hostname, bind ?? "0.0.0.0");
  }
});

Deno.test("parseLbArgs() refuses a bad weight with one line naming the server", () => {
  const cases: [string, string][] = [
    ["10010,weight=0", 'Cannot use weight of server "h" "0": expected 1..1000'],
    ["10010,weight=1001", 'Cannot use weight of server "h" "1001": expected 1..1000'],
    ["10010,weight=-2", 'Cannot use weight of server "h" "-2": expected 1..1000'],
    ["10010,weight=1.5", 'Cannot parse weight of server "h" "1.5": expected a whole number'],
    ["10010,weight=", 'Cannot parse weight of server "h" "": expected a whole number'],
    [
      "10010,weight=2,weight=3",
      'Cannot parse <port> of server "h" "10010,weight=2,weight=3": expected PORT or PORT,weight=N',
    ],
    [
      "10010,w=2",
      'Cannot parse <port> of server "h" "10010,w=2": unknown option "w=2" (weight, maxconn, state, send-proxy)',
    ],
    ["10010,", 'Cannot parse <port> of server "h" "10010,": expected PORT or PORT,weight=N'],
    [",weight=2", 'Cannot parse <port> of server "h" "": expected a port number'],
    ["70000,weight=2", 'Cannot use <port> of server "h" "70000": expected a port in 1..65535'],
  ];
  for (const [port, message] of cases) {
    assert.throws(() => parseLbArgs(["h", port]), (err: unknown) => {
      assert.ok(err instanceof UsageError, port);
      assert.equal(err.message, message);
      return true;
    });
  }
});

Deno.test("parseLbArgs() takes every --balance name and refuses others", () => {
  for (const name of Object.keys(BALANCERS)) {
    assert.equal(parseLbArgs(["h", "1", "--balance", name]).config.balance, name);
  }
  assert.throws(
    () => parseLbArgs(["h", "1", "--balance", "random"]),
    /Cannot use --balance "random": expected round-robin, weighted-round-robin, least-conn, p2c, source-hash, maglev/,
  );
});

Deno.test("LB_HELP lists every --balance name and the weight syntax", () => {
  for (const name of Object.keys(BALANCERS)) {
    assert.match(LB_HELP, new RegExp(`^ +${name} +\\S`, "m"), name);
  }
  assert.match(LB_HELP, /<server> <port>,weight=N/);
});

/** The listen address and the backends of `args`, as `host port` strings. */
function addresses(args: string[]): { listen: string; backends: string[] } {
  const { config } = parseLbArgs(args);
  return {
    listen: `${config.listen.hostname} ${config.listen.port}`,
    backends: config.backends.map((b) => `${b.addr.hostname} ${b.addr.port}`),
  };
}

Deno.test("parseLbArgs() reads the original's positional forms", () => {
  const cases: [args: string[], listen: string, backends: string[]][] = [
    // Odd: the first argument is the address to listen on, as in the original.
    [
      ["172.18.136.132", "172.18.158.107", "10010", "172.18.158.107", "10011"],
      "172.18.136.132 20000",
      ["172.18.158.107 10010", "172.18.158.107 10011"],
    ],
    [["127.0.0.1", "127.0.0.1", "10010"], "127.0.0.1 20000", ["127.0.0.1 10010"]],
    // Even: backends only, listening on every interface.
    [["127.0.0.1", "10010"], "0.0.0.0 20000", ["127.0.0.1 10010"]],
    [
      ["10.0.0.1", "1", "10.0.0.2", "65535"],
      "0.0.0.0 20000",
      ["10.0.0.1 1", "10.0.0.2 65535"],
    ],
    // IPv6 literals, with and without brackets, and host names.
    [["[::1]", "::1", "10010", "[::1]", "10011"], "::1 20000", ["::1 10010", "::1 10011"]],
    [["::1", "10010"], "0.0.0.0 20000", ["::1 10010"]],
    [["::", "[::1]", "10010"], ":: 20000", ["::1 10010"]],
    [["localhost", "chat.example", "10010"], "localhost 20000", ["chat.example 10010"]],
    [["chat-1", "10010", "chat-2", "10011"], "0.0.0.0 20000", ["chat-1 10010", "chat-2 10011"]],
    // Options after the port do not hide it.
    [["127.0.0.1", "h", "10010,weight=2"], "127.0.0.1 20000", ["h 10010"]],
    [["h", "10010,weight=2", "::1", "1"], "0.0.0.0 20000", ["h 10010", "::1 1"]],
    // Flags anywhere.
    [["--port", "0", "127.0.0.1", "1"], "0.0.0.0 0", ["127.0.0.1 1"]],
    [["127.0.0.1", "--port=30000", "127.0.0.1", "1"], "127.0.0.1 30000", ["127.0.0.1 1"]],
  ];
  for (const [args, listen, backends] of cases) {
    assert.deepEqual(addresses(args), { listen, backends }, args.join(" "));
  }
});

Deno.test("parseLbArgs() refuses bad command lines with one clear message", () => {
  const cases: [args: string[], message: string][] = [
    [[], "Missing backend: give at least one <server> <port>"],
    [["127.0.0.1"], "Missing backend: give at least one <server> <port>"],
    [["--port", "20000"], "Missing backend: give at least one <server> <port>"],
    // Odd pairs: a server without its port, with or without the address to listen on.
    [
      ["127.0.0.1", "10.0.0.1", "10010", "10.0.0.2"],
      'Missing <port> after server "10.0.0.2": backends are <server> <port> pairs',
    ],
    [
      ["10.0.0.1", "10010", "10.0.0.2"],
      'Missing <port> after server "10.0.0.2": backends are <server> <port> pairs',
    ],
    [
      ["127.0.0.1", "10.0.0.1"],
      'Missing <port> after server "10.0.0.1": backends are <server> <port> pairs',
    ],
    // A port where a host belongs (pairs out of step).
    [
      ["127.0.0.1", "host", "1", "2", "3"],
      'Cannot parse <server> "2": expected a host name or IP address',
    ],
    // Bad ports.
    [
      ["127.0.0.1", "70000"],
      'Cannot use <port> of server "127.0.0.1" "70000": expected a port in 1..65535',
    ],
    [
      ["127.0.0.1", "0"],
      'Cannot use <port> of server "127.0.0.1" "0": expected a port in 1..65535',
    ],
    [
      ["127.0.0.1", "127.0.0.1", "10x"],
      'Cannot parse <port> of server "127.0.0.1" "10x": expected a port number',
    ],
    [
      ["127.0.0.1", "1", "--port", "65536"],
      'Cannot use --port "65536": expected a port in 0..65535',
    ],
    [["127.0.0.1", "1", "--port", "http"], 'Cannot parse --port "http": expected a port number'],
    // Bad addresses.
    [["[]", "127.0.0.1", "1"], 'Cannot parse <bind-ip> "[]": expected a host name or IP address'],
    [["a b", "1"], 'Cannot parse <server> "a b": expected a host name or IP address'],
    // Unknown and malformed flags.
    [["127.0.0.1", "1", "--prot", "1"], "Unknown flag --prot"],
    [["127.0.0.1", "1", "-p", "1"], "Unknown flag -p"],
    [["127.0.0.1", "1", "--port"], "Missing or bad value for --port"],
    [
      ["127.0.0.1", "1", "--hc-interval", "0"],
      'Cannot use --hc-interval "0": expected a duration above zero',
    ],
    [
      ["127.0.0.1", "1", "--hc-timeout", "soon"],
      'Cannot parse --hc-timeout "soon": expected a duration such as 500ms, 5s or 2m',
    ],
    [["127.0.0.1", "1", "--hc-fall", "0"], 'Cannot use --hc-fall "0": expected 1..1000'],
    [["127.0.0.1", "1", "--hc-rise", "x"], 'Cannot parse --hc-rise "x": expected a whole number'],
    [
      ["127.0.0.1", "1", "--connect-tries", "0"],
      'Cannot use --connect-tries "0": expected 1..100',
    ],
    [
      ["127.0.0.1", "1", "--log-level", "trace"],
      'Cannot use --log-level "trace": expected error, warn, info, debug',
    ],
  ];
  for (const [args, message] of cases) {
    assert.throws(() => parseLbArgs(args), (err: unknown) => {
      assert.ok(err instanceof UsageError, `${args.join(" ")}: expected a UsageError, got ${err}`);
      assert.equal(err.message, message, args.join(" "));
      return true;
    });
  }
});
