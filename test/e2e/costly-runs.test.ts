/**
 * Requests that make a cheap model costly to run: the request's values choose the size of what the model
 * computes (a shape sent to ConstantOfShape). A 136-byte request for a [40000, 40000] output used to make a
 * worker fill 6.4 GB until the kernel killed it, and the balancer then sent the same request to the next
 * worker, which died too. Each worker's memory is now capped (PROCESS_MEMORY_BYTES): the request is
 * refused with 413 INFERENCE_TOO_COSTLY, the worker and its other models carry on, nothing is retried
 * elsewhere and nothing stored changes.
 *
 * A run can also not end: a Loop to a trip count the request sent. The request got 504 at its deadline,
 * but ONNX Runtime cannot stop a run, so its runtime thread spun on for days, a core gone, and every
 * model whose session shared that thread waited behind it for good. Past RUN_TIMEOUT_MS the worker now
 * drains and restarts; no other request fails.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { shapeFromInputModel, tileModel, tripCountLoopModel } from '../helpers/costly-models.ts';
import { DEMO, type TestCluster, api, snapshotStore, startTestCluster, steadyLoad, waitReady } from '../helpers/cluster.ts';

const MiB = 1024 * 1024;

/** Through the Inferrer, or straight to one worker (`base`); a large output would come back as binary data. */
function infer(base: string, shape: number[]): ReturnType<typeof api> {
  const binary = shape.reduce((a, b) => a * b, 1) > 1000;
  return api(base, '/v2/models/shaped/infer', {
    json: {
      inputs: [{ name: 'shape', shape: [shape.length], datatype: 'INT64', data: shape }],
      ...(binary ? { outputs: [{ name: 'y', parameters: { binary_data: true } }] } : {}),
    },
  });
}

describe('a request whose values choose what the model allocates', () => {
  let c: TestCluster;
  before(async () => {
    // 1 GiB per worker: a 1.6 GB output cannot fit, the models of the demo and small answers can.
    c = await startTestCluster({ modelhostEnv: { PROCESS_MEMORY_BYTES: String(1024 * MiB) } });
    const form = new FormData();
    form.append('path', new Blob([new Uint8Array(shapeFromInputModel())]), 'model.onnx');
    const r = await api(c.url, '/api/v1/models/shaped', { method: 'PUT', body: form });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const thirds = new FormData();
    thirds.append('path', new Blob([new Uint8Array(shapeFromInputModel(1 / 3))]), 'model.onnx');
    assert.equal((await api(c.url, '/api/v1/models/thirds', { method: 'PUT', body: thirds })).status, 201);
    const tiled = new FormData();
    tiled.append('path', new Blob([new Uint8Array(tileModel())]), 'model.onnx');
    assert.equal((await api(c.url, '/api/v1/models/tiled', { method: 'PUT', body: tiled })).status, 201);
  });

  // ONNX Runtime could allocate the 400 MB output, but onnxruntime-node then copies it into a JavaScript
  // buffer, and V8 ends the process when that allocation fails: the worker died mid-request (502).
  test('an output that fits under PROCESS_MEMORY_BYTES once but not twice (400 MB of 1 GiB) is 413 INFERENCE_TOO_COSTLY before it runs; the worker stays up', async () => {
    const tile = (base: string, rows: number) =>
      api(base, '/v2/models/tiled/infer', {
        json: {
          inputs: [{ name: 'x', shape: [rows, 1], datatype: 'FP32', data: Array.from({ length: rows }, (_, i) => i) }],
          outputs: [{ name: 'y', parameters: { binary_data: true } }],
        },
      });
    for (const worker of c.modelhosts) {
      const r = await tile(worker.url, 1000);
      assert.equal(r.status, 413, `${worker.id}: ${JSON.stringify(r.body).slice(0, 500)}`);
      assert.equal(r.body.error.code, 'INFERENCE_TOO_COSTLY');
      assert.match(r.body.error.message, /PROCESS_MEMORY_BYTES/);
      assert.match(r.body.error.message, /'y'/);
      assert.equal(r.body.error.details.output_bytes, 1000 * 100_000 * 4);
      assert.doesNotMatch(JSON.stringify(r.body), /onnxruntime_src|\/tmp\/|bfc_arena/);
      // The same worker answers a row of the same model, and another model, at once.
      const one = await api(worker.url, '/v2/models/tiled/infer', { json: { inputs: [{ name: 'x', shape: [1, 1], datatype: 'FP32', data: [7] }] } });
      assert.equal(one.status, 200, `${worker.id}: ${JSON.stringify(one.body).slice(0, 300)}`);
      assert.deepEqual(one.body.outputs[0].shape, [1, 100_000]);
      assert.ok((one.body.outputs[0].data as number[]).every((v) => v === 7));
      const iris = await api(worker.url, '/v1/models/iris/predict', { json: { values: [6.7, 2.5, 5.8, 1.8] } });
      assert.equal(iris.status, 200, `${worker.id}: ${JSON.stringify(iris.body)}`);
      // 40 MB fits twice: it runs.
      const tenth = await tile(worker.url, 100);
      assert.equal(tenth.status, 200, `${worker.id}: ${String(tenth.body).slice(0, 300)}`);
      assert.equal(Number(tenth.headers.get('inference-header-content-length')) > 0, true);
    }
    // Through the Inferrer: the same refusal, not retried on the other worker.
    const r = await tile(c.url, 1000);
    assert.equal(r.status, 413, JSON.stringify(r.body).slice(0, 500));
    assert.equal(r.body.code, 'INFERENCE_TOO_COSTLY');
    assert.deepEqual(
      c.logs.filter((l) => l.name === 'launcher' && /exited/.test(l.line)),
      [],
    );
  });

  // It was 413 BODY_TOO_LARGE (a request body?) after 10 s of encoding here, and 500 INTERNAL past 134 M elements.
  test('an output too large to write as JSON (56 M floats, 620 M characters) is 413 OUTPUT_TOO_LARGE naming binary data, not BODY_TOO_LARGE or 500', async () => {
    const shape = [7500, 7500];
    const v2 = await api(c.url, '/v2/models/thirds/infer', { json: { inputs: [{ name: 'shape', shape: [2], datatype: 'INT64', data: shape }] } });
    assert.equal(v2.status, 413, JSON.stringify(v2.body).slice(0, 500));
    assert.equal(v2.body.code, 'OUTPUT_TOO_LARGE');
    assert.match(v2.body.error, /binary_data/);
    assert.equal(v2.body.details.elements, 7500 * 7500);
    const v1 = await api(c.url, '/api/v1/models/thirds/prediction', { json: { values: { shape } } });
    assert.equal(v1.status, 413, JSON.stringify(v1.body).slice(0, 500));
    assert.equal(v1.body.error.code, 'OUTPUT_TOO_LARGE');
    const small = await api(c.url, '/v2/models/thirds/infer', { json: { inputs: [{ name: 'shape', shape: [2], datatype: 'INT64', data: [1, 2] }] } });
    assert.deepEqual(small.body.outputs[0].data, [0.33333334, 0.33333334]);
  });
  after(async () => {
    await c?.close();
  });

  for (const [what, shape] of [
    ['1.6 GB, more than the worker may take', [20_000, 20_000]],
    ['4 TB, more than any machine has', [1_000_000, 1_000_000]],
  ] as const) {
    test(`an output of ${what} is 413 INFERENCE_TOO_COSTLY; the worker is not retried, restarted or changed`, async () => {
      const stored = await snapshotStore(c.modelDir);
      const r = await infer(c.url, [...shape]);
      assert.equal(r.status, 413, JSON.stringify(r.body).slice(0, 500));
      assert.equal(r.body.code, 'INFERENCE_TOO_COSTLY');
      assert.match(r.body.error, /PROCESS_MEMORY_BYTES/);
      assert.equal(r.body.details.requested_bytes, shape[0]! * shape[1]! * 4);
      assert.doesNotMatch(JSON.stringify(r.body), /onnxruntime_src|\/tmp\/|bfc_arena/);
      // One worker tried it (its access line names the refusal): the balancer did not pass it on to the next.
      const reqId = r.headers.get('x-request-id');
      const tried = () => c.logs.filter((l) => l.name.startsWith('modelhost') && l.line.includes(`"reqId":"${reqId}"`) && l.line.includes('"inference"'));
      for (let i = 0; i < 40 && tried().length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(
        tried().length,
        1,
        tried()
          .map((l) => l.line)
          .join('\n'),
      );
      assert.match(tried()[0]!.line, /"status":413/);
      // Every worker, asked straight (one with the model loaded, one maybe not yet), refuses it too, then
      // answers the same model's small requests, and the others', as before: a refused run leaves nothing
      // behind that would take the room of the next (the session's memory arena is renewed).
      for (const worker of c.modelhosts) {
        const again = await infer(worker.url, [...shape]);
        assert.equal(again.status, 413, JSON.stringify(again.body).slice(0, 500));
        for (let i = 0; i < 4; i++) {
          const small = await infer(worker.url, [2, 3]);
          assert.equal(small.status, 200, `${worker.id}: ${JSON.stringify(small.body)}`);
          assert.deepEqual(small.body.outputs[0].shape, [2, 3]);
          const iris = await api(worker.url, '/v1/models/iris/predict', { json: { values: [6.7, 2.5, 5.8, 1.8] } });
          assert.equal(iris.status, 200, `${worker.id}: ${JSON.stringify(iris.body)}`);
        }
      }
      assert.deepEqual(
        c.logs.filter((l) => l.name === 'launcher' && /exited/.test(l.line)),
        [],
      );
      assert.deepEqual(await snapshotStore(c.modelDir), stored);
    });
  }
});

describe('a model config that asks each worker for thousands of runtime threads', () => {
  let c: TestCluster;
  before(async () => {
    c = await startTestCluster({ modelhostEnv: { PROCESS_MEMORY_BYTES: String(1024 * MiB) } });
  });
  after(async () => {
    await c?.close();
  });

  test('64 instances × 256 intra-op threads: 503 MODEL_LOAD_FAILED naming the threads; no worker aborts, the others serve', async () => {
    const form = new FormData();
    form.append('path', new Blob([await readFile(path.join(DEMO, 'iris.onnx'))]), 'iris.onnx');
    form.append('metadata', JSON.stringify({ config: { instances: 64, intra_op_threads: 256 } }));
    const up = await api(c.url, '/api/v1/models/threads', { method: 'PUT', body: form });
    assert.equal(up.status, 201, JSON.stringify(up.body));
    for (const m of c.modelhosts) {
      const r = await api(m.url, '/v1/models/threads/predict', { json: { values: [6.7, 2.5, 5.8, 1.8] } });
      assert.equal(r.status, 503, `${m.id}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, 'MODEL_LOAD_FAILED');
      assert.match(r.body.error.message, /runtime threads/);
      const iris = await api(m.url, '/v1/models/iris/predict', { json: { values: [6.7, 2.5, 5.8, 1.8] } });
      assert.equal(iris.status, 200, `${m.id}: ${JSON.stringify(iris.body)}`);
    }
    assert.deepEqual(
      c.logs.filter((l) => l.name === 'launcher' && /exited/.test(l.line)),
      [],
    );
  });
});

describe('a request whose values make the model run for ever', () => {
  let c: TestCluster;
  const loop = (base: string, trips: number): ReturnType<typeof api> =>
    api(base, '/v2/models/looping/infer', {
      json: {
        inputs: [
          { name: 'trips', shape: [], datatype: 'INT64', data: [trips] },
          { name: 'x', shape: [1], datatype: 'FP32', data: [0] },
        ],
      },
    });
  before(async () => {
    c = await startTestCluster({
      env: { REQUEST_TIMEOUT_MS: '3000' },
      modelhostEnv: { RUN_TIMEOUT_MS: '6000', DRAIN_TIMEOUT_MS: '2000' },
    });
    const form = new FormData();
    form.append('path', new Blob([new Uint8Array(tripCountLoopModel())]), 'model.onnx');
    const r = await api(c.url, '/api/v1/models/looping', { method: 'PUT', body: form });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    for (const m of c.modelhosts) assert.deepEqual((await loop(m.url, 5)).body.outputs[0].data, [5]);
  });
  after(async () => {
    await c?.close();
  });

  test('10^12 trips: 504 at the deadline, then the worker that runs it restarts past RUN_TIMEOUT_MS; every other request is answered', async () => {
    let stop = false;
    const load = steadyLoad(
      2,
      async () => {
        const r = await api(c.url, '/api/v1/models/iris/prediction', { json: { values: [6.7, 2.5, 5.8, 1.8] } });
        return r.status === 200 ? 'ok' : `${r.status} ${JSON.stringify(r.body)}`;
      },
      () => stop,
    );
    try {
      const pids = new Map(c.modelhosts.map((m) => [m.id, m.process.pid]));
      const r = await loop(c.url, 1e12);
      assert.equal(r.status, 504, JSON.stringify(r.body));
      assert.equal(r.body.code, 'DEADLINE_EXCEEDED');
      const ran = (): string | undefined =>
        c.logs.find((l) => l.name.startsWith('modelhost') && l.line.includes(`"reqId":"${r.headers.get('x-request-id')}"`))?.name;
      for (let i = 0; i < 100 && !ran(); i++) await new Promise((r) => setTimeout(r, 50));
      const worker = c.modelhosts.find((m) => m.id === ran());
      assert.ok(worker, 'the worker that ran it logged the request');
      // It says why, exits and is started again; the spinning thread went with the old process.
      const end = Date.now() + 20_000;
      while (Date.now() < end && !c.logs.some((l) => l.name === 'launcher' && l.line.includes(`${worker.id} exited`))) {
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(
        c
          .jsonLogs(worker.id)
          .some((l) => l.msg === 'a run has not returned: ONNX Runtime cannot stop it, so this worker restarts' && l.limit === 'RUN_TIMEOUT_MS'),
      );
      await waitReady(worker.url, 30_000);
      assert.notEqual(worker.process.pid, pids.get(worker.id));
      assert.throws(() => process.kill(pids.get(worker.id)!, 0), /ESRCH/);
      // The model answers on every worker again; the other worker was never restarted.
      for (const m of c.modelhosts) assert.deepEqual((await loop(m.url, 7)).body.outputs[0].data, [7]);
      for (const m of c.modelhosts.filter((m) => m !== worker)) assert.equal(m.process.pid, pids.get(m.id));
    } finally {
      stop = true;
    }
    const counts = await load;
    assert.deepEqual(
      Object.keys(counts).filter((k) => k !== 'ok'),
      [],
      JSON.stringify(counts),
    );
    assert.ok((counts.ok ?? 0) > 20, JSON.stringify(counts));
  });
});
