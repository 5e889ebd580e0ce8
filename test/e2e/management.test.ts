/**
 * Model management through the real cluster: upload → predict → new version → predict → delete, and every
 * bad input refused with a clear 4xx that changes nothing stored.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DEMO, FIXTURES, type TestCluster, api, snapshotStore, stagingLeftovers, startTestCluster, uploadModel } from '../helpers/cluster.ts';

let c: TestCluster;
before(async () => {
  c = await startTestCluster({ inferrerEnv: { MAX_MODEL_BYTES: String(512 * 1024), MAX_BODY_BYTES: String(256 * 1024) } });
});
after(async () => {
  await c?.close();
});

/** Polls until `fn` returns true (modelhosts notice store changes within WATCH_INTERVAL_MS). */
async function eventually(fn: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail('condition not met in time');
}

describe('model lifecycle', () => {
  test('upload → predict → new version → predict → delete', async () => {
    const up = await uploadModel(c.url, 'flowers', path.join(DEMO, 'iris.onnx'), { description: 'iris, first version' });
    assert.equal(up.status, 201, JSON.stringify(up.body));
    assert.equal(up.body.version, 1);
    assert.equal(up.body.model.description, 'iris, first version');

    const p1 = await api(c.url, '/api/v1/models/flowers/prediction', { json: { values: [6.7, 2.5, 5.8, 1.8] } });
    assert.equal(p1.status, 200);
    assert.deepEqual(p1.body.values, [2]);
    assert.equal(p1.body.model_version, 1);

    // A new version under the same name (here a different network: the multi-output diabetes regressor
    // would not fit, so use the fixed-batch fixture to make the switch visible in the answer's shape).
    const up2 = await uploadModel(c.url, 'flowers.onnx', path.join(FIXTURES, 'fixed_batch.onnx'));
    assert.equal(up2.status, 201, JSON.stringify(up2.body));
    assert.equal(up2.body.version, 2);
    assert.deepEqual(up2.body.model.versions, [1, 2]);
    assert.equal(up2.body.model.default_version, 2);

    // Every worker switches within WATCH_INTERVAL_MS: wait until several answers in a row come from v2.
    await eventually(async () => {
      const answers = await Promise.all(Array.from({ length: 8 }, () => api(c.url, '/api/v1/models/flowers/prediction', { json: { values: [1, 2, 3, 4] } })));
      return answers.every((a) => a.body.model_version === 2);
    });
    const p2 = await api(c.url, '/api/v1/models/flowers/prediction', { json: { values: [1, 2, 3, 4] } });
    assert.equal(p2.status, 200);
    assert.equal(p2.body.values.length, 1);
    assert.ok(Math.abs(p2.body.values[0][0] - 2.85) < 1e-4 && Math.abs(p2.body.values[0][1] - 4.8) < 1e-4, JSON.stringify(p2.body.values));

    // The old version is still there when asked for by number.
    const old = await api(c.url, '/api/v1/models/flowers/prediction?version=1', { json: { values: [6.7, 2.5, 5.8, 1.8] } });
    assert.equal(old.status, 200);
    assert.deepEqual(old.body.values, [2]);
    assert.equal(old.headers.get('x-inferrer-model-version'), '1');

    const del = await api(c.url, '/api/v1/models/flowers', { method: 'DELETE' });
    assert.equal(del.status, 200);
    assert.equal((await api(c.url, '/api/v1/models/flowers')).status, 404);
    await eventually(async () => {
      const answers = await Promise.all(Array.from({ length: 8 }, () => api(c.url, '/api/v1/models/flowers/prediction', { json: { values: [1, 2, 3, 4] } })));
      return answers.every((a) => a.status === 404);
    });
    assert.ok(!(await api(c.url, '/api/v1/models')).body.model_list.includes('flowers'));
  });

  test('a raw application/octet-stream body uploads too', async () => {
    const body = await readFile(path.join(DEMO, 'diabetes.onnx'));
    const r = await api(c.url, '/api/v1/models/sugar', { method: 'PUT', body, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.deepEqual(r.body.model.inputs, [{ name: 'input', type: 'float32', shape: ['batch', 10] }]);
    assert.equal((await api(c.url, '/api/v1/models/sugar', { method: 'DELETE' })).status, 200);
  });
});

describe('bad input gets a clear 4xx and changes nothing stored', () => {
  const cases: { name: string; send: () => Promise<{ status: number; body: any }>; status: number; code: string; message?: RegExp }[] = [
    {
      name: 'wrong shape',
      send: () => api(c.url, '/api/v1/models/digits/prediction', { json: { values: [[1, 2, 3]] } }),
      status: 400,
      code: 'INVALID_INPUT',
      message: /input 'image' expects .*\[1, 8, 8\].*got values of shape \[1, 3\]/,
    },
    {
      name: 'wrong number of values',
      send: () => api(c.url, '/api/v1/models/iris/prediction', { json: { values: [1, 2, 3] } }),
      status: 400,
      code: 'INVALID_INPUT',
      message: /input 'input'.*\[4\].*got values of shape \[3\]/,
    },
    {
      name: 'non-numeric values',
      send: () => api(c.url, '/api/v1/models/iris/prediction', { json: { values: [1, 'two', 3, 4] } }),
      status: 400,
      code: 'INVALID_INPUT',
      message: /element 1: expected a number, got the string "two"/,
    },
    {
      name: 'wrong dtype (a boolean for a float input)',
      send: () => api(c.url, '/api/v1/models/iris/prediction', { json: { values: [[true, 1, 2, 3]] } }),
      status: 400,
      code: 'INVALID_INPUT',
      message: /expected a number, got boolean true/,
    },
    {
      name: 'ragged rows',
      send: () =>
        api(c.url, '/api/v1/models/iris/prediction', {
          json: {
            values: [
              [1, 2, 3, 4],
              [1, 2],
            ],
          },
        }),
      status: 400,
      code: 'INVALID_INPUT',
      message: /not rectangular/,
    },
    {
      name: 'no values field',
      send: () => api(c.url, '/api/v1/models/iris/prediction', { json: { data: [1, 2, 3, 4] } }),
      status: 400,
      code: 'INVALID_REQUEST',
    },
    {
      name: 'malformed JSON',
      send: () => api(c.url, '/api/v1/models/iris/prediction', { method: 'POST', body: '{"values": [1, 2,', headers: { 'content-type': 'application/json' } }),
      status: 400,
      code: 'INVALID_JSON',
    },
    {
      name: 'missing model',
      send: () => api(c.url, '/api/v1/models/absent/prediction', { json: { values: [1, 2, 3, 4] } }),
      status: 404,
      code: 'MODEL_NOT_FOUND',
    },
    {
      name: 'bad model name ../x (prediction)',
      send: () => api(c.url, `/api/v1/models/${encodeURIComponent('../x')}/prediction`, { json: { values: [1] } }),
      status: 400,
      code: 'INVALID_MODEL_NAME',
    },
    {
      name: 'bad model name ../x (upload)',
      send: () => uploadModel(c.url, encodeURIComponent('../x'), path.join(DEMO, 'iris.onnx')),
      status: 400,
      code: 'INVALID_MODEL_NAME',
    },
    {
      name: 'bad model name of 300 characters',
      send: () => uploadModel(c.url, 'a'.repeat(300), path.join(DEMO, 'iris.onnx')),
      status: 400,
      code: 'INVALID_MODEL_NAME',
    },
    { name: 'bad model name with a dot-dot', send: () => uploadModel(c.url, 'a..b', path.join(DEMO, 'iris.onnx')), status: 400, code: 'INVALID_MODEL_NAME' },
    { name: 'empty model name', send: () => api(c.url, '/api/v1/models/%20', { method: 'DELETE' }), status: 400, code: 'INVALID_MODEL_NAME' },
    {
      name: 'a file that is not ONNX',
      send: () => uploadModel(c.url, 'notonnx', path.join(FIXTURES, 'not_onnx.onnx')),
      status: 400,
      code: 'INVALID_MODEL',
      message: /does not parse as an ONNX model/,
    },
    {
      name: 'external data escaping the model folder',
      send: () => uploadModel(c.url, 'escape', path.join(FIXTURES, 'external_escape.onnx')),
      status: 400,
      code: 'INVALID_MODEL',
      message: /outside its folder/,
    },
    {
      name: 'a model over MAX_MODEL_BYTES',
      send: async () => {
        const form = new FormData();
        form.append('path', new Blob([Buffer.alloc(600 * 1024, 7)]), 'big.onnx');
        return api(c.url, '/api/v1/models/big', { method: 'PUT', body: form });
      },
      status: 413,
      code: 'MODEL_TOO_LARGE',
    },
    {
      name: 'a new version that is not ONNX (existing model untouched)',
      send: () => uploadModel(c.url, 'iris', path.join(FIXTURES, 'not_onnx.onnx')),
      status: 400,
      code: 'INVALID_MODEL',
    },
    {
      name: 'upload without a file field',
      send: async () => {
        const form = new FormData();
        form.append('metadata', '{}');
        return api(c.url, '/api/v1/models/nofile', { method: 'PUT', body: form });
      },
      status: 400,
      code: 'INVALID_REQUEST',
    },
    {
      name: 'upload metadata that is not JSON (curl cut it at a ";"): the error names the field and the fix',
      send: async () => {
        const form = new FormData();
        form.append('path', new Blob([await readFile(path.join(DEMO, 'iris.onnx'))]), 'iris.onnx');
        form.append('metadata', '{"description": "a');
        return api(c.url, '/api/v1/models/cut', { method: 'PUT', body: form });
      },
      status: 400,
      code: 'INVALID_JSON',
      message: /form field "metadata" is not valid JSON.*metadata=<metadata\.json/,
    },
    {
      name: 'upload metadata that is not valid',
      send: () => uploadModel(c.url, 'meta', path.join(DEMO, 'iris.onnx'), { config: { batching: { max_batch_size: -3 } } }),
      status: 400,
      code: 'INVALID_REQUEST',
      message: /max_batch_size/,
    },
    {
      name: 'upload with a wrong content type',
      send: () => api(c.url, '/api/v1/models/plain', { method: 'PUT', body: 'hello', headers: { 'content-type': 'text/plain' } }),
      status: 415,
      code: 'UNSUPPORTED_MEDIA_TYPE',
    },
    {
      name: 'a prediction body over the limit',
      send: () => api(c.url, '/api/v1/models/iris/prediction', { json: { values: Array.from({ length: 40_000 }, () => [1.5, 2.5, 3.5, 4.5]) } }),
      status: 413,
      code: 'BODY_TOO_LARGE',
    },
    {
      name: 'a bad version number',
      send: () => api(c.url, '/api/v1/models/iris/prediction?version=../1', { json: { values: [1, 2, 3, 4] } }),
      status: 400,
      code: 'INVALID_MODEL_NAME',
    },
    {
      name: 'a version that does not exist',
      send: () => api(c.url, '/api/v1/models/iris/prediction?version=7', { json: { values: [1, 2, 3, 4] } }),
      status: 404,
      code: 'VERSION_NOT_FOUND',
    },
  ];

  for (const k of cases) {
    test(k.name, async () => {
      const before = await snapshotStore(c.modelDir);
      const r = await k.send();
      assert.equal(r.status, k.status, JSON.stringify(r.body));
      assert.equal(r.body.error?.code, k.code, JSON.stringify(r.body));
      assert.ok(r.body.http_status, 'v1 envelope');
      if (k.message) assert.match(r.body.error.message, k.message);
      assert.doesNotMatch(JSON.stringify(r.body), /\/tmp\/|node_modules|at .*\.ts:\d+/, 'no paths or stacks in answers');
      assert.deepEqual(await snapshotStore(c.modelDir), before, 'store unchanged');
      assert.deepEqual(await stagingLeftovers(c.modelDir), [], 'no staging leftovers');
      // The workers still serve the next good request.
      const good = await api(c.url, '/api/v1/models/iris/prediction', { json: { values: [6.7, 2.5, 5.8, 1.8] } });
      assert.equal(good.status, 200);
      assert.deepEqual(good.body.values, [2]);
    });
  }

  test('a truncated upload leaves the store as it was', async () => {
    const before = await snapshotStore(c.modelDir);
    const model = await readFile(path.join(DEMO, 'digits.onnx'));
    const { port } = new URL(c.url);
    // Announce the whole file, send half, then hang up.
    await new Promise<void>((resolve, reject) => {
      const s = net.connect(Number(port), '127.0.0.1', () => {
        s.write(`PUT /api/v1/models/truncated HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${model.length}\r\n\r\n`);
        s.write(model.subarray(0, model.length >> 1), () => setTimeout(() => s.destroy(), 200));
      });
      s.on('close', () => resolve());
      s.on('error', reject);
    });
    const boundary = 'xyzzy';
    // And a multipart form that stops mid-file.
    await new Promise<void>((resolve, reject) => {
      const head = `--${boundary}\r\nContent-Disposition: form-data; name="path"; filename="m.onnx"\r\nContent-Type: application/octet-stream\r\n\r\n`;
      const s = net.connect(Number(port), '127.0.0.1', () => {
        s.write(
          `PUT /api/v1/models/truncated2 HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${head.length + model.length + 100}\r\n\r\n${head}`,
        );
        s.write(model.subarray(0, 1000), () => setTimeout(() => s.destroy(), 200));
      });
      s.on('close', () => resolve());
      s.on('error', reject);
    });
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(await snapshotStore(c.modelDir), before);
    assert.deepEqual(await stagingLeftovers(c.modelDir), []);
    assert.equal((await api(c.url, '/api/v1/models/truncated')).status, 404);
  });

  test('concurrent uploads of one model each get their own version', async () => {
    const file = path.join(DEMO, 'iris.onnx');
    const results = await Promise.all(Array.from({ length: 4 }, () => uploadModel(c.url, 'racer', file)));
    for (const r of results) assert.ok(r.status === 200 || r.status === 201, JSON.stringify(r.body));
    assert.deepEqual(results.map((r) => r.body.version).sort(), [1, 2, 3, 4]);
    const d = await api(c.url, '/api/v1/models/racer');
    assert.deepEqual(d.body.model.versions, [1, 2, 3, 4]);
    await api(c.url, '/api/v1/models/racer', { method: 'DELETE' });
  });
});
