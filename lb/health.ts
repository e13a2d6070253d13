/** Thresholds of {@linkcode HealthState}. */
export interface HealthThresholds {
  /** Consecutive failures that make a live backend dead. */
  fall: number;
  /** Consecutive successes that bring a dead backend back. */
  rise: number;
}

/** A health transition. */
export type HealthChange = "up" | "down";

/**
 * The health of one backend as a pure state machine: feed it each check's result with the
 * time it was seen, and it says when a threshold is crossed. A backend starts alive, as the
 * original's did ("operating" at start-up).
 */
export class HealthState {
  #thresholds: HealthThresholds;
  #alive = true;
  #streak = 0;
  #lastCheckMs: number | undefined;
  #lastOk: boolean | undefined;
  #sinceMs: number | undefined;

  constructor(thresholds: HealthThresholds) {
    this.#thresholds = thresholds;
  }

  /** Replaces the thresholds (a reload); the current streak counts toward the new ones. */
  set thresholds(thresholds: HealthThresholds) {
    this.#thresholds = thresholds;
  }

  /** Whether the backend is alive now. */
  get alive(): boolean {
    return this.#alive;
  }

  /** When the last result was observed (ms), if ever. */
  get lastCheckMs(): number | undefined {
    return this.#lastCheckMs;
  }

  /** The last result observed, if any. */
  get lastOk(): boolean | undefined {
    return this.#lastOk;
  }

  /** When the current state began (ms), or undefined if it has not changed since start. */
  get sinceMs(): number | undefined {
    return this.#sinceMs;
  }

  /**
   * Records one result at `nowMs`. Returns `"down"` when this failure completes `fall` in a
   * row on a live backend, `"up"` when this success completes `rise` in a row on a dead one,
   * and undefined otherwise.
   */
  observe(ok: boolean, nowMs: number): HealthChange | undefined {
    this.#lastCheckMs = nowMs;
    this.#lastOk = ok;
    if (ok === this.#alive) {
      // A result that agrees with the state ends any streak toward the other state.
      this.#streak = 0;
      return undefined;
    }
    this.#streak++;
    const needed = this.#alive ? this.#thresholds.fall : this.#thresholds.rise;
    if (this.#streak < needed) return undefined;
    this.#alive = ok;
    this.#streak = 0;
    this.#sinceMs = nowMs;
    return ok ? "up" : "down";
  }
}

/**
 * When the next check of a backend starts (ms), given when the last one started and
 * finished. Checks start every `intervalMs` whatever they take, so a backend that dies is
 * marked down within `intervalMs * fall + timeoutMs` when the timeout is at most the
 * interval; a check that took longer than the interval is followed at once (checks of one
 * backend never overlap).
 */
export function nextCheckMs(startedMs: number, finishedMs: number, intervalMs: number): number {
  return Math.max(startedMs + intervalMs, finishedMs);
}
