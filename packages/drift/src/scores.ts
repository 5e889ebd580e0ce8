/**
 * From workers' cumulative counts to drift scores: add workers together, take a window as the difference
 * of two snapshots, and score each feature against its reference (PSI and z-score) with a status.
 */
import type { FeatureProfile } from './profile.ts';
import type { FeatureStats } from './tracker.ts';
import { mergeMoments, psi, subtractMoments, zScore } from './stats.ts';

export interface DriftThresholds {
  psiWarning: number;
  psiCritical: number;
  /** |z| at which the mean shift alone warns / counts as drift. */
  zWarning: number;
  zCritical: number;
  /** Rows a window needs before it gets a score. */
  minSamples: number;
}

export const DEFAULT_THRESHOLDS: DriftThresholds = Object.freeze({ psiWarning: 0.1, psiCritical: 0.25, zWarning: 0.5, zCritical: 1, minSamples: 200 });

export type DriftStatus = 'ok' | 'warning' | 'drift' | 'too_few_samples';

export interface FeatureScore {
  feature: string;
  side: 'input' | 'output';
  status: DriftStatus;
  /** Null below minSamples (status too_few_samples). */
  psi: number | null;
  zscore: number | null;
  /** Values counted in the window (pixels for an image channel, rows otherwise). */
  samples: number;
  live_mean: number | null;
  reference_mean: number;
  reference_std: number;
}

/** Features with the same names added together (several workers over the same span). */
export function addStats(a: FeatureStats[], b: FeatureStats[]): FeatureStats[] {
  const out = new Map(a.map((f) => [f.name, { ...f, counts: [...f.counts] }]));
  for (const f of b) {
    const x = out.get(f.name);
    if (!x || x.counts.length !== f.counts.length) {
      if (!x) out.set(f.name, { ...f, counts: [...f.counts] });
      continue;
    }
    const m = mergeMoments(x, f);
    out.set(f.name, { name: f.name, ...m, counts: x.counts.map((c, i) => c + f.counts[i]!) });
  }
  return [...out.values()];
}

/** What `now` counted since `then` (an earlier snapshot of the same tracker); features missing from `then` count whole. */
export function windowStats(now: FeatureStats[], then: FeatureStats[] | undefined): FeatureStats[] {
  if (!then) return now;
  const before = new Map(then.map((f) => [f.name, f]));
  return now.map((f) => {
    const b = before.get(f.name);
    if (!b || b.counts.length !== f.counts.length || b.n > f.n) return f;
    return { name: f.name, ...subtractMoments(f, b), counts: f.counts.map((c, i) => Math.max(0, c - b.counts[i]!)) };
  });
}

/** Scores each reference feature against the window; `rows` is the window's row count. */
export function scoreFeatures(reference: FeatureProfile[], live: FeatureStats[], rows: number, side: 'input' | 'output', t: DriftThresholds): FeatureScore[] {
  const byName = new Map(live.map((f) => [f.name, f]));
  return reference.map((ref) => {
    const f = byName.get(ref.name);
    const samples = f?.n ?? 0;
    const base = { feature: ref.name, side, samples, reference_mean: ref.mean, reference_std: ref.std };
    if (!f || rows < t.minSamples || samples === 0)
      return { ...base, status: 'too_few_samples', psi: null, zscore: null, live_mean: f && samples > 0 ? f.mean : null };
    const p = psi(ref.counts, f.counts);
    const z = zScore(ref.mean, ref.std, f.mean);
    const az = z === null ? 0 : Math.abs(z);
    const status: DriftStatus = p >= t.psiCritical || az >= t.zCritical ? 'drift' : p >= t.psiWarning || az >= t.zWarning ? 'warning' : 'ok';
    return { ...base, status, psi: round(p), zscore: z === null ? null : round(z), live_mean: round(f.mean) };
  });
}

const round = (x: number): number => Number(x.toPrecision(6));
