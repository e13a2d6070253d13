import type { Addr, Direction } from "../net/mod.ts";
import { IdMap } from "./id_map.ts";

/** One proxied connection: the original's NAT table row, with what l4chat adds. */
export interface NatRow {
  /** Unique within this load balancer, never reused. */
  readonly id: number;
  /** The client's ip:port. */
  readonly client: Addr;
  /** The load balancer's own ip:port toward the backend (the original's "new source port"). */
  readonly local: Addr;
  /** The backend's ip:port. */
  readonly backend: Addr;
  /** Id of the backend in the pool. */
  readonly backendId: number;
  /** When the backend connection came up (ms since the epoch). */
  readonly openedAtMs: number;
  /** Bytes from the client to the backend; updated in place by the relay. */
  bytesUp: number;
  /** Bytes from the backend to the client; updated in place by the relay. */
  bytesDown: number;
  /** Whether the client has finished sending (its half-close reached the backend). */
  upDone: boolean;
  /** Whether the backend has finished sending. */
  downDone: boolean;
  /** When traffic was last seen (ms), as far as {@linkcode sweep} knows. */
  lastActiveMs: number;
  /** `bytesUp + bytesDown` at the last {@linkcode sweep}. */
  lastBytes: number;
}

/** What {@linkcode NatTable.open} needs to know of a new connection. */
export interface NatEntry {
  client: Addr;
  /**
   * The local address toward the backend, or how to find it: called once, the first time
   * the row's `local` is read. Finding it costs a system call per connection that nothing may
   * ever look at (with no admin endpoint and no info log, nothing does).
   */
  local: Addr | (() => Addr);
  backend: Addr;
  backendId: number;
}

/** A row of {@linkcode NatTable}; its `local` is found when first read, if it must be found. */
class Row implements NatRow {
  bytesUp = 0;
  bytesDown = 0;
  upDone = false;
  downDone = false;
  lastActiveMs: number;
  lastBytes = 0;
  #local: Addr | (() => Addr);

  readonly client: Addr;
  readonly backend: Addr;
  readonly backendId: number;

  constructor(readonly id: number, entry: NatEntry, readonly openedAtMs: number) {
    this.client = entry.client;
    this.#local = entry.local;
    this.backend = entry.backend;
    this.backendId = entry.backendId;
    this.lastActiveMs = openedAtMs;
  }

  get local(): Addr {
    const local = this.#local;
    if (typeof local !== "function") return local;
    return this.#local = local();
  }
}

/**
 * The connections a load balancer is proxying, one row each. A row is added when the backend
 * connection is up and removed exactly once: when both directions have finished, or at once
 * on an error, whichever comes first; later calls about it are no-ops that return false.
 */
export class NatTable {
  readonly #rows = new IdMap<NatRow>();
  #nextId: number;
  readonly #idStep: number;

  /**
   * Ids are `firstId`, `firstId + idStep`, ...: worker `k` of `lb --workers N` numbers its
   * rows `k + 1`, `k + 1 + N`, ..., so ids stay unique across workers and name their worker.
   */
  constructor(options: { firstId?: number; idStep?: number } = {}) {
    this.#nextId = options.firstId ?? 1;
    this.#idStep = options.idStep ?? 1;
  }

  /** How many rows the table holds. */
  get size(): number {
    return this.#rows.size;
  }

  /** The rows, oldest first: a copy, so rows may be removed while it is walked. */
  rows(): NatRow[] {
    return this.#rows.values();
  }

  /** The row with `id`, if it is still in the table. */
  get(id: number): NatRow | undefined {
    return this.#rows.get(id);
  }

  /**
   * Adds a row for a connection whose backend side is up; returns it. Its `local` is an
   * accessor: copy a row with {@linkcode copyRow}, not by spreading it.
   */
  open(entry: NatEntry, nowMs: number): NatRow {
    const row = new Row(this.#nextId, entry, nowMs);
    this.#nextId += this.#idStep;
    this.#rows.set(row.id, row);
    return row;
  }

  /** Adds `row` as it is, id included: a copy of a worker's row in the main thread's table. */
  adopt(row: NatRow): void {
    this.#rows.set(row.id, row);
  }

  /**
   * Marks one direction of row `id` finished. Returns true when this call removed the row
   * (the other direction had finished already).
   */
  finish(id: number, direction: Direction): boolean {
    const row = this.#rows.get(id);
    if (row === undefined) return false;
    if (direction === "up") row.upDone = true;
    else row.downDone = true;
    if (!row.upDone || !row.downDone) return false;
    return this.#rows.delete(id);
  }

  /** Removes row `id` now (a reset, an error, a forced close). True if this call removed it. */
  remove(id: number): boolean {
    return this.#rows.delete(id);
  }
}

/** A plain copy of `row` (its `local` read), to send to another thread. */
export function copyRow(row: NatRow): NatRow {
  return {
    id: row.id,
    client: row.client,
    local: row.local,
    backend: row.backend,
    backendId: row.backendId,
    openedAtMs: row.openedAtMs,
    bytesUp: row.bytesUp,
    bytesDown: row.bytesDown,
    upDone: row.upDone,
    downDone: row.downDone,
    lastActiveMs: row.lastActiveMs,
    lastBytes: row.lastBytes,
  };
}

/** Why {@linkcode sweep} wants a connection closed. */
export type SweepReason = "idle" | "lifetime";

/** Limits that {@linkcode sweep} enforces; 0 turns one off. */
export interface SweepLimits {
  idleTimeoutMs: number;
  maxLifetimeMs: number;
}

/** Share of `maxLifetimeMs` added as jitter, so connections opened together do not close together. */
const LIFETIME_JITTER = 0.2;

/**
 * Looks at every row at `nowMs`: notes traffic since the last sweep (the relay only counts
 * bytes; no clock is read per chunk), and returns the rows to close, with why: no traffic
 * either way for `idleTimeoutMs`, or older than `maxLifetimeMs` plus a jitter of up to 20%
 * that is fixed per row.
 */
export function sweep(
  rows: Iterable<NatRow>,
  nowMs: number,
  limits: SweepLimits,
): { row: NatRow; reason: SweepReason }[] {
  const out: { row: NatRow; reason: SweepReason }[] = [];
  for (const row of rows) {
    const bytes = row.bytesUp + row.bytesDown;
    if (bytes !== row.lastBytes) {
      row.lastBytes = bytes;
      row.lastActiveMs = nowMs;
    }
    if (limits.idleTimeoutMs > 0 && nowMs - row.lastActiveMs >= limits.idleTimeoutMs) {
      out.push({ row, reason: "idle" });
    } else if (
      limits.maxLifetimeMs > 0 &&
      nowMs - row.openedAtMs >= limits.maxLifetimeMs * (1 + LIFETIME_JITTER * jitter(row.id))
    ) {
      out.push({ row, reason: "lifetime" });
    }
  }
  return out;
}

/** A fraction in [0, 1) fixed by `id` (a multiplicative hash), for spreading deadlines. */
export function jitter(id: number): number {
  return (Math.imul(id, 0x9e3779b1) >>> 0) / 2 ** 32;
}
