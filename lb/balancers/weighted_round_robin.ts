import type { Backend } from "../backend.ts";
import type { Balancer, ConnInfo } from "../balancer.ts";

/**
 * Smooth weighted round robin, as nginx's upstream module does it: on each pick every
 * candidate's current weight grows by its weight, the largest wins (the first in
 * configuration order on a tie) and loses the candidates' total. Over any run of
 * `sum(weights)` picks with a stable candidate set each backend gets exactly its weight's
 * worth, spread out: weights 5, 1, 1 give `a a b a c a a`, never a burst of five `a`.
 *
 * A backend missing from the candidates (dead, draining, already tried) keeps its current
 * weight and takes no part until it returns, as in nginx; a new id starts at zero.
 */
export class WeightedRoundRobin implements Balancer {
  /** nginx's `current_weight`, by backend id. */
  readonly #current = new Map<number, number>();

  pick(_conn: ConnInfo, backends: readonly Backend[]): Backend | undefined {
    let total = 0;
    let best: Backend | undefined;
    let bestCurrent = -Infinity;
    for (const backend of backends) {
      const weight = Math.max(1, backend.weight);
      const current = (this.#current.get(backend.id) ?? 0) + weight;
      this.#current.set(backend.id, current);
      total += weight;
      if (current > bestCurrent) {
        best = backend;
        bestCurrent = current;
      }
    }
    if (best !== undefined) this.#current.set(best.id, bestCurrent - total);
    return best;
  }
}
