import type { Backend } from "../backend.ts";
import type { Balancer, ConnInfo } from "../balancer.ts";
import { backendKey, clientKey, hash32 } from "./_hash.ts";

/** Seed of the rendezvous hash; a constant, so that every process agrees. */
const RENDEZVOUS_SEED = 0x5eed_0001;

/**
 * Hashes the client's IP (not its port) onto the candidates with weighted rendezvous
 * (highest random weight) hashing: each candidate scores `weight / -ln(u)`, where `u` in
 * `(0, 1)` is a stable hash of the client IP and the backend's `host:port`, and the highest
 * score wins. So:
 *
 * - a client keeps its backend while the candidates stay the same, and several load
 *   balancers given the same backends (in any order, with any ids) pick the same one for
 *   it: nothing is seeded per process;
 * - when a backend leaves, only its own clients move (each to its second-highest score);
 *   when one joins, only the clients it now wins move to it;
 * - a backend's expected share of client IPs is `weight / sum(weights)`.
 *
 * Stateless; costs one hash per candidate per pick.
 */
export class SourceHash implements Balancer {
  pick(conn: ConnInfo, backends: readonly Backend[]): Backend | undefined {
    const client = clientKey(conn.remote);
    let best: Backend | undefined;
    let bestScore = -Infinity;
    let bestKey = "";
    for (const backend of backends) {
      const key = backendKey(backend.addr);
      const score = rendezvousScore(client, key, backend.weight);
      // Ties (the same address twice) go to the smaller key, then the first listed.
      if (score > bestScore || (score === bestScore && key < bestKey)) {
        best = backend;
        bestScore = score;
        bestKey = key;
      }
    }
    return best;
  }
}

/**
 * The weighted rendezvous score of backend `backendKey` (its `host:port`) for client IP
 * `client`: `weight / -ln(u)` with `u` a stable hash of both in `(0, 1)`. The backend with
 * the highest score gets the client. A weight below 1 counts as 1.
 */
export function rendezvousScore(client: string, backendKey: string, weight: number): number {
  const text = `${client}\n${backendKey}`;
  // 53 bits from two 32-bit hashes, so `u` is never 0 or 1 and ties are vanishingly rare.
  const high = hash32(text, RENDEZVOUS_SEED) >>> 11; // 21 bits
  const low = hash32(text, RENDEZVOUS_SEED + 1); // 32 bits
  const u = (high * 2 ** 32 + low + 0.5) / 2 ** 53;
  return Math.max(1, weight) / -Math.log(u);
}

/**
 * The expected share of client IPs (0..1) that change backend under `source-hash` when
 * backend `id` among `backends` gets weight `newWeight` (0: removed). Rendezvous hashing
 * gives each backend `weight / total` of the clients and moves only what must move, so the
 * answer is the change of that backend's share: `|newWeight / newTotal - weight / total|`.
 * Returns 0 when `id` is not among `backends`. Pure; for the admin API's "what if".
 */
export function sourceHashMovedShare(
  backends: readonly Backend[],
  id: number,
  newWeight: number,
): number {
  const target = backends.find((backend) => backend.id === id);
  if (target === undefined) return 0;
  const total = backends.reduce((sum, backend) => sum + Math.max(1, backend.weight), 0);
  const weight = Math.max(1, target.weight);
  const changed = newWeight <= 0 ? 0 : Math.max(1, newWeight);
  const newTotal = total - weight + changed;
  const after = newTotal === 0 ? 0 : changed / newTotal;
  return Math.abs(after - weight / total);
}
