import type { Backend } from "../backend.ts";
import type { Balancer, ConnInfo } from "../balancer.ts";
import { compareLoad } from "./least_conn.ts";

/** Options of {@linkcode PowerOfTwoChoices}. */
export interface PowerOfTwoChoicesOptions {
  /**
   * Source of randomness: returns a number in `[0, 1)` on each call, as `Math.random` does
   * (the default). Tests pass a fixed sequence. Called at most twice per pick.
   */
  random?: () => number;
}

/**
 * Power of two random choices: draws two different candidates at random, each with a
 * probability proportional to its weight, and picks the one with fewer open connections per
 * unit of weight (load / weight, with connects in flight); the first drawn on a tie. Nearly as even as least-conn
 * without every load balancer herding new clients onto the same least-loaded backend, and
 * with idle backends it hands out clients in proportion to their weights.
 */
export class PowerOfTwoChoices implements Balancer {
  readonly #random: () => number;

  constructor(options?: PowerOfTwoChoicesOptions) {
    this.#random = options?.random ?? Math.random;
  }

  pick(_conn: ConnInfo, backends: readonly Backend[]): Backend | undefined {
    if (backends.length <= 1) return backends[0];
    const first = this.#draw(backends, undefined);
    const second = this.#draw(backends, first);
    return compareLoad(second, first) < 0 ? second : first;
  }

  /** Draws one of `backends` other than `except`, with probability proportional to weight. */
  #draw(backends: readonly Backend[], except: Backend | undefined): Backend {
    let total = 0;
    for (const backend of backends) if (backend !== except) total += weightOf(backend);
    // Clamp so a random source that returns 1 (or more) still lands on a candidate.
    let point = Math.min(Math.max(0, this.#random()), 1 - Number.EPSILON) * total;
    let last = backends[0];
    for (const backend of backends) {
      if (backend === except) continue;
      last = backend;
      point -= weightOf(backend);
      if (point < 0) return backend;
    }
    return last;
  }
}

function weightOf(backend: Backend): number {
  return Math.max(1, backend.weight);
}
