/**
 * Items that are due at a time, taken in the order they were put in: a queue for deadlines
 * that mostly come in order (one wait for all of them), with no timer and no allocation per
 * item once its arrays have grown. Pure: time is an argument.
 *
 * @module
 */

/** A first-in, first-out queue of items, each due at a time in ms. */
export class Deadlines<T> {
  readonly #items: (T | undefined)[] = [];
  readonly #dueAtMs: number[] = [];
  #head = 0;

  /** Items not taken yet. */
  get size(): number {
    return this.#items.length - this.#head;
  }

  /** Puts `item` in, due at `dueAtMs`. */
  push(item: T, dueAtMs: number): void {
    this.#items.push(item);
    this.#dueAtMs.push(dueAtMs);
  }

  /**
   * Takes out, first in first, the items due at or before `nowMs`, calling `fn` on each. Stops
   * at the first that is not due, though one put in after it may be: deadlines put in out of
   * order wait for the ones before them.
   */
  takeDue(nowMs: number, fn: (item: T) => void): void {
    const items = this.#items;
    while (this.#head < items.length && this.#dueAtMs[this.#head] <= nowMs) {
      const item = items[this.#head] as T;
      items[this.#head++] = undefined;
      fn(item);
    }
    if (this.#head === items.length) this.clear();
  }

  /** Drops every item. */
  clear(): void {
    this.#items.length = 0;
    this.#dueAtMs.length = 0;
    this.#head = 0;
  }
}
