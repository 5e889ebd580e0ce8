/**
 * The arithmetic of drift detection, pure and allocation-free on the hot path:
 *
 *   - running mean and variance (Welford), merged across workers and subtracted for a sliding window
 *     (Chan et al.'s parallel formula, and its inverse);
 *   - histogram counts on a reference profile's bin edges (values outside the edges count in the first or
 *     last bin);
 *   - the population stability index (PSI) between two histograms, and the mean shift in reference
 *     standard deviations (z-score).
 */

/** Count, mean and sum of squared deviations (M2) of a stream of numbers. */
export interface Moments {
  n: number;
  mean: number;
  m2: number;
}

export const emptyMoments = (): Moments => ({ n: 0, mean: 0, m2: 0 });

/** Welford's update with one value. */
export function addValue(m: Moments, x: number): void {
  m.n++;
  const d = x - m.mean;
  m.mean += d / m.n;
  m.m2 += d * (x - m.mean);
}

/** The moments of two disjoint streams together (Chan, Golub, LeVeque). */
export function mergeMoments(a: Moments, b: Moments): Moments {
  if (a.n === 0) return { ...b };
  if (b.n === 0) return { ...a };
  const n = a.n + b.n;
  const d = b.mean - a.mean;
  return { n, mean: a.mean + (d * b.n) / n, m2: a.m2 + b.m2 + (d * d * a.n * b.n) / n };
}

/**
 * The moments of the values in `total` that are not in `older`, where `older` is an earlier snapshot of
 * the same stream: the inverse of mergeMoments. This is how a cumulative count becomes a window.
 */
export function subtractMoments(total: Moments, older: Moments): Moments {
  const n = total.n - older.n;
  if (n <= 0) return emptyMoments();
  if (older.n === 0) return { ...total };
  const mean = (total.n * total.mean - older.n * older.mean) / n;
  const d = mean - older.mean;
  const m2 = total.m2 - older.m2 - (d * d * older.n * n) / total.n;
  return { n, mean, m2: Math.max(0, m2) };
}

/** Sample variance (n − 1); 0 for fewer than two values. */
export function variance(m: Moments): number {
  return m.n > 1 ? m.m2 / (m.n - 1) : 0;
}

export function std(m: Moments): number {
  return Math.sqrt(variance(m));
}

/**
 * The bin of `x` for ascending `edges` (k + 1 edges make k bins; bin i is [edges[i], edges[i+1]), the last
 * bin also takes its upper edge). Values below the first edge go to bin 0, above the last to bin k − 1,
 * NaN to bin 0. Binary search: log2(k) comparisons.
 */
export function binIndex(edges: ArrayLike<number>, x: number): number {
  const last = edges.length - 2;
  if (last <= 0 || !(x >= edges[1]!)) return 0;
  if (x >= edges[last]!) return last;
  let lo = 1;
  let hi = last;
  // Invariant: edges[lo] <= x < edges[hi].
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (x >= edges[mid]!) lo = mid;
    else hi = mid;
  }
  return lo;
}

/** Share of each bin; `floor` replaces empty bins so the logarithm in PSI stays finite. */
export function proportions(counts: ArrayLike<number>, floor = 1e-4): number[] {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i]!;
  const out = new Array<number>(counts.length);
  for (let i = 0; i < counts.length; i++) out[i] = Math.max(total > 0 ? counts[i]! / total : 0, floor);
  return out;
}

/**
 * Population stability index: Σ (actual − expected) · ln(actual / expected) over the bins, on shares.
 * Rules of thumb: below 0.1 no shift, 0.1–0.25 a moderate one, above 0.25 a significant one. Under no
 * shift its expected value is about (bins − 1) / samples, so it needs a few hundred samples to mean much.
 */
export function psi(expectedCounts: ArrayLike<number>, actualCounts: ArrayLike<number>): number {
  if (expectedCounts.length !== actualCounts.length) throw new Error(`psi: ${expectedCounts.length} reference bins against ${actualCounts.length} live ones`);
  const e = proportions(expectedCounts);
  const a = proportions(actualCounts);
  let s = 0;
  for (let i = 0; i < e.length; i++) s += (a[i]! - e[i]!) * Math.log(a[i]! / e[i]!);
  return s;
}

/**
 * How far the live mean moved, in reference standard deviations: (live mean − reference mean) / reference
 * std. Null when the reference has no spread (a constant feature) — PSI still covers it.
 */
export function zScore(refMean: number, refStd: number, liveMean: number): number | null {
  if (!(refStd > 0) || !Number.isFinite(liveMean)) return null;
  return (liveMean - refMean) / refStd;
}

/** The q-quantile (0..1) of ascending `sorted` values with linear interpolation, optionally weighted evenly. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}
