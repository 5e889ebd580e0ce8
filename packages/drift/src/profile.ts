/**
 * Reference profiles: what a model version's inputs and outputs looked like in the data it was trained
 * or validated on. Per feature: count, mean, std, and a histogram (ascending bin edges and the count in
 * each bin). Live traffic is counted on the same bins, so PSI compares like with like.
 */
import { type Moments, addValue, emptyMoments, std } from './stats.ts';

/** Features per side (inputs, outputs) a profile and a tracker follow; the rest are not tracked. */
export const MAX_DRIFT_FEATURES = 256;
/** Bins a generated histogram gets (deciles); uploaded profiles may use 1–64. */
export const DEFAULT_BINS = 10;
export const MAX_BINS = 64;

export interface FeatureProfile {
  name: string;
  count: number;
  mean: number;
  std: number;
  /** Ascending; k + 1 edges make k bins. Values outside count in the first or last bin. */
  edges: number[];
  counts: number[];
}

export interface DriftProfile {
  /** upload (sent with the model or on its own), sample (computed from rows the user sent), capture (live requests). */
  source: 'upload' | 'sample' | 'capture';
  created_at: string;
  /** Rows the profile was computed from. */
  samples: number;
  inputs: FeatureProfile[];
  outputs: FeatureProfile[];
}

/**
 * A feature's profile from observed values. With at most `bins` distinct values (class labels, small
 * integers) each value gets a bin of its own (edges halfway between neighbours); otherwise the edges are
 * quantiles, so each bin holds about the same share of the reference. `weights` (optional, one per value)
 * let pooled samples of different sizes count for what they stand for.
 */
export function featureProfile(
  name: string,
  values: ArrayLike<number>,
  opts: { bins?: number; weights?: ArrayLike<number>; moments?: Moments } = {},
): FeatureProfile {
  const bins = Math.max(1, Math.min(opts.bins ?? DEFAULT_BINS, MAX_BINS));
  const idx: number[] = [];
  for (let i = 0; i < values.length; i++) if (Number.isFinite(values[i]!)) idx.push(i);
  idx.sort((a, b) => values[a]! - values[b]!);
  const v = idx.map((i) => values[i]!);
  const w = idx.map((i) => (opts.weights ? opts.weights[i]! : 1));
  let moments = opts.moments;
  if (!moments) {
    moments = emptyMoments();
    for (const x of v) addValue(moments, x);
  }
  if (v.length === 0) return { name, count: moments.n, mean: moments.mean, std: std(moments), edges: [0, 0], counts: [0] };
  const distinct: number[] = [];
  for (const x of v) if (distinct.length === 0 || distinct[distinct.length - 1] !== x) distinct.push(x);
  let edges: number[];
  if (distinct.length <= bins) {
    edges = [distinct[0]!];
    for (let i = 1; i < distinct.length; i++) edges.push((distinct[i - 1]! + distinct[i]!) / 2);
    edges.push(distinct[distinct.length - 1]!);
  } else {
    const total = w.reduce((a, b) => a + b, 0);
    edges = [v[0]!];
    let cum = 0;
    let j = 0;
    for (let b = 1; b < bins; b++) {
      const target = (total * b) / bins;
      while (j < v.length - 1 && cum + w[j]! < target) cum += w[j++]!;
      const e = v[j]!;
      if (e > edges[edges.length - 1]!) edges.push(e);
    }
    if (v[v.length - 1]! > edges[edges.length - 1]!) edges.push(v[v.length - 1]!);
    if (edges.length === 1) edges.push(edges[0]!);
  }
  const counts = new Array<number>(edges.length - 1).fill(0);
  for (let i = 0; i < v.length; i++) counts[binOf(edges, v[i]!)]! += w[i]!;
  return { name, count: moments.n, mean: moments.mean, std: std(moments), edges, counts: counts.map((c) => Number(c.toFixed(6))) };
}

function binOf(edges: number[], x: number): number {
  const last = edges.length - 2;
  if (last <= 0 || x < edges[1]!) return 0;
  for (let i = last; i >= 1; i--) if (x >= edges[i]!) return i;
  return 0;
}

/** Problems with a profile a user sent (empty when it is usable). */
export function profileProblems(p: Pick<DriftProfile, 'inputs' | 'outputs'>): string[] {
  const out: string[] = [];
  for (const [side, list] of [
    ['inputs', p.inputs],
    ['outputs', p.outputs],
  ] as const) {
    if (list.length > MAX_DRIFT_FEATURES) out.push(`${side}: at most ${MAX_DRIFT_FEATURES} features (got ${list.length})`);
    const seen = new Set<string>();
    list.forEach((f, i) => {
      const at = `${side}[${i}] (${f.name})`;
      if (seen.has(f.name)) out.push(`${at}: the name appears twice`);
      seen.add(f.name);
      if (f.edges.length < 2 || f.edges.length > MAX_BINS + 1) out.push(`${at}: 2 to ${MAX_BINS + 1} bin edges`);
      if (f.counts.length !== f.edges.length - 1) out.push(`${at}: ${f.edges.length} edges need ${f.edges.length - 1} counts (got ${f.counts.length})`);
      for (let j = 1; j < f.edges.length; j++) {
        if (!(f.edges[j]! >= f.edges[j - 1]!)) {
          out.push(`${at}: bin edges must ascend`);
          break;
        }
      }
      if (!(f.std >= 0)) out.push(`${at}: std must be ≥ 0`);
    });
  }
  return out;
}
