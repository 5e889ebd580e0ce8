/**
 * Models whose first dim is symbolic but is not a batch axis (a vector, a transposed output, two inputs of
 * different lengths, a shape to fill): concurrent requests to them used to be joined along dim 0 into one
 * run, and each request got a slice of the joined answer (x − mean over everyone's values, someone else's
 * column, a shape it did not ask for), or a valid request was refused because its inputs' lengths differed.
 * Every answer through a real worker must equal what onnxruntime-node gives for that request alone.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { centreModel, lookupModel, negateModel, pairModel, transposeModel } from '../helpers/axis-models.ts';
import { type JsonAnswer, type TestCluster, api, startTestCluster } from '../helpers/cluster.ts';
import { shapeFromInputModel } from '../helpers/costly-models.ts';

interface Input {
  shape: number[];
  data: number[];
}
type Request = Record<string, Input>;

const MODELS: Record<string, Buffer> = { centre: centreModel(), transpose: transposeModel(), pair: pairModel(), fill: shapeFromInputModel(1) };
const DATATYPE: Record<string, 'FP32' | 'INT64'> = { shape: 'INT64', ids: 'INT64' };
/** One slot that waits 100 ms for company and takes up to 16 rows: requests that arrive together share a run if the model is thought to have a batch axis. */
const BATCHING = { max_batch_size: 16, max_queue_delay_ms: 100 };

let c: TestCluster;
const sessions: Record<string, ort.InferenceSession> = {};
before(async () => {
  c = await startTestCluster({ metrics: false });
  for (const [name, bytes] of Object.entries(MODELS)) {
    const up = await upload(name, bytes, BATCHING);
    assert.equal(up.status, 201, JSON.stringify(up.body));
  }
});

async function upload(name: string, bytes: Buffer, batching: Record<string, unknown>): Promise<JsonAnswer> {
  const form = new FormData();
  form.append('path', new Blob([new Uint8Array(bytes)]), 'model.onnx');
  form.append('metadata', JSON.stringify({ config: { instances: 1, batching } }));
  const up = await api(c.url, `/api/v1/models/${name}`, { method: 'PUT', body: form });
  if (up.status === 201) sessions[name] = await ort.InferenceSession.create(bytes);
  return up;
}
after(async () => {
  await c?.close();
  for (const s of Object.values(sessions)) await s.release();
});

/** What onnxruntime-node in this process answers for the request alone: shape and values of `y`. */
async function alone(model: string, req: Request): Promise<{ shape: number[]; data: number[] }> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(req)) {
    feeds[name] =
      DATATYPE[name] === 'INT64'
        ? new ort.Tensor('int64', BigInt64Array.from(t.data, BigInt), t.shape)
        : new ort.Tensor('float32', Float32Array.from(t.data), t.shape);
  }
  const y = (await sessions[model]!.run(feeds)).y!;
  return { shape: Array.from(y.dims), data: Array.from(y.data as Float32Array) };
}

/**
 * Sends the requests together to one worker (so they can meet in its queue), or to `base`, and checks each
 * answer against the model run on that request alone; with `joined` false (the default) also that each ran
 * alone. Resolves with the number of requests in each answer's batch.
 */
async function together(model: string, requests: Request[], base?: string, joined = false): Promise<number[]> {
  const worker = base ?? c.modelhosts[0]!.url;
  const answers = await Promise.all(
    requests.map((req) =>
      api(worker, `/v2/models/${model}/infer`, {
        json: { inputs: Object.entries(req).map(([name, t]) => ({ name, shape: t.shape, datatype: DATATYPE[name] ?? 'FP32', data: t.data })) },
      }),
    ),
  );
  for (let i = 0; i < requests.length; i++) {
    const a = answers[i]!;
    const want = await alone(model, requests[i]!);
    assert.equal(a.status, 200, `${model} ${JSON.stringify(requests[i])}: ${JSON.stringify(a.body)}`);
    const y = a.body.outputs.find((o: { name: string }) => o.name === 'y');
    assert.deepEqual(
      { shape: y.shape, data: (y.data as number[]).map(Math.fround) },
      want,
      `${model} ${JSON.stringify(requests[i])} ran in a batch of ${a.headers.get('x-inferrer-batch')}`,
    );
    if (!joined) assert.match(a.headers.get('x-inferrer-batch') ?? '', /^requests=1;/, `${model}: each request runs alone`);
  }
  return answers.map((a) => Number(/^requests=(\d+);/.exec(a.headers.get('x-inferrer-batch') ?? '')?.[1]));
}

describe('models whose first dim is not a batch axis', () => {
  test('a vector input [n] (x − mean(x)): each request is centred on its own mean', async () => {
    await together('centre', [{ x: { shape: [1], data: [0] } }]);
    await together(
      'centre',
      Array.from({ length: 6 }, (_, i) => ({ x: { shape: [3], data: [i, 10 * i, 100 * i + 1] } })),
    );
    // Through the Inferrer, which sends requests that arrive together to a worker as one group.
    await together(
      'centre',
      Array.from({ length: 6 }, (_, i) => ({ x: { shape: [3], data: [-i, 3 * i, 7] } })),
      c.url,
    );
  });

  test('an output whose dim 0 is another symbol (Transpose [n, k] → [k, n]): each request gets its own columns', async () => {
    await together('transpose', [{ x: { shape: [1, 2], data: [0, 0] } }]);
    // k requests of one row of k values: joined, they would make a k × k square split back k ways.
    for (const k of [2, 3, 4])
      await together(
        'transpose',
        Array.from({ length: k }, (_, i) => ({ x: { shape: [1, k], data: Array.from({ length: k }, (_, j) => 10 * i + j) } })),
      );
  });

  test('inputs whose first dims differ (a [n, 2] + sum of b [m, 2]): other lengths are answered, and sums stay per request', async () => {
    await together('pair', [
      { a: { shape: [1, 2], data: [1, 2] }, b: { shape: [3, 2], data: [1, 1, 2, 2, 3, 3] } },
      { a: { shape: [2, 2], data: [0, 0, 1, 1] }, b: { shape: [1, 2], data: [5, 6] } },
    ]);
    await together(
      'pair',
      Array.from({ length: 6 }, (_, i) => ({ a: { shape: [1, 2], data: [i, -i] }, b: { shape: [1, 2], data: [100 * i, 1000 * i] } })),
    );
    // The same through the Inferrer and the v1 protocol: one row of a, two of b.
    const v1 = await api(c.url, '/api/v1/models/pair/prediction', {
      json: {
        values: {
          a: [[1, 2]],
          b: [
            [1, 1],
            [2, 2],
          ],
        },
      },
    });
    assert.equal(v1.status, 200, JSON.stringify(v1.body));
    assert.deepEqual(v1.body.values, [[4, 5]]);
  });

  test('a shape vector (ConstantOfShape of the INT64 input `shape`): each request gets the shape it sent', async () => {
    await together('fill', [{ shape: { shape: [2], data: [1, 1] } }]);
    await together('fill', [{ shape: { shape: [2], data: [4, 1] } }, { shape: { shape: [2], data: [1, 1] } }]);
    await together('fill', [{ shape: { shape: [2], data: [2, 3] } }, { shape: { shape: [2], data: [3, 2] } }, { shape: { shape: [2], data: [1, 2] } }]);
  });
});

describe('batching.batch_axis in the model config', () => {
  const ids = (n: number): Request[] => Array.from({ length: n }, (_, i) => ({ ids: { shape: [2], data: [i % 4, (i + 1) % 4] } }));
  const rows = (n: number): Request[] => Array.from({ length: n }, (_, i) => ({ x: { shape: [1, 2], data: [i + 1, -2 * i - 1] } }));

  test('"first" joins a model of id vectors ([batch] → [batch, 2]) that the dims alone leave unbatched; the answers stay per request', async () => {
    assert.equal((await upload('lookup-auto', lookupModel(), BATCHING)).status, 201);
    assert.equal((await upload('lookup', lookupModel(), { ...BATCHING, batch_axis: 'first' })).status, 201);
    await together('lookup-auto', ids(6));
    const batches = await together('lookup', ids(6), undefined, true);
    assert.ok(Math.max(...batches) > 1, `six requests that arrived together ran in batches of ${batches.join(', ')} requests`);
    // Triton's model configuration says the same: a batch dim, left out of dims.
    const config = await api(c.url, '/v2/models/lookup/config');
    assert.equal(config.status, 200, JSON.stringify(config.body));
    assert.equal(config.body.max_batch_size, 16);
    assert.equal((await api(c.url, '/v2/models/lookup-auto/config')).body.max_batch_size, 0);
  });

  test('"none" runs every request of a model with a batch axis alone', async () => {
    assert.equal((await upload('negate', negateModel(), BATCHING)).status, 201);
    assert.equal((await upload('negate-alone', negateModel(), { ...BATCHING, batch_axis: 'none' })).status, 201);
    assert.ok(Math.max(...(await together('negate', rows(6), undefined, true))) > 1, 'the model is batched by default');
    await together('negate-alone', rows(6));
  });

  test('a config change reloads the model under the new axis', async () => {
    assert.equal((await upload('lookup-later', lookupModel(), BATCHING)).status, 201);
    await together('lookup-later', ids(6));
    const patched = await api(c.url, '/api/v1/models/lookup-later', { json: { config: { instances: 1, batching: { ...BATCHING, batch_axis: 'first' } } } });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    let batches: number[] = [];
    for (const until = Date.now() + 15_000; Date.now() < until; await new Promise((r) => setTimeout(r, 200))) {
      batches = await together('lookup-later', ids(6), undefined, true);
      if (Math.max(...batches) > 1) break;
    }
    assert.ok(Math.max(...batches) > 1, `after the change, batches of ${batches.join(', ')} requests`);
  });

  test('"first" is refused (400, nothing stored or changed) for a model whose dim 0 is fixed', async () => {
    const refused = await upload('fixed', negateModel([3]), { ...BATCHING, batch_axis: 'first' });
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.match(JSON.stringify(refused.body), /batch_axis.*input 'x' has a fixed dim 0 \(3\)/);
    assert.doesNotMatch(JSON.stringify(refused.body), /\/tmp|\.onnx|staging/, 'no file path in the answer');
    assert.equal((await api(c.url, '/api/v1/models/fixed')).status, 404);

    assert.equal((await upload('fixed', negateModel([3]), BATCHING)).status, 201);
    const before = (await api(c.url, '/api/v1/models/fixed')).body.model;
    const patched = await api(c.url, '/api/v1/models/fixed', { json: { config: { batching: { batch_axis: 'first' } } } });
    assert.equal(patched.status, 400, JSON.stringify(patched.body));
    assert.match(patched.body.message ?? JSON.stringify(patched.body), /version 1 of model fixed input 'x' has a fixed dim 0/);
    assert.deepEqual((await api(c.url, '/api/v1/models/fixed')).body.model.config, before.config);
    // A second version with a fixed dim 0 under a model that says "first" is refused the same way.
    assert.equal((await upload('lookup-v2', lookupModel(), { ...BATCHING, batch_axis: 'first' })).status, 201);
    const form = new FormData();
    form.append('path', new Blob([new Uint8Array(negateModel([3]))]), 'model.onnx');
    const v2 = await api(c.url, '/api/v1/models/lookup-v2', { method: 'PUT', body: form });
    assert.equal(v2.status, 400, JSON.stringify(v2.body));
    assert.equal((await api(c.url, '/api/v1/models/lookup-v2')).body.model.versions?.length ?? 1, 1);
  });
});
