/**
 * The balancing algorithms, by their `--balance` names.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BALANCERS, createBalancer } from "./mod.ts";
 * assert.ok("maglev" in BALANCERS);
 * const balancer = createBalancer("maglev");
 * const backends = [1, 2, 3].map((id) => ({
 *   id,
 *   addr: { hostname: "127.0.0.1", port: 10000 + id },
 *   weight: 1,
 *   state: "ready" as const,
 *   alive: true,
 *   active: 0,
 *   total: 0,
 *   connectFailures: 0,
 * }));
 * const conn = { id: 1, remote: { hostname: "192.0.2.7", port: 51000 } };
 * // The same client IP gets the same backend, here and in any other l4chat process.
 * assert.equal(balancer.pick(conn, backends), createBalancer("maglev").pick(conn, backends));
 * ```
 *
 * @module
 */
import { UsageError } from "../../cli/errors.ts";
import type { Balancer } from "../balancer.ts";
import { LeastConn } from "./least_conn.ts";
import { Maglev } from "./maglev.ts";
import { PowerOfTwoChoices } from "./p2c.ts";
import { RoundRobin } from "./round_robin.ts";
import { SourceHash } from "./source_hash.ts";
import { WeightedRoundRobin } from "./weighted_round_robin.ts";

/**
 * Factories of the balancers, by `--balance` name. Each call returns a fresh balancer with
 * default options; the order is the order `--help` lists them in.
 */
export const BALANCERS: Record<string, () => Balancer> = {
  "round-robin": () => new RoundRobin(),
  "weighted-round-robin": () => new WeightedRoundRobin(),
  "least-conn": () => new LeastConn(),
  "p2c": () => new PowerOfTwoChoices(),
  "source-hash": () => new SourceHash(),
  "maglev": () => new Maglev(),
};

/** Creates the balancer named `name`; an unknown name is a UsageError that lists the valid ones. */
export function createBalancer(name: string): Balancer {
  const factory = BALANCERS[name];
  if (factory === undefined) {
    throw new UsageError(
      `Cannot use --balance "${name}": expected ${Object.keys(BALANCERS).join(", ")}`,
    );
  }
  return factory();
}
