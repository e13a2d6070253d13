/**
 * The balancing algorithms, by their `--balance` names.
 *
 * @example
 * ```ts
 * import { createBalancer } from "./mod.ts";
 * const balancer = createBalancer("round-robin");
 * ```
 *
 * @module
 */
import { UsageError } from "../../cli/errors.ts";
import type { Balancer } from "../balancer.ts";
import { RoundRobin } from "./round_robin.ts";

/** Factories of the balancers, by `--balance` name. */
export const BALANCERS: Record<string, () => Balancer> = {
  "round-robin": () => new RoundRobin(),
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
