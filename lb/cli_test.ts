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
