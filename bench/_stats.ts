/**
 * Medians and spreads of repeated measurements.
 *
 * @module
 */

/** The median of `values` (NaN when empty). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Spread of `values` around their median, as (max - min) / median (0 for one value). */
export function spread(values: readonly number[]): number {
  if (values.length < 2) return 0;
  const m = median(values);
  return m === 0 ? 0 : (Math.max(...values) - Math.min(...values)) / Math.abs(m);
}

/** The `q` quantile (0..1) of `values`, nearest rank (NaN when empty). */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank];
}

/**
 * The one-sided sign test: the chance of at least `above` of `n` paired rounds going one way
 * when each is a coin toss (no difference between the two contenders). Small: the lead in those
 * rounds is not the noise of this machine. Exact (binomial, p = 1/2); 1 when `n` is 0.
 */
export function signTest(above: number, n: number): number {
  if (n <= 0 || above <= 0) return 1;
  if (above > n) return 0;
  // C(n, k) / 2^n summed from k = above to n, each term from the one before.
  let term = 2 ** -n;
  let sum = 0;
  for (let k = 1; k <= n; k++) {
    term = (term * (n - k + 1)) / k;
    if (k >= above) sum += term;
  }
  return Math.min(1, sum);
}
