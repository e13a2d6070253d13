/** Settings of {@linkcode backoffMs}. */
export interface BackoffOptions {
  /** The ceiling of the first wait, in ms. */
  minMs: number;
  /** The highest ceiling, in ms; waits never exceed it. */
  maxMs: number;
  /** A number in [0, 1): `Math.random()` in use, fixed in tests. */
  random: number;
}

/**
 * How long to wait before retry number `attempt` (1, 2, ...): exponential backoff with jitter.
 * The ceiling doubles from `minMs` up to `maxMs`, and the wait is drawn between half the
 * ceiling and all of it, so that many clients cut off at once do not come back in step.
 */
export function backoffMs(attempt: number, options: BackoffOptions): number {
  const { minMs, maxMs, random } = options;
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(Math.max(attempt, 1) - 1, 30));
  return Math.round(ceiling / 2 + (ceiling / 2) * random);
}
