/**
 * Models that share a graph (config `shared_graph`, issue 18): models of one structure uploaded with it run on
 * one ONNX Runtime session per worker with their own weights fed as inputs. Through the whole cluster each
 * answers what ONNX Runtime answers for its file with weight prepacking off, they come and go under a
 * memory budget without a wrong answer, and the worker says which models share.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { type MlpShape, mlpModel } from '../helpers/mlp-models.ts';
import { type TestCluster, api, startTestCluster, steadyLoad } from '../helpers/cluster.ts';

const MiB = 1024 * 1024;
const SHAPE: MlpShape = { inputs: 64, hidden: 512, layers: 3, outputs: 8 };
const SMALL: MlpShape = { inputs: 16, hidden: 64, layers: 2, outputs: 4 };
/**
 * Twenty-four models of 1.1 MB of weights each (28 MB), and four small ones: not all of the large fit, beside
 * what the budget's watch sees the worker's own memory grow by after its start (15–18 MB with one modelhost).
 */
const BUDGET = 32 * MiB;
const MODELS = [
  ...Array.from({ length: 24 }, (_, i) => ({ name: `shared-${i}`, shape: SHAPE, bytes: mlpModel(SHAPE, 3000 + i) })),
  ...Array.from({ length: 4 }, (_, i) => ({ name: `small-${i}`, shape: SMALL, bytes: mlpModel(SMALL, 4000 + i) })),
];

function put(c: TestCluster, name: string, bytes: Buffer, metadata?: unknown): ReturnType<typeof api> {
  const form = new FormData();
  form.append('path', new Blob([new Uint8Array(bytes)]), 'model.onnx');
  if (metadata !== undefined) form.append('metadata', JSON.stringify(metadata));
  return api(c.url, `/api/v1/models/${name}`, { method: 'PUT', body: form });
}

const rows = (shape: MlpShape, k: number): number[] => Array.from({ length: 2 * shape.inputs }, (_, i) => ((i * 7 + k) % 11) / 11 - 0.4);

function infer(c: TestCluster, name: string, shape: MlpShape, k = 0): ReturnType<typeof api> {
  return api(c.url, `/v2/models/${name}/infer`, { json: { inputs: [{ name: 'x', shape: [2, shape.inputs], datatype: 'FP32', data: rows(shape, k) }] } });
}

/** What ONNX Runtime answers in this process for the model's file, with weight prepacking on or off. */
async function inProcess(bytes: Buffer, shape: MlpShape, prepack: boolean): Promise<number[]> {
  const session = await ort.InferenceSession.create(bytes, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    ...(prepack ? {} : { extra: { session: { disable_prepacking: '1' } } }),
  });
  try {
    const r = await session.run({ x: new ort.Tensor('float32', Float32Array.from(rows(shape, 0)), [2, shape.inputs]) });
    return Array.from(r.y!.data as Float32Array);
  } finally {
    await session.release();
  }
}

/** JSON numbers read back as the float32 values they were written from. */
const f32 = (data: number[]): number[] => data.map((v) => Math.fround(v));

describe('models that share a graph (shared_graph)', () => {
  let c: TestCluster;
  const unpacked = new Map<string, number[]>();

  before(async () => {
    // Plans measured at load (the default; the test clusters turn it off): models share only when they run inline.
    c = await startTestCluster({ modelhosts: 1, modelhostEnv: { MODEL_MEMORY_BYTES: String(BUDGET), PLAN_MEASURE_MS: '10000' } });
    for (const m of MODELS) {
      const r = await put(c, m.name, m.bytes, { config: { shared_graph: true } });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      unpacked.set(m.name, await inProcess(m.bytes, m.shape, false));
    }
    const own = await put(c, 'own', MODELS[0]!.bytes);
    assert.equal(own.status, 201, JSON.stringify(own.body));
  });
  after(() => c?.close());

  test('each answers as its file does in ONNX Runtime without prepacking; a model without the setting, as with it', async () => {
    for (const m of MODELS) {
      const r = await infer(c, m.name, m.shape);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(f32(r.body.outputs[0].data), unpacked.get(m.name), m.name);
    }
    const own = await infer(c, 'own', SHAPE);
    assert.equal(own.status, 200, JSON.stringify(own.body));
    assert.deepEqual(f32(own.body.outputs[0].data), await inProcess(MODELS[0]!.bytes, SHAPE, true));
    // The worker says which models share, and how it runs them (two asked for again: they may have made room).
    assert.equal((await infer(c, 'shared-0', SHAPE)).status, 200);
    assert.equal((await infer(c, 'small-0', SMALL)).status, 200);
    const [mh] = c.modelhosts;
    const loaded = (await (await fetch(`${mh!.url}/v1/models`)).json()) as {
      shared_graph_sessions: number;
      models: { name: string; shared_graph?: boolean }[];
    };
    // Twenty-eight models in two structures, each in its own folder of the store: two ONNX Runtime sessions.
    assert.equal(loaded.shared_graph_sessions, 2, JSON.stringify(loaded));
    const own2 = loaded.models.find((m) => m.name === 'own');
    assert.equal(own2?.shared_graph, undefined, JSON.stringify(own2));
    assert.equal(loaded.models.find((m) => m.name === 'small-0')?.shared_graph, true, JSON.stringify(loaded.models));
    // So does the model's metadata.
    const meta = await api(c.url, '/api/v1/models/small-0');
    assert.equal(meta.status, 200, JSON.stringify(meta.body));
    assert.equal(meta.body.model.config.shared_graph, true, JSON.stringify(meta.body.model.config));
    assert.equal(meta.body.model.execution?.shared_graph, true, JSON.stringify(meta.body.model.execution));
    assert.equal(meta.body.model.execution.inline, true);
  });

  test('models come and go under load from 8 clients within the budget, every answer its own model’s', async (t) => {
    const stopAt = Date.now() + 6000;
    let n = 0;
    const outcomes = await steadyLoad(
      8,
      async () => {
        const m = MODELS[(n++ * 5) % MODELS.length]!;
        const r = await infer(c, m.name, m.shape);
        if (r.status !== 200) return `${r.status} ${r.body?.code ?? ''} ${r.body?.error ?? ''}`;
        return JSON.stringify(f32(r.body.outputs[0].data)) === JSON.stringify(unpacked.get(m.name)) ? 'ok' : `wrong answer from ${m.name}`;
      },
      () => Date.now() > stopAt,
    );
    assert.deepEqual(Object.keys(outcomes), ['ok'], JSON.stringify(outcomes));
    const unloaded = c.jsonLogs('modelhost-1').filter((l) => l.msg === 'model unloaded' && l.reason === 'evicted').length;
    const shared = c.jsonLogs('modelhost-1').filter((l) => l.msg === 'model loaded' && l.sharedGraph === true).length;
    t.diagnostic(`${outcomes.ok} answers, ${shared} shared loads, ${unloaded} models unloaded to make room`);
    assert.ok(unloaded > 0, 'the large models do not fit the budget together');
    assert.ok(shared > MODELS.length, `${shared} loads of shared models`);
    const [mh] = c.modelhosts;
    const w = (await (await fetch(`${mh!.url}/v1/models`)).json()) as { memory: { used_bytes: number } };
    assert.ok(w.memory.used_bytes <= BUDGET, JSON.stringify(w.memory));
    assert.equal(c.modelhosts[0]!.process.restarts, 0);
  });
});
