/**
 * A map from integer ids, handed out in increasing order, to values, kept in two arrays rather
 * than a `Map`, for tables with an entry per connection.
 *
 * A `Map` that gains and loses entries all the time replaces its hash table every few entries,
 * in the generation of the table it replaces, and the replaced table keeps its entries and a
 * link to the next. Once a full collection has moved the live table out of the young
 * generation, every replaced table is old and dead but collected only by the next full
 * collection, and until then young collections keep its entries alive and promote them: under
 * `lb`'s new-connection load, 30% of what a young collection found survived it where 4% did
 * before, and a full collection came every half second (docs/benchmarks.md, "A `Map` per
 * connection aged everything"). Arrays have no such chain: an entry is cleared in place.
 *
 * Pure: no clock, no I/O.
 *
 * @module
 */

/** Removed entries past which, and past the live ones, the arrays are compacted. */
const COMPACT_AT = 32;

/**
 * Values by id, in increasing id order: `set` of an id above every id in it appends (the
 * common case, ids from a counter), any other id goes in its place; `get` and `delete` search.
 */
export class IdMap<V> {
  /** Ids in increasing order, of entries and of removed entries not yet compacted away. */
  readonly #ids: number[] = [];
  /** The value of the id at the same index, or undefined where the entry was removed. */
  readonly #values: (V | undefined)[] = [];
  /** Used places in the arrays, removed ones included (the arrays may be longer). */
  #used = 0;
  #size = 0;

  /** How many entries it holds. */
  get size(): number {
    return this.#size;
  }

  /** The value of `id`, if it holds one. */
  get(id: number): V | undefined {
    const at = this.#find(id);
    return at < 0 ? undefined : this.#values[at];
  }

  /** Sets the value of `id` (`value` must not be undefined). */
  set(id: number, value: V): void {
    const used = this.#used;
    if (used === 0 || this.#ids[used - 1] < id) {
      this.#ids[used] = id;
      this.#values[used] = value;
      this.#used++;
      this.#size++;
      return;
    }
    const at = this.#place(id);
    if (at < used && this.#ids[at] === id) {
      if (this.#values[at] === undefined) this.#size++;
      this.#values[at] = value;
      return;
    }
    this.#ids.splice(at, 0, id);
    this.#values.splice(at, 0, value);
    // The arrays may have been longer than their used places: splice moved a spare one along.
    this.#ids.length = this.#values.length = used + 1;
    this.#used++;
    this.#size++;
  }

  /** Removes the entry of `id`; true if there was one. */
  delete(id: number): boolean {
    const at = this.#find(id);
    if (at < 0 || this.#values[at] === undefined) return false;
    this.#values[at] = undefined;
    this.#size--;
    const removed = this.#used - this.#size;
    if (removed > COMPACT_AT && removed > this.#size) this.#compact();
    return true;
  }

  /**
   * The values, in increasing id order: a copy, so that entries may be removed while it is
   * walked (as a `Map`'s may be).
   */
  values(): V[] {
    const out: V[] = [];
    const values = this.#values;
    for (let at = 0; at < this.#used; at++) {
      const value = values[at];
      if (value !== undefined) out.push(value);
    }
    return out;
  }

  /** The index of `id` among the used places, or -1. */
  #find(id: number): number {
    const at = this.#place(id);
    return at < this.#used && this.#ids[at] === id ? at : -1;
  }

  /** The first used place whose id is not below `id` (binary search). */
  #place(id: number): number {
    let low = 0;
    let high = this.#used;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.#ids[mid] < id) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  /** Moves the entries down over the removed ones, in order, and clears the places left. */
  #compact(): void {
    const ids = this.#ids;
    const values = this.#values;
    let to = 0;
    for (let from = 0; from < this.#used; from++) {
      const value = values[from];
      if (value === undefined) continue;
      ids[to] = ids[from];
      values[to] = value;
      to++;
    }
    // The places past the entries keep their length (no new backing store when they fill
    // again) but not their values.
    for (let at = to; at < this.#used; at++) values[at] = undefined;
    this.#used = to;
  }
}
