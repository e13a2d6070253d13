import { type Backend, load } from "../backend.ts";
import type { Balancer, ConnInfo } from "../balancer.ts";

/**
 * Weighted least connections: picks the candidate with the fewest open connections per unit
 * of weight (load / weight, compared without division). Among equally loaded candidates
 * it rotates, starting after the one it picked last, so idle backends share new clients
 * instead of the first one taking them all.
 *
 * Reads the pool's live load (`load(backend)`: connections open plus connects in flight), so
 * clients that arrive while earlier connects are still in progress see those connects too.
 */
export class LeastConn implements Balancer {
  /** Id of the backend picked last, for the rotation among ties. */
  #lastId = 0;

  pick(_conn: ConnInfo, backends: readonly Backend[]): Backend | undefined {
    let best: Backend | undefined;
    let bestAfter: Backend | undefined; // the least loaded with an id after #lastId
    for (const backend of backends) {
      const order = best === undefined ? -1 : compareLoad(backend, best);
      if (order < 0) {
        best = backend;
        bestAfter = backend.id > this.#lastId ? backend : undefined;
      } else if (order === 0 && bestAfter === undefined && backend.id > this.#lastId) {
        bestAfter = backend;
      }
    }
    const picked = bestAfter ?? best;
    if (picked !== undefined) this.#lastId = picked.id;
    return picked;
  }
}

/** Negative when `a` carries less load per unit of weight than `b`, 0 when equal. */
export function compareLoad(a: Backend, b: Backend): number {
  return Math.max(0, load(a)) * Math.max(1, b.weight) -
    Math.max(0, load(b)) * Math.max(1, a.weight);
}
