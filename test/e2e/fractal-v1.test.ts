/** Every FRACTAL v1 route through the real cluster (Inferrer → balancer → 2 modelhosts). */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DEMO, type TestCluster, api, startTestCluster } from '../helpers/cluster.ts';

let c: TestCluster;
before(async () => {
  c = await startTestCluster();
});
after(async () => {
  await c?.close();
});

const ok = { code: 200, description: 'Request fulfilled, document follows', name: 'OK' };

describe('FRACTAL v1', () => {
  test('GET / welcomes and GET /help lists every route with an example', async () => {
    const root = await api(c.url, '/');
    assert.equal(root.status, 200);
    assert.deepEqual(root.body.http_status, ok);
    assert.match(root.body.message, /Inferrer/);
    const help = await api(c.url, '/help');
    assert.equal(help.status, 200);
    const routes = help.body.routes.map((r: { method: string; path: string }) => `${r.method} ${r.path}`);
    for (const r of [
      'GET /api/v1/models',
      'GET /api/v1/models/information',
      'GET /api/v1/models/{name}',
      'POST /api/v1/models/{name}',
      'PUT /api/v1/models/{name}',
      'DELETE /api/v1/models/{name}',
      'POST /api/v1/models/{name}/prediction',
      'GET /api/v1/models/{name}/prediction',
      'POST /api/test/sendtomodelhost',
    ]) {
      assert.ok(routes.includes(r), `help lists ${r}`);
    }
    for (const r of help.body.routes) assert.match(r.example, /^curl /);
  });

  test('model list and information name the demo models', async () => {
    const list = await api(c.url, '/api/v1/models');
    assert.deepEqual(list.body, { http_status: ok, model_list: ['diabetes', 'digits', 'iris'] });
    const info = await api(c.url, '/api/v1/models/information');
    assert.deepEqual(
      info.body.model_list.map((m: { model: string }) => m.model),
      ['diabetes', 'digits', 'iris'],
    );
    for (const m of info.body.model_list) assert.ok(m.description.length > 10, `${m.model} has a description`);
  });

  test('GET /api/v1/models/{name} shows inputs, outputs, versions and batching config; iris.onnx names iris', async () => {
    for (const name of ['iris', 'iris.onnx']) {
      const r = await api(c.url, `/api/v1/models/${name}`);
      assert.equal(r.status, 200);
      const m = r.body.model;
      assert.equal(m.name, 'iris');
      assert.deepEqual(m.versions, [1]);
      assert.deepEqual(m.inputs, [{ name: 'input', type: 'float32', shape: ['batch', 4] }]);
      assert.deepEqual(
        m.outputs.map((o: { name: string; type: string }) => `${o.name}:${o.type}`),
        ['label:int64', 'probabilities:float32'],
      );
      assert.ok('config' in m);
    }
  });

  test('prediction answers {"values": [label]} for one row, as FRACTAL does', async () => {
    const r = await api(c.url, '/api/v1/models/iris/prediction', { json: { values: [2, 5, 1, 4] } });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.http_status, ok);
    assert.equal(r.body.values.length, 1);
    assert.ok([0, 1, 2].includes(r.body.values[0]));
    assert.match(r.headers.get('x-request-id') ?? '', /.+/);
  });

  test('prediction matches the label the model was trained to give, for rows and with every output', async () => {
    for (const name of ['iris', 'digits', 'diabetes']) {
      const sidecar = JSON.parse(await readFile(path.join(DEMO, `${name}.json`), 'utf8'));
      const one = await api(c.url, `/api/v1/models/${name}/prediction?outputs=all`, { json: { values: sidecar.example } });
      assert.equal(one.status, 200, JSON.stringify(one.body));
      if (name === 'diabetes') {
        assert.ok(Math.abs(one.body.values[0] - sidecar.expected.prediction[0]) < 1e-3, `${one.body.values[0]}`);
      } else {
        assert.deepEqual(one.body.values, [sidecar.expected.label]);
        assert.equal(one.body.outputs.probabilities[0].length, name === 'iris' ? 3 : 10);
      }
      const rows = await api(c.url, `/api/v1/models/${name}/prediction`, { json: { values: [sidecar.example, sidecar.example, sidecar.example] } });
      assert.equal(rows.status, 200);
      assert.equal(rows.body.values.length, 3);
      assert.deepEqual(rows.body.values[2], one.body.values[0]);
    }
  });

  test('GET prediction takes the body or ?values=', async () => {
    const viaQuery = await api(c.url, `/api/v1/models/iris/prediction?values=${encodeURIComponent('[6.7,2.5,5.8,1.8]')}`);
    assert.equal(viaQuery.status, 200);
    assert.deepEqual(viaQuery.body.values, [2]);
    const none = await api(c.url, '/api/v1/models/iris/prediction');
    assert.equal(none.status, 400);
    assert.equal(none.body.error.code, 'INVALID_REQUEST');
  });

  test("v1 takes Python's NaN and Infinity tokens, in the body and in ?values=, as v2 does", async () => {
    for (const values of ['[NaN, 2.5, 5.8, 1.8]', '[6.7, Infinity, -Infinity, 1.8]']) {
      const body = await api(c.url, '/api/v1/models/iris/prediction', {
        method: 'POST',
        body: `{"values": ${values}}`,
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(body.status, 200, JSON.stringify(body.body));
      const query = await api(c.url, `/api/v1/models/iris/prediction?values=${encodeURIComponent(values)}`);
      assert.equal(query.status, 200, JSON.stringify(query.body));
      assert.deepEqual(query.body.values, body.body.values);
    }
  });

  test('a 503 for a model that is not ready says why, not "a high load"', async () => {
    assert.equal((await api(c.url, '/v2/repository/models/diabetes/unload', { method: 'POST' })).status, 200);
    try {
      // At once: the request carries the store generation the unload wrote (X-Store-Generation).
      const r = await api(c.url, '/api/v1/models/diabetes/prediction', { json: { values: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0] } });
      assert.equal(r.status, 503, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'MODEL_NOT_READY');
      assert.doesNotMatch(r.body.http_status.description, /high load/);
      assert.match(r.body.http_status.description, /loading or unloading/);
    } finally {
      assert.equal((await api(c.url, '/v2/repository/models/diabetes/load', { method: 'POST' })).status, 200);
    }
  });

  test('POST /api/v1/models/{name} updates the description', async () => {
    const r = await api(c.url, '/api/v1/models/diabetes', { json: { model_description: 'Disease progression after one year' } });
    assert.equal(r.status, 200);
    assert.equal(r.body.model.description, 'Disease progression after one year');
    const again = await api(c.url, '/api/v1/models/information');
    assert.equal(again.body.model_list.find((m: { model: string }) => m.model === 'diabetes').description, 'Disease progression after one year');
    const bad = await api(c.url, '/api/v1/models/diabetes', { json: { model_description: 42 } });
    assert.equal(bad.status, 400);
  });

  test('sendtomodelhost shows the load spread over both modelhosts', async () => {
    const data = Array.from({ length: 40 }, (_, i) => `item-${i}`);
    const r = await api(c.url, '/api/test/sendtomodelhost', { json: { data } });
    assert.equal(r.status, 200);
    assert.deepEqual(
      r.body.results.map((x: { data: string }) => x.data),
      data,
    );
    const hosts = new Set(r.body.results.map((x: { modelhost: string }) => x.modelhost));
    assert.deepEqual([...hosts].sort(), ['modelhost-1', 'modelhost-2']);
  });

  test('unknown routes and models get a 404 naming what was missing', async () => {
    const route = await api(c.url, '/api/v1/nothing');
    assert.equal(route.status, 404);
    assert.equal(route.body.error.code, 'ROUTE_NOT_FOUND');
    const model = await api(c.url, '/api/v1/models/ghost/prediction', { json: { values: [1, 2, 3, 4] } });
    assert.equal(model.status, 404);
    assert.equal(model.body.error.code, 'MODEL_NOT_FOUND');
    assert.match(model.body.error.message, /ghost/);
    const describe404 = await api(c.url, '/api/v1/models/ghost');
    assert.equal(describe404.status, 404);
  });

  test('request ids travel to the modelhost and appear in its log lines', async () => {
    const id = `e2e-${Date.now()}`;
    const r = await api(c.url, '/api/v1/models/iris/prediction', { json: { values: [1, 2] }, headers: { 'x-request-id': id } });
    assert.equal(r.status, 400);
    assert.equal(r.headers.get('x-request-id'), id);
    await new Promise((res) => setTimeout(res, 300));
    const seen = c.logs.filter((l) => l.line.includes(id)).map((l) => l.name);
    assert.ok(seen.includes('inferrer'), 'inferrer logged it');
    assert.ok(
      seen.some((n) => n.startsWith('modelhost-')),
      'a modelhost logged it',
    );
  });
});
