import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { OnnxSession, inlineRuntime } from '@inferrer/runtime';
import { MLP_SIZES, mlpModel } from '../../../test/helpers/mlp-models.ts';
import { EXTERNAL_ESCAPE, IRIS, IRIS_ROWS, f32 } from './fixtures.ts';

let tmp: string;
before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'inline-runtime-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** The first output of `file` for `rows` of MLP input, created inline or on a runtime thread. */
async function answer(file: string, inline: boolean, inputs: number, rows: number): Promise<Float32Array> {
  const session = await OnnxSession.load(file, { inline });
  try {
    const data = Float32Array.from({ length: rows * inputs }, (_, i) => ((i * 7) % 13) / 13);
    const r = await session.run({ x: { type: 'float32', dims: [rows, inputs], data } });
    return r.outputs.y!.data as Float32Array;
  } finally {
    await session.dispose();
  }
}

/** external_escape.onnx with its 22-byte location swapped for a file beside the model: W = [1, 2, 3, 4], y = x + W. */
async function externalModel(name: string): Promise<string> {
  const bytes = await readFile(EXTERNAL_ESCAPE);
  const at = bytes.indexOf(Buffer.from('location\x12\x16../../../../etc/passwd', 'latin1'));
  assert.ok(at > 0);
  const model = Buffer.from(bytes);
  model.write('external_weights_W.bin', at + 'location\x12\x16'.length, 'latin1');
  const folder = path.join(tmp, name);
  await mkdir(folder);
  await writeFile(path.join(folder, 'model.onnx'), model);
  await writeFile(path.join(folder, 'external_weights_W.bin'), Buffer.from(new Float32Array([1, 2, 3, 4]).buffer));
  return folder;
}

describe('the inline runtime reads model files into its kept buffer', () => {
  test('models created one after another, each smaller than the last, answer as from their paths', async () => {
    // Largest first: the buffer keeps the first file's length, so each later file is read over the
    // bytes of the one before. A creation that saw another file's bytes would answer differently.
    const files: { file: string; inputs: number }[] = [];
    for (const [i, shape] of [...MLP_SIZES.entries()].reverse()) {
      const file = path.join(tmp, `mlp-${i}.onnx`);
      await writeFile(file, mlpModel(shape, 40 + i));
      files.push({ file, inputs: shape.inputs });
    }
    const created = await Promise.all(files.map((f) => OnnxSession.load(f.file, { inline: true })));
    try {
      for (const [k, f] of files.entries()) {
        const data = Float32Array.from({ length: 3 * f.inputs }, (_, i) => ((i * 7) % 13) / 13);
        const inline = await created[k]!.run({ x: { type: 'float32', dims: [3, f.inputs], data } });
        assert.deepEqual(Array.from(inline.outputs.y!.data as Float32Array), Array.from(await answer(f.file, false, f.inputs, 3)), f.file);
      }
    } finally {
      await Promise.all(created.map((s) => s.dispose()));
    }
  });

  test('external data is found in the model file’s folder, as from its path', async () => {
    // Asked to share its graph, a model with external data gets a session of its own all the same.
    for (const sharedGraph of [false, true]) {
      const folder = await externalModel(`external-${sharedGraph}`);
      const held = inlineRuntime.held;
      const session = await OnnxSession.load(path.join(folder, 'model.onnx'), { inline: true, sharedGraph });
      try {
        assert.equal(session.shared, false);
        assert.equal(inlineRuntime.held, held + 1);
        const r = await session.run({ x: f32(1, [1, 1, 1, 1]) });
        assert.deepEqual(Array.from(r.outputs.y!.data as Float32Array), [2, 3, 4, 5]);
      } finally {
        await session.dispose();
      }
    }
  });

  test('a file that is not a model is refused, and the next creation works', async () => {
    const bad = path.join(tmp, 'not-a-model.onnx');
    await writeFile(bad, Buffer.alloc(4096, 7));
    await assert.rejects(OnnxSession.load(bad, { inline: true }), { code: 'INVALID_MODEL' });
    const iris = await OnnxSession.load(IRIS, { inline: true });
    try {
      const r = await iris.run({ input: f32(3, IRIS_ROWS.flat()) });
      assert.deepEqual(Array.from(r.outputs.label!.data as BigInt64Array), [2n, 0n, 1n]);
    } finally {
      await iris.dispose();
    }
  });
});

describe('an inline run’s compute time', () => {
  test('leaves out the wait for the event loop’s turn', async () => {
    const iris = await OnnxSession.load(IRIS, { inline: true });
    try {
      // The run is asked for, then the event loop is held for 60 ms before it can start.
      const running = iris.run({ input: f32(1, IRIS_ROWS[0]!) });
      const until = performance.now() + 60;
      while (performance.now() < until) {
        // held
      }
      const r = await running;
      assert.ok(r.computeMs < 30, `computeMs ${r.computeMs}: the 60 ms the loop was held are not the model's`);
    } finally {
      await iris.dispose();
    }
  });
});

describe('models that share a graph (shared_graph)', () => {
  /** What a session of the model's own, with weight prepacking off, answers for `rows` rows. */
  async function unpacked(file: string, inputs: number, rows: number): Promise<number[]> {
    const session = await ort.InferenceSession.create(file, {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      extra: { session: { disable_prepacking: '1' } },
    });
    try {
      const r = await session.run({ x: new ort.Tensor('float32', mlpRows(inputs, rows), [rows, inputs]) });
      return Array.from(r.y!.data as Float32Array);
    } finally {
      await session.release();
    }
  }
  const mlpRows = (inputs: number, rows: number): Float32Array => Float32Array.from({ length: rows * inputs }, (_, i) => ((i * 7) % 13) / 13 - 0.3);

  test('one template session per structure runs each model with its own weights, as its own unpacked session answers', async () => {
    const models: { file: string; inputs: number }[] = [];
    for (const [k, size] of [2, 0, 2, 0, 2].entries()) {
      const file = path.join(tmp, `shared-${k}.onnx`);
      await writeFile(file, mlpModel(MLP_SIZES[size]!, 700 + k));
      models.push({ file, inputs: MLP_SIZES[size]!.inputs });
    }
    const held = inlineRuntime.held;
    const shared = inlineRuntime.shared;
    const sessions = await Promise.all(models.map((m) => OnnxSession.load(m.file, { inline: true, sharedGraph: true })));
    try {
      assert.deepEqual(
        sessions.map((s) => s.shared),
        [true, true, true, true, true],
      );
      // Two structures: two ONNX Runtime sessions for five models.
      assert.equal(inlineRuntime.held, held + 2);
      assert.equal(inlineRuntime.shared, shared + 5);
      assert.deepEqual(
        sessions[0]!.signature.inputs.map((i) => i.name),
        ['x'],
        'the weights are not inputs a request sees',
      );
      const seen = new Set<string>();
      for (const [k, m] of models.entries()) {
        for (const rows of [1, 8]) {
          const r = await sessions[k]!.run({ x: { type: 'float32', dims: [rows, m.inputs], data: mlpRows(m.inputs, rows) } });
          const got = Array.from(r.outputs.y!.data as Float32Array);
          assert.deepEqual(got, await unpacked(m.file, m.inputs, rows), `${m.file}, ${rows} rows`);
          seen.add(JSON.stringify(got));
        }
      }
      assert.equal(seen.size, 10, 'every model answers with its own weights');
      // A model let go of keeps the template for the others; the last one releases it.
      await sessions[0]!.dispose();
      assert.equal(inlineRuntime.held, held + 2);
      await sessions[2]!.dispose();
      await sessions[4]!.dispose();
      assert.equal(inlineRuntime.held, held + 1);
      const again = await sessions[1]!.run({ x: { type: 'float32', dims: [1, 16], data: mlpRows(16, 1) } });
      assert.deepEqual(Array.from(again.outputs.y!.data as Float32Array), await unpacked(models[1]!.file, 16, 1));
    } finally {
      await Promise.all(sessions.map((s) => s.dispose()));
    }
    assert.equal(inlineRuntime.held, held);
    assert.equal(inlineRuntime.shared, shared);
  });

  test('a file of the same size whose bytes around its weights differ is another structure; a slot given back holds the next model’s weights', async () => {
    const file = async (name: string, seed: number, producer?: string): Promise<string> => {
      const bytes = mlpModel(MLP_SIZES[1]!, seed);
      if (producer) {
        const at = bytes.indexOf('inferrer-mlp');
        assert.ok(at >= 0);
        bytes.write(producer, at, 'latin1');
      }
      const f = path.join(tmp, name);
      await writeFile(f, bytes);
      return f;
    };
    const a = await file('layout-a.onnx', 801);
    const a2 = await file('layout-a2.onnx', 802);
    // The same graph under another producer name of the same length: the same size, another template.
    const b = await file('layout-b.onnx', 803, 'inferrer-mlq');
    const c = await file('layout-c.onnx', 804);
    const held = inlineRuntime.held;
    const sa = await OnnxSession.load(a, { inline: true, sharedGraph: true });
    const sa2 = await OnnxSession.load(a2, { inline: true, sharedGraph: true });
    const sb = await OnnxSession.load(b, { inline: true, sharedGraph: true });
    let sc: OnnxSession | undefined;
    const run = async (s: OnnxSession): Promise<number[]> =>
      Array.from((await s.run({ x: { type: 'float32', dims: [3, 32], data: mlpRows(32, 3) } })).outputs.y!.data as Float32Array);
    try {
      assert.equal(inlineRuntime.held, held + 2, 'a file that only matched in size would have joined the first template');
      assert.deepEqual(await run(sb), await unpacked(b, 32, 3));
      const before = await run(sa2);
      // c, found by a's layout, loads into the slot a2 gave back: its answers are its own, not a2's.
      await sa2.dispose();
      sc = await OnnxSession.load(c, { inline: true, sharedGraph: true });
      // Its template has run: its first run needs no warm-up. Models loaded before any run did need one.
      assert.deepEqual([sa.warm, sa2.warm, sb.warm, sc.warm], [false, false, false, true]);
      const own = await run(sc);
      assert.deepEqual(own, await unpacked(c, 32, 3));
      assert.notDeepEqual(own, before);
      assert.deepEqual(await run(sa), await unpacked(a, 32, 3));
      assert.equal(inlineRuntime.held, held + 2);
    } finally {
      await Promise.all([sa.dispose(), sa2.dispose(), sb.dispose(), sc?.dispose()]);
    }
    assert.equal(inlineRuntime.held, held);
  });

  test('a file that is not a model is refused, and the next shared model loads', async () => {
    const bad = path.join(tmp, 'shared-not-a-model.onnx');
    await writeFile(bad, Buffer.alloc(4096, 7));
    await assert.rejects(OnnxSession.load(bad, { inline: true, sharedGraph: true }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'INVALID_MODEL');
      assert.ok(!err.message.includes(tmp), err.message);
      return true;
    });
    const file = path.join(tmp, 'shared-after-bad.onnx');
    await writeFile(file, mlpModel(MLP_SIZES[1]!, 77));
    const s = await OnnxSession.load(file, { inline: true, sharedGraph: true });
    try {
      assert.equal(s.shared, true);
      const r = await s.run({ x: { type: 'float32', dims: [2, 32], data: mlpRows(32, 2) } });
      assert.deepEqual(Array.from(r.outputs.y!.data as Float32Array), await unpacked(file, 32, 2));
    } finally {
      await s.dispose();
    }
  });
});
