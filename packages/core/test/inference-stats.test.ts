import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InferenceStats, emptyStats, sumStats } from '../src/inference-stats.ts';

test('one worker counts rows, stages, failures and runs per batch size', () => {
  const s = new InferenceStats();
  s.success('iris', 1, { rows: 3, totalMs: 2, queueMs: 0.5, inputMs: 0.25, inferMs: 1, outputMs: 0.125 });
  s.success('iris', 1, { rows: 1, totalMs: 1, queueMs: 0, inputMs: 0, inferMs: 1, outputMs: 0 });
  s.failure('iris', 1, 0.001);
  s.batch('iris', 1, 4, 1);
  s.batch('iris', 1, 4, 3);
  s.batch('iris', 1, 1, 1);
  const [v] = s.view();
  assert.equal(v!.name, 'iris');
  assert.equal(v!.version, '1');
  assert.equal(v!.inference_count, 4);
  assert.equal(v!.execution_count, 3);
  assert.deepEqual(v!.inference_stats.success, { count: 2, ns: 3_000_000 });
  assert.deepEqual(v!.inference_stats.queue, { count: 2, ns: 500_000 });
  assert.deepEqual(v!.inference_stats.compute_output, { count: 2, ns: 125_000 });
  assert.deepEqual(v!.inference_stats.fail, { count: 1, ns: 1000 });
  assert.deepEqual(
    v!.batch_stats.map((b) => [b.batch_size, b.compute_infer.count, b.compute_infer.ns]),
    [
      [1, 1, 1e6],
      [4, 2, 4e6],
    ],
  );
  assert.ok(v!.last_inference > 0);
});

test('sums add every worker per version, keep the latest last_inference and ignore malformed entries', () => {
  const a = emptyStats('iris', '1');
  a.inference_count = 5;
  a.last_inference = 100;
  a.inference_stats.success = { count: 5, ns: 50 };
  a.batch_stats = [{ batch_size: 2, compute_input: { count: 0, ns: 0 }, compute_infer: { count: 1, ns: 7 }, compute_output: { count: 0, ns: 0 } }];
  const b = structuredClone(a);
  b.last_inference = 300;
  const other = emptyStats('diabetes', '2');
  const sum = sumStats([
    [a, other],
    [b, { name: 7 } as never],
  ]);
  assert.deepEqual(
    sum.map((s) => `${s.name}@${s.version}`),
    ['diabetes@2', 'iris@1'],
  );
  const iris = sum[1]!;
  assert.equal(iris.inference_count, 10);
  assert.equal(iris.last_inference, 300);
  assert.deepEqual(iris.inference_stats.success, { count: 10, ns: 100 });
  assert.deepEqual(iris.batch_stats[0]!.compute_infer, { count: 2, ns: 14 });
});
