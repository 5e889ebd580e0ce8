/** Paths of the real models the runtime tests load, and small tensor builders. Not a test file itself. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Tensor } from '@inferrer/core';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const IRIS = path.join(ROOT, 'models/demo/iris.onnx');
export const DIABETES = path.join(ROOT, 'models/demo/diabetes.onnx');
export const DIGITS = path.join(ROOT, 'models/demo/digits.onnx');
export const FIXTURES = path.join(ROOT, 'test/fixtures/models');
export const SLOW = path.join(FIXTURES, 'slow.onnx');
export const FIXED_BATCH = path.join(FIXTURES, 'fixed_batch.onnx');
export const MULTI_IO = path.join(FIXTURES, 'multi_io.onnx');
export const NOT_ONNX = path.join(FIXTURES, 'not_onnx.onnx');
export const EXTERNAL_ESCAPE = path.join(FIXTURES, 'external_escape.onnx');

export interface DemoSidecar {
  labels?: string[];
  example: unknown;
  expected: Record<string, unknown>;
}

/** models/demo/<name>.json: one held-out example and what the model answers for it. */
export function demo(name: 'iris' | 'diabetes' | 'digits'): DemoSidecar {
  return JSON.parse(readFileSync(path.join(ROOT, 'models/demo', `${name}.json`), 'utf8')) as DemoSidecar;
}

/** A float32 tensor of `rows` rows from a flat list (a fresh buffer each call: runs move their inputs). */
export function f32(rows: number, values: readonly number[]): Tensor {
  return { type: 'float32', dims: [rows, values.length / rows], data: new Float32Array(values) };
}

/** Iris rows from the dataset: the iris.json example (virginica), then a setosa and a versicolor. */
export const IRIS_ROWS: readonly (readonly number[])[] = [
  [6.7, 2.5, 5.8, 1.8],
  [5.1, 3.5, 1.4, 0.2],
  [5.9, 3.0, 4.2, 1.5],
];

/** Asserts |a - b| <= tol for each element. */
export function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what = 'value'): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= tol, `${what}[${i}]: ${actual[i]} is not within ${tol} of ${expected[i]}`);
  }
}
