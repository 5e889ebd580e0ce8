import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { OnnxSession, SessionThreads } from '@inferrer/runtime';
import { MLP_SIZES, mlpModel } from '../../../test/helpers/mlp-models.ts';
import { IRIS, IRIS_ROWS, NOT_ONNX, SLOW, f32 } from './fixtures.ts';

describe('SessionThreads: many sessions on a few shared runtime threads', () => {
  let dir: string;
  const files: string[] = [];
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'session-threads-'));
    for (let i = 0; i < 12; i++) {
      const f = path.join(dir, `m${i}.onnx`);
      await writeFile(f, mlpModel(MLP_SIZES[i % 2]!, i + 1));
      files.push(f);
    }
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('twelve models on two threads answer like models on threads of their own', async () => {
    const pool = new SessionThreads(2);
    const shared: OnnxSession[] = [];
    try {
      for (const f of files) shared.push(await OnnxSession.load(f, { threads: pool }));
      assert.equal(pool.started, 2, 'no thread beyond the pool');
      for (let i = 0; i < files.length; i++) {
        const shape = MLP_SIZES[i % 2]!;
        const x = Array.from({ length: shape.inputs }, (_, k) => (k % 5) / 5);
        const own = await OnnxSession.load(files[i]!);
        try {
          const [a, b] = await Promise.all([shared[i]!.run({ x: f32(1, x) }), own.run({ x: f32(1, x) })]);
          assert.deepEqual(Array.from(a.outputs.y!.data as Float32Array), Array.from(b.outputs.y!.data as Float32Array), `model ${i}`);
        } finally {
          await own.dispose();
        }
      }
      // Different models really are different sessions: the same input gives different outputs.
      const half = Array.from({ length: MLP_SIZES[0]!.inputs }, () => 0.5);
      const [m0, m2] = await Promise.all([shared[0]!.run({ x: f32(1, half) }), shared[2]!.run({ x: f32(1, half) })]);
      assert.notDeepEqual(Array.from(m0.outputs.y!.data as Float32Array), Array.from(m2.outputs.y!.data as Float32Array));
    } finally {
      for (const s of shared) await s.dispose();
      await pool.close();
    }
  });

  test('the slots of one model go to different threads, the least busy first; released places are reused', async () => {
    const pool = new SessionThreads(3);
    try {
      const iris = await OnnxSession.load(IRIS, { threads: pool, instances: 2 });
      const slow = await OnnxSession.load(SLOW, { threads: pool, instances: 1 });
      assert.equal(pool.started, 3);
      // Iris took two threads; the slow model went to the third, so it runs beside iris, not behind it.
      const slowRun = slow.run({ x: f32(1, [1, 2, 3, 4]) });
      const started = performance.now();
      const r = await iris.run({ input: f32(1, IRIS_ROWS[0]!) });
      const irisMs = performance.now() - started;
      assert.equal(r.outputs.label!.data.length, 1);
      const s = await slowRun;
      assert.ok(irisMs < s.computeMs, `iris answered in ${irisMs.toFixed(0)} ms, while the slow model computed for ${s.computeMs.toFixed(0)} ms`);
      await iris.dispose();
      await slow.dispose();
      const again = pool.place(3);
      assert.equal(new Set(again).size, 3, 'every place was given back');
      pool.free(again);
    } finally {
      await pool.close();
    }
  });

  test('a model that does not load gives its place back and leaves the thread serving others', async () => {
    const pool = new SessionThreads(1);
    try {
      const iris = await OnnxSession.load(IRIS, { threads: pool });
      await assert.rejects(OnnxSession.load(NOT_ONNX, { threads: pool }), { code: 'INVALID_MODEL' });
      const r = await iris.run({ input: f32(1, IRIS_ROWS[1]!) });
      assert.equal(r.outputs.label!.data.length, 1);
      await iris.dispose();
      const [t] = pool.place(1);
      assert.equal(t!.sessions, 1, 'only the place just taken');
    } finally {
      await pool.close();
    }
  });

  test('a pool needs at least one thread', () => {
    assert.throws(() => new SessionThreads(0), RangeError);
  });
});
