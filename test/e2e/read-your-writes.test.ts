/**
 * Read-your-writes: a change made through the Inferrer (unload, load, a new version, a delete) is in force
 * for the very next prediction, even where the workers notice store changes by polling alone (a network
 * volume that reports no file events: WATCH_FS_EVENTS=false) and poll rarely (WATCH_INTERVAL_MS=60000).
 * Each prediction carries the store generation its Inferrer last wrote (X-Store-Generation); a worker that
 * has not read it yet reads the store first.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DEMO, type TestCluster, api, startTestCluster, uploadModel } from '../helpers/cluster.ts';

const row = { values: [6.7, 2.5, 5.8, 1.8] };

describe('read your writes (workers that poll the store once a minute, without file events)', () => {
  let c: TestCluster;

  before(async () => {
    c = await startTestCluster({ modelhostEnv: { WATCH_FS_EVENTS: 'false', WATCH_INTERVAL_MS: '60000' } });
  });
  after(() => c?.close());

  test('an unload, a load, a configuration, a new version and a delete are each in force for the next request, on every worker', async () => {
    // Both workers serve iris before the changes.
    const before = await Promise.all(Array.from({ length: 8 }, () => api(c.url, '/api/v1/models/iris/prediction', { json: row })));
    for (const r of before) assert.equal(r.status, 200, JSON.stringify(r.body));

    assert.equal((await api(c.url, '/v2/repository/models/iris/unload', { method: 'POST' })).status, 200);
    const unloaded = await Promise.all(Array.from({ length: 8 }, () => api(c.url, '/api/v1/models/iris/prediction', { json: row })));
    for (const r of unloaded) {
      assert.equal(r.status, 503, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'MODEL_NOT_READY');
    }

    assert.equal((await api(c.url, '/v2/repository/models/iris/load', { method: 'POST' })).status, 200);
    const loaded = await Promise.all(Array.from({ length: 8 }, () => api(c.url, '/api/v1/models/iris/prediction', { json: row })));
    for (const r of loaded) assert.equal(r.status, 200, JSON.stringify(r.body));

    // A configuration change, read back from a worker (the model configuration extension).
    const reconfigured = await api(c.url, '/v2/repository/models/iris/load', { json: { parameters: { config: JSON.stringify({ max_batch_size: 3 }) } } });
    assert.equal(reconfigured.status, 200, JSON.stringify(reconfigured.body));
    for (let i = 0; i < 4; i++) assert.equal((await api(c.url, '/v2/models/iris/config')).body.max_batch_size, 3);

    const up = await uploadModel(c.url, 'iris', path.join(DEMO, 'iris.onnx'));
    assert.equal(up.status, 201, JSON.stringify(up.body));
    const newVersion = up.body.model.default_version as number;
    assert.ok(newVersion >= 2, JSON.stringify(up.body.model));
    const meta = await api(c.url, '/v2/models/iris');
    const input = { name: meta.body.inputs[0].name, shape: [1, 4], datatype: 'FP32', data: row.values };
    const answers = await Promise.all(Array.from({ length: 8 }, () => api(c.url, '/v2/models/iris/infer', { json: { inputs: [input] } })));
    for (const r of answers) {
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.model_version, String(newVersion));
    }

    const up2 = await uploadModel(c.url, 'gone', path.join(DEMO, 'iris.onnx'));
    assert.equal(up2.status, 201, JSON.stringify(up2.body));
    assert.equal((await api(c.url, '/api/v1/models/gone/prediction', { json: row })).status, 200);
    assert.equal((await api(c.url, '/api/v1/models/gone', { method: 'DELETE' })).status, 200);
    const deleted = await Promise.all(Array.from({ length: 8 }, () => api(c.url, '/api/v1/models/gone/prediction', { json: row })));
    for (const r of deleted) assert.equal(r.status, 404, JSON.stringify(r.body));
  });

  test('a worker asked directly, without the header, has not seen the changes: without it the tests above would fail', async () => {
    assert.equal((await api(c.url, '/v2/repository/models/iris/unload', { method: 'POST' })).status, 200);
    try {
      for (const m of c.modelhosts) {
        const r = await fetch(`${m.url}/v1/models/iris/predict`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(row),
        });
        await r.arrayBuffer();
        assert.equal(r.status, 200, `${m.id} still serves iris a moment after the unload: it polls once a minute`);
      }
    } finally {
      assert.equal((await api(c.url, '/v2/repository/models/iris/load', { method: 'POST' })).status, 200);
    }
  });
});
