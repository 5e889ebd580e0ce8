/**
 * Small models on the worker's own thread (INLINE_RUN_MS, packages/runtime/src/inline-runtime.ts), through
 * the real cluster with plans measured at load as they are by default: iris runs there and answers what
 * the same model on runtime threads answers, a request of more rows than a batch runs a batch at a time,
 * and a cheap model whose runs can grow with the request's values (a Tile) stays on a runtime thread.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { tileModel } from '../helpers/costly-models.ts';
import { DEMO, type TestCluster, api, startTestCluster, uploadModel } from '../helpers/cluster.ts';

let c: TestCluster;
before(async () => {
  c = await startTestCluster({ env: { ...process.env, LOG_LEVEL: 'info', WATCH_INTERVAL_MS: '200', PLAN_MEASURE_MS: '10000' } });
  // The same file with two slots set: never inline (one slot runs there).
  const up = await uploadModel(c.url, 'iris-threads', path.join(DEMO, 'iris.onnx'), { config: { instances: 2 } });
  assert.equal(up.status, 201, JSON.stringify(up.body));
  const form = new FormData();
  form.append('path', new Blob([new Uint8Array(tileModel(8))]), 'model.onnx');
  const tile = await api(c.url, '/api/v1/models/tiling', { method: 'PUT', body: form });
  assert.equal(tile.status, 201, JSON.stringify(tile.body));
});
after(async () => {
  await c?.close();
});

interface Execution {
  inline: boolean;
  instances: number;
  reason: string;
  measured: { inline?: boolean }[];
}

/** Each modelhost's plan for `name`, loading it first. */
async function plans(name: string, body: unknown): Promise<Execution[]> {
  return Promise.all(
    c.modelhosts.map(async (mh) => {
      const r = await fetch(`${mh.url}/v2/models/${name}/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      assert.equal(r.status, 200, await r.text());
      return ((await (await fetch(`${mh.url}/v1/models/${name}/settings`)).json()) as { execution: Execution }).execution;
    }),
  );
}

const ROWS = [
  [5.1, 3.5, 1.4, 0.2],
  [6.7, 3.0, 5.2, 2.3],
  [5.9, 3.0, 4.2, 1.5],
];
const irisBody = (rows: number[][]) => ({ inputs: [{ name: 'input', shape: [rows.length, 4], datatype: 'FP32', data: rows.flat() }] });

describe('small models on the worker thread', () => {
  test("iris runs on each worker's own thread and answers as on runtime threads, a batch at a time", async () => {
    for (const e of await plans('iris', irisBody(ROWS))) {
      assert.equal(e.inline, true, e.reason);
      assert.match(e.reason, /on the worker's own thread a row runs in [\d.]+ ms, at most 0.25 ms \(INLINE_RUN_MS\), so it runs there/);
      assert.equal(e.measured.at(-1)?.inline, true);
    }
    for (const e of await plans('iris-threads', irisBody(ROWS))) assert.equal(e.inline, false, e.reason);

    // 100 rows: more than a batch (32), so the worker runs them 32 at a time; the answer is whole and the same.
    const rows = Array.from({ length: 100 }, (_, i) => ROWS[i % 3]!.map((v, j) => v + ((i * (j + 1)) % 5) * 0.1));
    const [inline, threads] = await Promise.all(['iris', 'iris-threads'].map((m) => api(c.url, `/v2/models/${m}/infer`, { json: irisBody(rows) })));
    assert.equal(inline!.status, 200, JSON.stringify(inline!.body));
    assert.equal(threads!.status, 200);
    assert.deepEqual(inline!.body.outputs, threads!.body.outputs);
    assert.equal(inline!.body.outputs[0].shape[0], 100);
  });

  test("bad input to a model on the worker's thread: a clear 400, and the worker serves on", async () => {
    const bad = [
      { inputs: [{ name: 'input', shape: [1, 5], datatype: 'FP32', data: [1, 2, 3, 4, 5] }] },
      { inputs: [{ name: 'input', shape: [1, 4], datatype: 'INT64', data: [1, 2, 3, 4] }] },
      { inputs: [{ name: 'input', shape: [2, 4], datatype: 'FP32', data: [1, 2, 3] }] },
      { inputs: [{ name: 'nope', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] },
    ];
    for (const mh of c.modelhosts) {
      for (const body of bad) {
        const r = await fetch(`${mh.url}/v2/models/iris/infer`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        const text = await r.text();
        assert.equal(r.status, 400, `${JSON.stringify(body)}: ${text}`);
        assert.doesNotMatch(text, /\/(work|tmp|home|usr)\//, 'no file path in the answer');
      }
      const ok = await fetch(`${mh.url}/v2/models/iris/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(irisBody(ROWS)),
      });
      assert.equal(ok.status, 200);
    }
  });

  test('a cheap model whose work can grow with the request (a Tile) stays on a runtime thread, and says why', async () => {
    for (const e of await plans('tiling', { inputs: [{ name: 'x', shape: [1, 1], datatype: 'FP32', data: [2] }] })) {
      assert.equal(e.inline, false);
      assert.match(e.reason, /runs on a runtime thread, not the worker's own, because its graph uses Tile, whose work can grow with the request's values$/);
    }
  });
});
