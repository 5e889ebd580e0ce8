import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { addValue, binIndex, emptyMoments, mergeMoments, psi, quantile, std, subtractMoments, variance, zScore } from '@inferrer/drift';

/** A small deterministic generator (mulberry32), so the tests never flake. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const moments = (xs: number[]) => {
  const m = emptyMoments();
  for (const x of xs) addValue(m, x);
  return m;
};
const close = (a: number, b: number, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} ≈ ${b}`);

describe('Welford moments', () => {
  test('mean and sample variance match the two-pass formulas', () => {
    const xs = [2, 4, 4, 4, 5, 5, 7, 9];
    const m = moments(xs);
    close(m.mean, 5);
    close(variance(m), 32 / 7);
    close(std(m), Math.sqrt(32 / 7));
    assert.equal(variance(moments([3])), 0);
  });

  test('stay accurate with a large offset (where sum of squares loses everything)', () => {
    const xs = Array.from({ length: 1000 }, (_, i) => 1e9 + (i % 10));
    const m = moments(xs);
    close(m.mean, 1e9 + 4.5);
    close(variance(m), 8.2582582582, 1e-6);
  });

  test('merging two halves equals the whole; subtracting a prefix gives the suffix', () => {
    const r = rng(1);
    const xs = Array.from({ length: 500 }, () => r() * 10 - 3);
    const a = moments(xs.slice(0, 180));
    const b = moments(xs.slice(180));
    const all = moments(xs);
    const merged = mergeMoments(a, b);
    close(merged.mean, all.mean);
    close(merged.m2, all.m2, 1e-9);
    const suffix = subtractMoments(all, a);
    assert.equal(suffix.n, b.n);
    close(suffix.mean, b.mean, 1e-9);
    close(suffix.m2, b.m2, 1e-7);
    assert.deepEqual(subtractMoments(all, all), emptyMoments());
    assert.deepEqual(mergeMoments(emptyMoments(), b), b);
  });
});

describe('histogram bins', () => {
  const edges = [0, 1, 2, 3];
  test('half-open bins, the last one closed; outside values clamp to the ends', () => {
    assert.deepEqual(
      [-5, 0, 0.5, 1, 1.99, 2, 3, 99].map((x) => binIndex(edges, x)),
      [0, 0, 0, 1, 1, 2, 2, 2],
    );
    assert.equal(binIndex(edges, NaN), 0);
    assert.equal(binIndex([4, 4], 7), 0);
  });
  test('binary search agrees with a linear scan on many bins', () => {
    const e = Array.from({ length: 65 }, (_, i) => i * i);
    const r = rng(2);
    for (let k = 0; k < 2000; k++) {
      const x = r() * 5000 - 100;
      let lin = 0;
      for (let i = 1; i < e.length - 1; i++) if (x >= e[i]!) lin = i;
      assert.equal(binIndex(e, x), lin, `x=${x}`);
    }
  });
});

describe('PSI and z-score', () => {
  test('zero for identical shares, whatever the totals; symmetric', () => {
    assert.equal(psi([10, 20, 30], [100, 200, 300]), 0);
    close(psi([1, 2, 3], [3, 2, 1]), psi([3, 2, 1], [1, 2, 3]));
  });
  test('the textbook value for a known pair', () => {
    const e = [0.25, 0.25, 0.25, 0.25];
    const a = [0.1, 0.2, 0.3, 0.4];
    const want = a.reduce((s, ai, i) => s + (ai - e[i]!) * Math.log(ai / e[i]!), 0);
    close(psi(e, a), want);
    assert.ok(want > 0.1 && want < 0.25);
  });
  test('finite when a bin is empty on one side', () => {
    const p = psi([50, 50, 0], [0, 50, 50]);
    assert.ok(Number.isFinite(p) && p > 1);
  });
  test('refuses histograms of different sizes', () => {
    assert.throws(() => psi([1, 2], [1, 2, 3]), /bins/);
  });
  test('z-score in reference standard deviations; null without spread', () => {
    assert.equal(zScore(10, 2, 13), 1.5);
    assert.equal(zScore(10, 0, 13), null);
  });
  test('quantiles interpolate', () => {
    assert.equal(quantile([1, 2, 3, 4], 0.5), 2.5);
    assert.equal(quantile([1, 2, 3, 4], 0), 1);
    assert.ok(Number.isNaN(quantile([], 0.5)));
  });
});
