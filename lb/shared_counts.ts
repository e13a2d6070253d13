/**
 * Counts the workers of one load balancer (`lb --workers N`) share, in one
 * `SharedArrayBuffer` updated with `Atomics`, so that every limit stays a limit of the whole
 * load balancer: connections at once (`--max-conns`), NAT rows (the log's table length), the
 * load of each backend (least-conn, p2c and `maxconn` see every worker's connections), a flag
 * per backend that passive health checks read, and connections per client IP
 * (`--max-conns-per-ip`). Nothing here touches a socket or a clock.
 *
 * @module
 */

/** Header words. */
const ACTIVE = 0;
const NAT_ROWS = 1;
const IP_LOCK = 2;
const BACKEND_SLOTS = 3;
const IP_SLOTS = 4;
const HEADER = 8;
/** Words per backend slot: load, failing. */
const BACKEND_WORDS = 2;
/** Words per client IP slot: two hashes (both 0: empty) and a count. */
const IP_WORDS = 3;

/** Sizes of a new {@linkcode SharedCounts}. */
export interface SharedCountsSize {
  /** Backends that can have a slot at once. */
  backendSlots: number;
  /** Client IPs that can be counted at once (rounded up to a power of two). */
  ipSlots: number;
}

/** Two 32-bit FNV-1a hashes of `text` with different offsets; never both zero. */
function hashes(text: string): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x050c5d1f;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193) ^ (b >>> 15);
  }
  return [a | 1, b];
}

/** See the module documentation. Create it once in the main thread; attach in each worker. */
export class SharedCounts {
  /** The memory, to hand to workers. */
  readonly buffer: SharedArrayBuffer;
  readonly #words: Int32Array;
  readonly #backendSlots: number;
  readonly #ipSlots: number;
  readonly #ipBase: number;

  /** Attaches to `buffer`, made by {@linkcode SharedCounts.create}. */
  constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    this.#words = new Int32Array(buffer);
    this.#backendSlots = this.#words[BACKEND_SLOTS];
    this.#ipSlots = this.#words[IP_SLOTS];
    this.#ipBase = HEADER + this.#backendSlots * BACKEND_WORDS;
  }

  /** New counts, all zero, of `size`. */
  static create(size: SharedCountsSize): SharedCounts {
    let ipSlots = 16;
    while (ipSlots < size.ipSlots) ipSlots *= 2;
    const words = HEADER + size.backendSlots * BACKEND_WORDS + ipSlots * IP_WORDS;
    const buffer = new SharedArrayBuffer(words * 4);
    const view = new Int32Array(buffer);
    view[BACKEND_SLOTS] = size.backendSlots;
    view[IP_SLOTS] = ipSlots;
    return new SharedCounts(buffer);
  }

  /** Backend slots there are. */
  get backendSlots(): number {
    return this.#backendSlots;
  }

  /** Adds `delta` to the connections at once; returns the new count. */
  addActive(delta: number): number {
    return Atomics.add(this.#words, ACTIVE, delta) + delta;
  }

  /** Connections at once, every worker's. */
  get active(): number {
    return Atomics.load(this.#words, ACTIVE);
  }

  /** Adds `delta` to the NAT rows; returns the new count. */
  addNatRows(delta: number): number {
    return Atomics.add(this.#words, NAT_ROWS, delta) + delta;
  }

  /** NAT rows, every worker's. */
  get natRows(): number {
    return Atomics.load(this.#words, NAT_ROWS);
  }

  /** Adds `delta` to the load of backend slot `slot`. */
  addLoad(slot: number, delta: number): void {
    Atomics.add(this.#words, HEADER + slot * BACKEND_WORDS, delta);
  }

  /** The load (connections open plus connects in flight) of backend slot `slot`. */
  load(slot: number): number {
    return Atomics.load(this.#words, HEADER + slot * BACKEND_WORDS);
  }

  /** Marks backend slot `slot` as having failures in a row (or not). */
  setFailing(slot: number, failing: boolean): void {
    Atomics.store(this.#words, HEADER + slot * BACKEND_WORDS + 1, failing ? 1 : 0);
  }

  /** Whether backend slot `slot` has failures in a row that a success would reset. */
  failing(slot: number): boolean {
    return Atomics.load(this.#words, HEADER + slot * BACKEND_WORDS + 1) === 1;
  }

  /** Zeroes backend slot `slot` for a new backend. */
  resetSlot(slot: number): void {
    Atomics.store(this.#words, HEADER + slot * BACKEND_WORDS, 0);
    Atomics.store(this.#words, HEADER + slot * BACKEND_WORDS + 1, 0);
  }

  /**
   * Adds `delta` to the connections of client `ip`; returns the new count, or -1 when the
   * table is full and `ip` is not in it (the caller then lets the connection in uncounted).
   * A count that reaches 0 frees its slot.
   */
  addIp(ip: string, delta: number): number {
    const [a, b] = hashes(ip);
    const words = this.#words;
    const mask = this.#ipSlots - 1;
    this.#lock();
    try {
      let slot = b & mask;
      for (let probes = 0; probes < this.#ipSlots; probes++, slot = (slot + 1) & mask) {
        const at = this.#ipBase + slot * IP_WORDS;
        const empty = words[at] === 0 && words[at + 1] === 0;
        if (empty) {
          if (delta <= 0) return 0;
          words[at] = a;
          words[at + 1] = b;
          words[at + 2] = delta;
          return delta;
        }
        if (words[at] !== a || words[at + 1] !== b) continue;
        const count = words[at + 2] + delta;
        if (count > 0) {
          words[at + 2] = count;
          return count;
        }
        this.#free(slot);
        return 0;
      }
      return -1;
    } finally {
      Atomics.store(words, IP_LOCK, 0);
    }
  }

  /** Client IPs counted now (for tests). */
  ipCount(): number {
    let n = 0;
    for (let slot = 0; slot < this.#ipSlots; slot++) {
      const at = this.#ipBase + slot * IP_WORDS;
      if (this.#words[at] !== 0 || this.#words[at + 1] !== 0) n++;
    }
    return n;
  }

  #lock(): void {
    // Held for a few hundred nanoseconds at most: spinning beats sleeping.
    while (Atomics.compareExchange(this.#words, IP_LOCK, 0, 1) !== 0) {
      // spin
    }
  }

  /** Empties `slot` and moves later entries of its probe run back (linear probing delete). */
  #free(slot: number): void {
    const words = this.#words;
    const mask = this.#ipSlots - 1;
    let hole = slot;
    let next = (hole + 1) & mask;
    for (let probes = 1; probes < this.#ipSlots; probes++) {
      const at = this.#ipBase + next * IP_WORDS;
      if (words[at] === 0 && words[at + 1] === 0) break;
      const home = words[at + 1] & mask;
      // Move the entry into the hole unless its home lies cyclically in (hole, next].
      const stays = hole <= next ? hole < home && home <= next : hole < home || home <= next;
      if (!stays) {
        const to = this.#ipBase + hole * IP_WORDS;
        words[to] = words[at];
        words[to + 1] = words[at + 1];
        words[to + 2] = words[at + 2];
        hole = next;
      }
      next = (next + 1) & mask;
    }
    const at = this.#ipBase + hole * IP_WORDS;
    words[at] = 0;
    words[at + 1] = 0;
    words[at + 2] = 0;
  }
}
