/** Top-k classes, softmax and sigmoid. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ClassificationOutputSpec, Tensor } from '@inferrer/core';
import { activate, classify } from '../../src/index.ts';

const t = (rows: number[][]): Tensor => ({ type: 'float32', dims: [rows.length, rows[0]!.length], data: new Float32Array(rows.flat()) });
const spec: ClassificationOutputSpec = { kind: 'classification', output: 'p', activation: 'none', labels: ['cat', 'dog', 'bird'] };

test('top-k labels, best first, per row; k is capped by the class count', () => {
  const r = classify(
    t([
      [0.1, 0.7, 0.2],
      [0.5, 0.2, 0.3],
    ]),
    spec,
    2,
  );
  assert.deepEqual(
    r.map((row) => row.map((c) => c.label)),
    [
      ['dog', 'bird'],
      ['cat', 'bird'],
    ],
  );
  assert.equal(classify(t([[0.1, 0.7, 0.2]]), spec, 99)[0]!.length, 3);
  assert.deepEqual(classify(t([[0.1, 0.7, 0.2]]), { ...spec, labels: undefined } as ClassificationOutputSpec, 1)[0]![0], {
    label: '1',
    index: 1,
    score: Math.fround(0.7),
  });
});

test('softmax when the model answers logits; sigmoid for independent logits', () => {
  const p = classify(t([[1, 2, 3]]), { ...spec, activation: 'softmax' }, 3)[0]!;
  const e = [Math.exp(1), Math.exp(2), Math.exp(3)];
  const sum = e[0]! + e[1]! + e[2]!;
  assert.deepEqual(
    p.map((c) => c.label),
    ['bird', 'dog', 'cat'],
  );
  assert.ok(Math.abs(p[0]!.score - e[2]! / sum) < 1e-9);
  assert.ok(Math.abs(p.reduce((s, c) => s + c.score, 0) - 1) < 1e-9);
  assert.deepEqual(activate([0], 'sigmoid'), [0.5]);
  // Large logits do not overflow.
  assert.deepEqual(activate([1000, 1000], 'softmax'), [0.5, 0.5]);
});
