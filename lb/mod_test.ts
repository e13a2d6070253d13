import assert from "node:assert/strict";
import type { Net } from "../net/mod.ts";
import { NetError } from "../net/mod.ts";
import { resolveBackends } from "./mod.ts";

/** A Net that only resolves names, from a table. */
function resolvingNet(table: Record<string, string[]>): Net {
  return {
    resolve: (hostname: string) =>
      hostname in table
        ? Promise.resolve(table[hostname])
        : Promise.reject(new NetError("NotFound", `cannot resolve ${hostname}`)),
  } as unknown as Net;
}

Deno.test("resolveBackends() makes each address of a name a backend with its settings", async () => {
  const net = resolvingNet({ "db.example": ["192.0.2.1", "2001:db8::1"] });
  const resolved = await resolveBackends(net, [
    { addr: { hostname: "db.example", port: 5432 }, weight: 3, state: "drain", maxConn: 7 },
    { addr: { hostname: "127.0.0.1", port: 1 } },
    { addr: { hostname: "::1", port: 2 } },
  ]);
  assert.deepEqual(resolved, [
    {
      name: "db.example:5432",
      config: {
        addr: { hostname: "192.0.2.1", port: 5432 },
        weight: 3,
        state: "drain",
        maxConn: 7,
      },
    },
    {
      name: "db.example:5432",
      config: {
        addr: { hostname: "2001:db8::1", port: 5432 },
        weight: 3,
        state: "drain",
        maxConn: 7,
      },
    },
    { name: "127.0.0.1:1", config: { addr: { hostname: "127.0.0.1", port: 1 } } },
    { name: "[::1]:2", config: { addr: { hostname: "::1", port: 2 } } },
  ]);
});

Deno.test("resolveBackends() keeps a name that does not resolve as it is", async () => {
  const resolved = await resolveBackends(resolvingNet({}), [
    { addr: { hostname: "nowhere.invalid", port: 1 } },
  ]);
  assert.deepEqual(resolved, [
    { name: "nowhere.invalid:1", config: { addr: { hostname: "nowhere.invalid", port: 1 } } },
  ]);
});
