import type { Backend } from "../backend.ts";
import type { Balancer, ConnInfo } from "../balancer.ts";

/**
 * Gives each new connection the next backend in configuration order, as the original did.
 * A backend missing from the candidates (dead, draining) is skipped without disturbing the
 * rotation of the others: the next pick is the first candidate after the last one picked.
 */
export class RoundRobin implements Balancer {
  /** Id of the backend picked last; backend ids follow configuration order. */
  #lastId = 0;

  pick(_conn: ConnInfo, backends: readonly Backend[]): Backend | undefined {
    if (backends.length === 0) return undefined;
    const next = backends.find((backend) => backend.id > this.#lastId) ?? backends[0];
    this.#lastId = next.id;
    return next;
  }
}
