import type { Backend } from "../backend.ts";
import type { Balancer, ConnInfo } from "../balancer.ts";
import { backendKey, clientKey, hash32 } from "./_hash.ts";

/** Default size of the lookup table: a prime, as the Maglev paper uses. */
export const MAGLEV_TABLE_SIZE = 65537;

const OFFSET_SEED = 0x6d61_0001;
const SKIP_SEED = 0x6d61_0002;
const LOOKUP_SEED = 0x6d61_0003;
/** How many tables to keep: the full set, and a few for retries and short outages. */
const CACHED_TABLES = 4;

/** Options of {@linkcode Maglev}. */
export interface MaglevOptions {
  /** Size M of the lookup table: a prime, at least the number of backends (65537). */
  tableSize?: number;
}

/** What a lookup table is built from: a backend's `host:port` and its weight. */
export interface MaglevMember {
  /** The backend's address as `host:port` (`[v6]:port`). */
  key: string;
  /** Its weight, 1 and up; a heavier backend takes more turns. */
  weight: number;
}

/**
 * Consistent hashing from Google's Maglev paper (Eisenbud et al., NSDI 2016). Each backend
 * has a permutation of the table's slots, from an offset and a skip that are two independent
 * stable hashes of its `host:port`; the backends take turns claiming the next free slot of
 * their permutation until the table (of prime size M, 65537 by default) is full, a backend of
 * weight w taking w turns per round. A client goes to the backend of slot
 * `hash(client IP) mod M`.
 *
 * - Nothing is seeded per process and the members are ordered by address, so load balancers
 *   given the same backends (in any order, with any ids) build the same table and pick the
 *   same backend for a client IP.
 * - With equal weights every backend owns floor(M/N) or ceil(M/N) slots.
 * - Removing one of N backends moves its own slots and only a little more (about 1/N of the
 *   table in all), see {@linkcode maglevMovedShare}.
 *
 * The table is rebuilt only when the candidate set (ids, addresses, weights) changes; the
 * last few are cached, so retries (the candidates minus a failed backend) and a backend
 * flapping cost no rebuild after the first. The constructor throws a RangeError for a table
 * size that is not a prime of at least 2; `pick` never throws.
 */
export class Maglev implements Balancer {
  readonly #tableSize: number;
  /** Built tables by signature of their candidate set, least recently used first. */
  readonly #tables = new Map<string, { ids: number[]; table: Uint32Array }>();

  constructor(options?: MaglevOptions) {
    const size = options?.tableSize ?? MAGLEV_TABLE_SIZE;
    if (!Number.isSafeInteger(size) || size < 2 || !isPrime(size)) {
      throw new RangeError(`Cannot use Maglev table size ${size}: expected a prime`);
    }
    this.#tableSize = size;
  }

  pick(conn: ConnInfo, backends: readonly Backend[]): Backend | undefined {
    if (backends.length <= 1) return backends[0];
    const sorted = sortMembers(backends);
    const signature = sorted.map((b) => `${b.id}=${b.weight}@${backendKey(b.addr)}`).join(" ");
    let entry = this.#tables.get(signature);
    if (entry === undefined) {
      const members = sorted.map((b) => ({ key: backendKey(b.addr), weight: b.weight }));
      entry = { ids: sorted.map((b) => b.id), table: maglevTable(members, this.#tableSize) };
      if (this.#tables.size >= CACHED_TABLES) {
        this.#tables.delete(this.#tables.keys().next().value!);
      }
    } else {
      this.#tables.delete(signature); // re-inserted below as the most recently used
    }
    this.#tables.set(signature, entry);
    const slot = hash32(clientKey(conn.remote), LOOKUP_SEED) % this.#tableSize;
    const id = entry.ids[entry.table[slot]];
    return backends.find((backend) => backend.id === id) ?? sorted[0];
  }
}

/**
 * Builds a Maglev lookup table of prime size `tableSize` for `members`, in the order given
 * (callers sort by key so that every process agrees). Returns, for each slot, the index in
 * `members` of its owner. Pure and deterministic; O(M log M) for M slots. `members` must not
 * be empty and `tableSize` must be a prime of at least `members.length`.
 */
export function maglevTable(members: readonly MaglevMember[], tableSize: number): Uint32Array {
  const n = members.length;
  const table = new Uint32Array(tableSize).fill(0xffffffff);
  const position = new Float64Array(n);
  const skip = new Float64Array(n);
  const turns = weightTurns(members);
  for (let i = 0; i < n; i++) {
    position[i] = hash32(members[i].key, OFFSET_SEED) % tableSize;
    skip[i] = (hash32(members[i].key, SKIP_SEED) % (tableSize - 1)) + 1;
  }
  let filled = 0;
  while (filled < tableSize) {
    for (let i = 0; i < n && filled < tableSize; i++) {
      for (let turn = 0; turn < turns[i] && filled < tableSize; turn++) {
        // The next slot of member i's permutation that nobody has claimed yet.
        let slot = position[i];
        while (table[slot] !== 0xffffffff) slot = (slot + skip[i]) % tableSize;
        table[slot] = i;
        position[i] = (slot + skip[i]) % tableSize;
        filled++;
      }
    }
  }
  return table;
}

/**
 * The share of the lookup table (0..1), and so of client IPs, whose backend changes when
 * backend `id` among `backends` gets weight `newWeight` (0: removed), under `maglev` with a
 * table of `tableSize` slots. Computed exactly by building both tables. Returns 0 when `id`
 * is not among `backends` and 1 when the last backend is removed. Pure; for the admin API's
 * "what if".
 */
export function maglevMovedShare(
  backends: readonly Backend[],
  id: number,
  newWeight: number,
  tableSize = MAGLEV_TABLE_SIZE,
): number {
  if (!backends.some((backend) => backend.id === id)) return 0;
  const before = sortMembers(backends);
  const after = before.filter((backend) => backend.id !== id || newWeight > 0);
  if (after.length === 0) return 1;
  const weightAfter = (b: Backend) => b.id === id ? newWeight : b.weight;
  const tableBefore = maglevTable(
    before.map((b) => ({ key: backendKey(b.addr), weight: b.weight })),
    tableSize,
  );
  const tableAfter = maglevTable(
    after.map((b) => ({ key: backendKey(b.addr), weight: weightAfter(b) })),
    tableSize,
  );
  let moved = 0;
  for (let slot = 0; slot < tableSize; slot++) {
    if (before[tableBefore[slot]].id !== after[tableAfter[slot]].id) moved++;
  }
  return moved / tableSize;
}

/** The backends ordered by address, then id: the order every process builds its table in. */
function sortMembers(backends: readonly Backend[]): Backend[] {
  return [...backends].sort((a, b) => {
    const keyA = backendKey(a.addr);
    const keyB = backendKey(b.addr);
    return keyA < keyB ? -1 : keyA > keyB ? 1 : a.id - b.id;
  });
}

/** Turns per round: the weights divided by their greatest common divisor (at least 1). */
function weightTurns(members: readonly MaglevMember[]): number[] {
  const weights = members.map((member) => Math.max(1, Math.floor(member.weight) || 1));
  const divisor = weights.reduce((a, b) => gcd(a, b));
  return weights.map((weight) => weight / divisor);
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

function isPrime(n: number): boolean {
  if (n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}
