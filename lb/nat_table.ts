import type { Addr, Direction } from "../net/mod.ts";

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
}

/** What {@linkcode NatTable.open} needs to know of a new connection. */
export interface NatEntry {
  client: Addr;
  local: Addr;
  backend: Addr;
  backendId: number;
}

/**
 * The connections a load balancer is proxying, one row each. A row is added when the backend
 * connection is up and removed exactly once: when both directions have finished, or at once
 * on an error, whichever comes first; later calls about it are no-ops that return false.
 */
export class NatTable {
  #rows = new Map<number, NatRow>();
  #nextId = 1;

  /** How many rows the table holds. */
  get size(): number {
    return this.#rows.size;
  }

  /** The rows, oldest first. */
  rows(): IterableIterator<NatRow> {
    return this.#rows.values();
  }

  /** The row with `id`, if it is still in the table. */
  get(id: number): NatRow | undefined {
    return this.#rows.get(id);
  }

  /** Adds a row for a connection whose backend side is up; returns it. */
  open(entry: NatEntry, nowMs: number): NatRow {
    const row: NatRow = {
      id: this.#nextId++,
      client: entry.client,
      local: entry.local,
      backend: entry.backend,
      backendId: entry.backendId,
      openedAtMs: nowMs,
      bytesUp: 0,
      bytesDown: 0,
      upDone: false,
      downDone: false,
    };
    this.#rows.set(row.id, row);
    return row;
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
