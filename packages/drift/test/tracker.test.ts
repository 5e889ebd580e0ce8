import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { NamedTensors } from '@inferrer/core';
import {
  CaptureAccumulator,
  DEFAULT_THRESHOLDS,
  DriftTracker,
  MAX_DRIFT_FEATURES,
  addStats,
  featureProfile,
  inputSlots,
  outputSlots,
  profileFromCaptures,
  profileFromRows,
  profileProblems,
  scoreFeatures,
  tabularFeatureNames,
  windowStats,
} from '@inferrer/drift';
import { rng } from './stats.test.ts';

const normal = (r: () => number) => () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
const MEANS = [5.8, 3.0, 3.8, 1.2];
const STDS = [0.8, 0.4, 1.8, 0.8];
function rows(n: number, seed: number, shift: number[] = [0, 0, 0, 0]): number[][] {
  const g = normal(rng(seed));
  return Array.from({ length: n }, () => MEANS.map((m, j) => m + STDS[j]! * g() + shift[j]! * STDS[j]!));
}
const batch = (rs: number[][]): NamedTensors => ({ input: { type: 'float32', dims: [rs.length, 4], data: Float32Array.from(rs.flat()) } });
const NAMES = ['input[0]', 'input[1]', 'input[2]', 'input[3]'];

describe('reference profiles', () => {
  test('deciles for continuous values, one bin per value for a few distinct ones', () => {
    const p = featureProfile(
      'x',
      Array.from({ length: 1000 }, (_, i) => i),
    );
    assert.equal(p.edges.length, 11);
    assert.equal(p.counts.length, 10);
    for (const c of p.counts) assert.ok(c >= 99 && c <= 101, `even bins: ${p.counts}`);
    assert.equal(p.count, 1000);
    const labels = featureProfile('label', [0, 0, 1, 2, 2, 2]);
    assert.deepEqual(labels.edges, [0, 0.5, 1.5, 2]);
    assert.deepEqual(labels.counts, [2, 1, 3]);
    const constant = featureProfile('c', [4, 4, 4]);
    assert.deepEqual([constant.edges, constant.counts, constant.std], [[4, 4], [3], 0]);
  });

  test('from rows: one feature per column, checked by profileProblems', () => {
    const p = profileFromRows(rows(500, 1), NAMES);
    assert.equal(p.source, 'sample');
    assert.equal(p.samples, 500);
    assert.deepEqual(
      p.inputs.map((f) => f.name),
      NAMES,
    );
    assert.ok(Math.abs(p.inputs[2]!.mean - 3.8) < 0.3 && Math.abs(p.inputs[2]!.std - 1.8) < 0.2);
    assert.deepEqual(profileProblems(p), []);
    assert.match(profileProblems({ inputs: [{ name: 'a', count: 1, mean: 0, std: 1, edges: [1, 0], counts: [1] }], outputs: [] }).join(), /ascend/);
    assert.match(profileProblems({ inputs: [{ name: 'a', count: 1, mean: 0, std: 1, edges: [0, 1], counts: [1, 2] }], outputs: [] }).join(), /counts/);
  });

  test('feature names of a signature; images cannot come from rows', () => {
    assert.deepEqual(tabularFeatureNames({ inputs: [{ name: 'input', type: 'float32', shape: ['batch', 4] }], outputs: [] }), { names: NAMES, rowLength: 4 });
    assert.match(tabularFeatureNames({ inputs: [{ name: 'img', type: 'float32', shape: ['batch', 3, 32, 32] }], outputs: [] }).problem ?? '', /image/);
  });
});

describe('live tracking and scores', () => {
  const profile = profileFromRows(rows(3000, 2), NAMES);
  const score = (t: DriftTracker) => {
    const s = t.snapshot();
    return scoreFeatures(profile.inputs, s.inputs, s.rows, 'input', DEFAULT_THRESHOLDS);
  };

  test('traffic from the reference distribution stays ok', () => {
    const t = new DriftTracker(profile);
    for (let i = 0; i < 20; i++) t.observe(batch(rows(50, 100 + i)), ['input'], {}, [], 50);
    assert.equal(t.rows, 1000);
    const scores = score(t);
    for (const s of scores) {
      assert.equal(s.status, 'ok', JSON.stringify(s));
      assert.ok(s.psi! < 0.05);
      assert.equal(s.samples, 1000);
    }
  });

  test('one shifted feature is flagged, the others are not', () => {
    const t = new DriftTracker(profile);
    for (let i = 0; i < 20; i++) t.observe(batch(rows(50, 200 + i, [0, 0, 1.5, 0])), ['input'], {}, [], 50);
    const scores = score(t);
    assert.deepEqual(
      scores.map((s) => s.status),
      ['ok', 'ok', 'drift', 'ok'],
    );
    assert.ok(scores[2]!.psi! > 0.25 && Math.abs(scores[2]!.zscore! - 1.5) < 0.2);
  });

  test('too few samples: a status, no score', () => {
    const t = new DriftTracker(profile);
    t.observe(batch(rows(10, 3)), ['input'], {}, [], 10);
    for (const s of score(t)) assert.deepEqual([s.status, s.psi, s.zscore, s.samples], ['too_few_samples', null, null, 10]);
  });

  test('windows by subtraction and workers by addition give the counts of the span', () => {
    const a = new DriftTracker(profile);
    const b = new DriftTracker(profile);
    a.observe(batch(rows(300, 4)), ['input'], {}, [], 300);
    const early = a.snapshot();
    const late = rows(400, 5, [2, 0, 0, 0]);
    a.observe(batch(late), ['input'], {}, [], 400);
    b.observe(batch(late), ['input'], {}, [], 400);
    const win = windowStats(a.snapshot().inputs, early.inputs);
    const direct = b.snapshot().inputs;
    for (let j = 0; j < 4; j++) {
      assert.equal(win[j]!.n, 400);
      assert.deepEqual(win[j]!.counts, direct[j]!.counts);
      assert.ok(Math.abs(win[j]!.mean - direct[j]!.mean) < 1e-9);
      assert.ok(Math.abs(win[j]!.m2 - direct[j]!.m2) < 1e-6 * direct[j]!.m2);
    }
    const both = addStats(direct, direct);
    assert.equal(both[0]!.n, 800);
    assert.ok(Math.abs(both[0]!.mean - direct[0]!.mean) < 1e-12);
    assert.equal(windowStats(win, undefined), win);
  });
});

describe('features of images and outputs', () => {
  test('an NCHW image gives one feature per channel over (sampled) pixels', () => {
    const img: NamedTensors = {
      image: { type: 'float32', dims: [2, 3, 8, 8], data: Float32Array.from({ length: 2 * 3 * 64 }, (_, i) => Math.floor(i / 64) % 3) },
    };
    const slots = inputSlots(img, ['image']);
    assert.deepEqual(
      slots.map((s) => s.name),
      ['image[channel 0]', 'image[channel 1]', 'image[channel 2]'],
    );
    const profile = {
      source: 'upload' as const,
      created_at: '',
      samples: 0,
      inputs: slots.map((s) => ({ name: s.name, count: 1, mean: 0, std: 1, edges: [0, 1, 2], counts: [1, 1] })),
      outputs: [],
    };
    const t = new DriftTracker(profile);
    t.observe(img, ['image'], {}, [], 2);
    const s = t.snapshot().inputs;
    assert.deepEqual(
      s.map((f) => [f.n, f.mean]),
      [
        [128, 0],
        [128, 1],
        [128, 2],
      ],
    );
    assert.deepEqual(s[2]!.counts, [0, 128]);
  });

  test('outputs: a label as is, scores as predicted class and top score; int64 read as numbers', () => {
    const out: NamedTensors = {
      label: { type: 'int64', dims: [2], data: BigInt64Array.from([2n, 0n]) },
      probabilities: { type: 'float32', dims: [2, 3], data: Float32Array.from([0.1, 0.2, 0.7, 0.8, 0.1, 0.1]) },
    };
    const slots = outputSlots(out, ['label', 'probabilities']);
    assert.deepEqual(
      slots.map((s) => s.name),
      ['label', 'probabilities:class', 'probabilities:score'],
    );
    const cap = new CaptureAccumulator(2);
    cap.observe({}, [], out, ['label', 'probabilities'], 2);
    assert.ok(cap.done);
    const p = profileFromCaptures([cap.snapshot()], 'now');
    assert.deepEqual(p.outputs.map((f) => [f.name, f.mean]).slice(0, 2), [
      ['label', 1],
      ['probabilities:class', 1],
    ]);
    assert.ok(Math.abs(p.outputs[2]!.mean - 0.75) < 1e-6);
  });

  test('at most MAX_DRIFT_FEATURES features per side', () => {
    const wide: NamedTensors = { x: { type: 'float32', dims: [1, 1000], data: new Float32Array(1000) } };
    assert.equal(inputSlots(wide, ['x']).length, MAX_DRIFT_FEATURES);
  });
});

describe('capture', () => {
  test("workers' captures pool into one profile close to the distribution", () => {
    const a = new CaptureAccumulator(600, rng(7));
    const b = new CaptureAccumulator(600, rng(8));
    for (let i = 0; i < 30; i++) a.observe(batch(rows(50, 300 + i)), ['input'], {}, [], 50);
    b.observe(batch(rows(200, 400)), ['input'], {}, [], 200);
    assert.ok(a.done && !b.done);
    assert.equal(a.snapshot().rows, 600);
    const p = profileFromCaptures([a.snapshot(), b.snapshot()]);
    assert.equal(p.samples, 800);
    assert.deepEqual(
      p.inputs.map((f) => f.name),
      NAMES,
    );
    assert.equal(p.inputs[0]!.count, 800);
    assert.ok(Math.abs(p.inputs[2]!.mean - 3.8) < 0.2);
    assert.deepEqual(profileProblems(p), []);
    // The reference it makes does not flag fresh traffic from the same distribution.
    const t = new DriftTracker(p);
    t.observe(batch(rows(1000, 500)), ['input'], {}, [], 1000);
    const s = t.snapshot();
    for (const f of scoreFeatures(p.inputs, s.inputs, s.rows, 'input', DEFAULT_THRESHOLDS)) assert.equal(f.status, 'ok', JSON.stringify(f));
  });
});
