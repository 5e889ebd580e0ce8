/**
 * Live drift statistics of one model version in one worker: per feature of its reference profile, the
 * running moments (Welford) and the counts on the profile's bins, cumulative since the tracker started.
 * The metrics service sums the workers' snapshots and takes windows by subtraction.
 *
 * A CaptureAccumulator gathers what a new profile needs from the first N live rows instead: exact
 * moments and a bounded uniform sample (reservoir) of each feature's values.
 */
import type { NamedTensors } from '@inferrer/core';
import { type FeatureSlot, forEachValue, inputSlots, outputSlots, shapeKey } from './features.ts';
import { type DriftProfile, type FeatureProfile, MAX_DRIFT_FEATURES, featureProfile } from './profile.ts';
import { type Moments, addValue, binIndex, emptyMoments, mergeMoments } from './stats.ts';

/** One feature's cumulative live statistics. */
export interface FeatureStats {
  name: string;
  n: number;
  mean: number;
  m2: number;
  counts: number[];
}

export interface TrackerSnapshot {
  /** Rows observed. */
  rows: number;
  inputs: FeatureStats[];
  outputs: FeatureStats[];
}

interface Tracked {
  moments: Moments;
  edges: Float64Array;
  counts: Float64Array;
}

interface BoundSlot {
  slot: FeatureSlot;
  target: Tracked;
}

class Side {
  readonly features: { name: string; tracked: Tracked }[];
  readonly #byName: Map<string, Tracked>;
  readonly #bound = new Map<string, BoundSlot[]>();
  readonly #slots: (t: NamedTensors, order: readonly string[]) => FeatureSlot[];

  constructor(profile: FeatureProfile[], slots: (t: NamedTensors, order: readonly string[]) => FeatureSlot[]) {
    this.features = profile.slice(0, MAX_DRIFT_FEATURES).map((f) => ({
      name: f.name,
      tracked: { moments: emptyMoments(), edges: Float64Array.from(f.edges), counts: new Float64Array(f.counts.length) },
    }));
    this.#byName = new Map(this.features.map((f) => [f.name, f.tracked]));
    this.#slots = slots;
  }

  observe(tensors: NamedTensors, order: readonly string[], rows: number): void {
    if (this.features.length === 0) return;
    const key = shapeKey(tensors, order);
    let bound = this.#bound.get(key);
    if (!bound) {
      bound = [];
      for (const slot of this.#slots(tensors, order)) {
        const target = this.#byName.get(slot.name);
        if (target) bound.push({ slot, target });
      }
      if (this.#bound.size > 64) this.#bound.clear();
      this.#bound.set(key, bound);
    }
    for (const { slot, target } of bound) {
      const t = tensors[slot.tensor]!;
      const m = target.moments;
      const edges = target.edges;
      const counts = target.counts;
      const add = (x: number): void => {
        if (Number.isNaN(x)) return;
        m.n++;
        const d = x - m.mean;
        m.mean += d / m.n;
        m.m2 += d * (x - m.mean);
        counts[binIndex(edges, x)]!++;
      };
      for (let r = 0; r < rows; r++) forEachValue(t, slot, r, add);
    }
  }

  snapshot(): FeatureStats[] {
    return this.features.map((f) => ({
      name: f.name,
      n: f.tracked.moments.n,
      mean: f.tracked.moments.mean,
      m2: f.tracked.moments.m2,
      counts: Array.from(f.tracked.counts),
    }));
  }
}

export class DriftTracker {
  readonly profile: DriftProfile;
  readonly startedAt = Date.now();
  #rows = 0;
  readonly #inputs: Side;
  readonly #outputs: Side;

  constructor(profile: DriftProfile) {
    this.profile = profile;
    this.#inputs = new Side(profile.inputs, inputSlots);
    this.#outputs = new Side(profile.outputs, outputSlots);
  }

  /** Counts one request (or batch) of `rows` rows; `inputOrder` / `outputOrder` are the signature's names. */
  observe(inputs: NamedTensors, inputOrder: readonly string[], outputs: NamedTensors, outputOrder: readonly string[], rows: number): void {
    this.observeInputs(inputs, inputOrder, rows);
    this.observeOutputs(outputs, outputOrder, rows);
  }

  /**
   * Inputs alone, before the run: the batcher hands input buffers to the session's worker thread, after
   * which they are gone from this one. Rows are counted here.
   */
  observeInputs(inputs: NamedTensors, inputOrder: readonly string[], rows: number): void {
    this.#rows += rows;
    this.#inputs.observe(inputs, inputOrder, rows);
  }

  observeOutputs(outputs: NamedTensors, outputOrder: readonly string[], rows: number): void {
    this.#outputs.observe(outputs, outputOrder, rows);
  }

  get rows(): number {
    return this.#rows;
  }

  snapshot(): TrackerSnapshot {
    return { rows: this.#rows, inputs: this.#inputs.snapshot(), outputs: this.#outputs.snapshot() };
  }
}

/** Values kept per feature for the bin edges of a captured profile. */
export const CAPTURE_RESERVOIR = 1000;

/** One feature of a capture: exact moments, the range, and a uniform sample of its values. */
export interface CapturedFeature {
  name: string;
  n: number;
  mean: number;
  m2: number;
  /** Values the reservoir drew from (≥ sample.length). */
  seen: number;
  sample: number[];
}

export interface CaptureSnapshot {
  rows: number;
  target: number;
  inputs: CapturedFeature[];
  outputs: CapturedFeature[];
}

class CaptureSide {
  readonly #features = new Map<string, { moments: Moments; seen: number; sample: number[] }>();

  observe(tensors: NamedTensors, slots: FeatureSlot[], rows: number, random: () => number): void {
    for (const slot of slots) {
      let f = this.#features.get(slot.name);
      if (!f) {
        if (this.#features.size >= MAX_DRIFT_FEATURES) continue;
        f = { moments: emptyMoments(), seen: 0, sample: [] };
        this.#features.set(slot.name, f);
      }
      const feature = f;
      const add = (x: number): void => {
        if (Number.isNaN(x)) return;
        addValue(feature.moments, x);
        feature.seen++;
        if (feature.sample.length < CAPTURE_RESERVOIR) feature.sample.push(x);
        else {
          const j = Math.floor(random() * feature.seen);
          if (j < CAPTURE_RESERVOIR) feature.sample[j] = x;
        }
      };
      for (let r = 0; r < rows; r++) forEachValue(tensors[slot.tensor]!, slot, r, add);
    }
  }

  snapshot(): CapturedFeature[] {
    return [...this.#features].map(([name, f]) => ({ name, n: f.moments.n, mean: f.moments.mean, m2: f.moments.m2, seen: f.seen, sample: [...f.sample] }));
  }
}

export class CaptureAccumulator {
  readonly target: number;
  #rows = 0;
  readonly #inputs = new CaptureSide();
  readonly #outputs = new CaptureSide();
  readonly #random: () => number;

  constructor(target: number, random: () => number = Math.random) {
    this.target = target;
    this.#random = random;
  }

  get done(): boolean {
    return this.#rows >= this.target;
  }

  observe(inputs: NamedTensors, inputOrder: readonly string[], outputs: NamedTensors, outputOrder: readonly string[], rows: number): void {
    if (!this.observeInputs(inputs, inputOrder, rows)) return;
    this.observeOutputs(outputs, outputOrder, rows);
  }

  /** Inputs before the run (see DriftTracker.observeInputs); false once the capture has its rows. */
  observeInputs(inputs: NamedTensors, inputOrder: readonly string[], rows: number): boolean {
    if (this.done) return false;
    this.#rows += rows;
    this.#inputs.observe(inputs, inputSlots(inputs, inputOrder), rows, this.#random);
    return true;
  }

  /** Outputs of rows whose inputs were counted (true from observeInputs). */
  observeOutputs(outputs: NamedTensors, outputOrder: readonly string[], rows: number): void {
    this.#outputs.observe(outputs, outputSlots(outputs, outputOrder), rows, this.#random);
  }

  snapshot(): CaptureSnapshot {
    return { rows: this.#rows, target: this.target, inputs: this.#inputs.snapshot(), outputs: this.#outputs.snapshot() };
  }
}

/**
 * A profile from the captures of several workers: moments merged exactly, bin edges and shares from the
 * pooled samples, each value weighted by how many values its worker's sample stands for.
 */
export function profileFromCaptures(captures: CaptureSnapshot[], createdAt = new Date().toISOString()): DriftProfile {
  const side = (pick: (c: CaptureSnapshot) => CapturedFeature[]): FeatureProfile[] => {
    const byName = new Map<string, CapturedFeature[]>();
    for (const c of captures) for (const f of pick(c)) byName.set(f.name, [...(byName.get(f.name) ?? []), f]);
    return [...byName].map(([name, parts]) => {
      let moments = emptyMoments();
      const values: number[] = [];
      const weights: number[] = [];
      for (const p of parts) {
        moments = mergeMoments(moments, { n: p.n, mean: p.mean, m2: p.m2 });
        const w = p.sample.length > 0 ? p.seen / p.sample.length : 0;
        for (const x of p.sample) {
          values.push(x);
          weights.push(w);
        }
      }
      return featureProfile(name, values, { weights, moments });
    });
  };
  return {
    source: 'capture',
    created_at: createdAt,
    samples: captures.reduce((n, c) => n + c.rows, 0),
    inputs: side((c) => c.inputs),
    outputs: side((c) => c.outputs),
  };
}

/** A profile from rows of numbers (a sample file), one feature per column named by `names`. */
export function profileFromRows(rows: readonly (readonly number[])[], names: readonly string[], createdAt = new Date().toISOString()): DriftProfile {
  const inputs = names.map((name, j) => {
    const col = new Float64Array(rows.length);
    for (let i = 0; i < rows.length; i++) col[i] = rows[i]![j]!;
    return featureProfile(name, col);
  });
  return { source: 'sample', created_at: createdAt, samples: rows.length, inputs, outputs: [] };
}
