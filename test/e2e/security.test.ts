/** API keys with scopes, rate limits and security headers on the real cluster. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DEMO, type TestCluster, api, snapshotStore, startTestCluster, uploadModel } from '../helpers/cluster.ts';

const ADMIN = 'admin-key-0123456789abcdef';
const PREDICT = 'predict-key-0123456789abcdef';
const LIMITED = 'limited-key-0123456789abcdef';

let c: TestCluster;
let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-keys-'));
  const keys = path.join(dir, 'keys.json');
  await writeFile(
    keys,
    JSON.stringify({
      keys: [
        { key: ADMIN, scopes: ['admin', 'predict'], name: 'ops' },
        { key: PREDICT, scopes: ['predict'], name: 'app' },
        { key: LIMITED, scopes: ['predict'], name: 'limited' },
      ],
    }),
  );
  c = await startTestCluster({ inferrerEnv: { API_KEYS_FILE: keys, AUTH_DISABLED: 'false', RATE_LIMIT_KEY_RPS: '40' } });
});
after(async () => {
  await c?.close();
  await rm(dir, { recursive: true, force: true });
});

const bearer = (k: string) => ({ authorization: `Bearer ${k}` });
const row = { values: [6.7, 2.5, 5.8, 1.8] };

describe('API keys and scopes', () => {
  test('public routes need no key', async () => {
    for (const p of ['/', '/help', '/health/live', '/health/ready', '/v2', '/v2/health/ready', '/openapi.json', '/metrics']) {
      assert.equal((await api(c.url, p)).status, 200, p);
    }
  });

  test('401 without a key or with an unknown one; the answer names the problem', async () => {
    const none = await api(c.url, '/api/v1/models/iris/prediction', { json: row });
    assert.equal(none.status, 401);
    assert.equal(none.body.error.code, 'UNAUTHORIZED');
    assert.match(none.body.error.message, /Authorization: Bearer/);
    const wrong = await api(c.url, '/api/v1/models/iris/prediction', { json: row, headers: bearer('not-a-real-key-000000') });
    assert.equal(wrong.status, 401);
    assert.match(wrong.body.error.message, /not valid/);
    const v2 = await api(c.url, '/v2/models/iris/infer', { json: { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: row.values }] } });
    assert.equal(v2.status, 401);
    assert.equal(v2.body.code, 'UNAUTHORIZED');
    assert.equal((await api(c.url, '/api/v1/models')).status, 401, 'metadata needs a key too');
  });

  test('a predict key predicts and reads metadata but cannot manage models (403)', async () => {
    const p = await api(c.url, '/api/v1/models/iris/prediction', { json: row, headers: bearer(PREDICT) });
    assert.equal(p.status, 200);
    assert.deepEqual(p.body.values, [2]);
    assert.equal((await api(c.url, '/api/v1/models/iris', { headers: bearer(PREDICT) })).status, 200);
    const before = await snapshotStore(c.modelDir);
    const form = new FormData();
    form.append('path', new Blob([Buffer.from('x')]), 'm.onnx');
    const up = await api(c.url, '/api/v1/models/sneaky', { method: 'PUT', body: form, headers: bearer(PREDICT) });
    assert.equal(up.status, 403);
    assert.equal(up.body.error.code, 'FORBIDDEN');
    assert.match(up.body.error.message, /'admin' scope/);
    assert.equal((await api(c.url, '/api/v1/models/iris', { method: 'DELETE', headers: bearer(PREDICT) })).status, 403);
    assert.equal((await api(c.url, '/v2/repository/models/iris/unload', { method: 'POST', headers: bearer(PREDICT) })).status, 403);
    assert.deepEqual(await snapshotStore(c.modelDir), before);
  });

  test('an admin key manages models', async () => {
    const form = new FormData();
    form.append('path', new Blob([await (await import('node:fs/promises')).readFile(path.join(DEMO, 'iris.onnx'))]), 'iris.onnx');
    const up = await api(c.url, '/api/v1/models/guarded', { method: 'PUT', body: form, headers: bearer(ADMIN) });
    assert.equal(up.status, 201, JSON.stringify(up.body));
    assert.equal((await api(c.url, '/api/v1/models/guarded', { method: 'DELETE', headers: bearer(ADMIN) })).status, 200);
    const anon = await uploadModel(c.url, 'anon', path.join(DEMO, 'iris.onnx'));
    assert.equal(anon.status, 401);
  });

  test('a key over its rate gets 429 with Retry-After; other keys are not affected', async () => {
    const answers = await Promise.all(Array.from({ length: 120 }, () => api(c.url, '/api/v1/models/iris/prediction', { json: row, headers: bearer(LIMITED) })));
    const limited = answers.filter((a) => a.status === 429);
    assert.ok(limited.length > 0, 'some requests were limited');
    assert.ok(
      answers.every((a) => a.status === 200 || a.status === 429),
      'nothing but successes and 429s',
    );
    assert.equal(limited[0]!.body.error.code, 'RATE_LIMITED');
    assert.ok(Number(limited[0]!.headers.get('retry-after')) >= 1);
    assert.equal((await api(c.url, '/api/v1/models/iris/prediction', { json: row, headers: bearer(PREDICT) })).status, 200);
  });

  test('security headers on every answer, and no stack traces or paths in errors', async () => {
    for (const [p, init] of [
      ['/api/v1/models/iris/prediction', { json: row, headers: bearer(PREDICT) }],
      ['/api/v1/models/iris', { headers: bearer(PREDICT) }],
      ['/api/v1/models/iris/prediction', { json: { values: 'bad' }, headers: bearer(PREDICT) }],
    ] as const) {
      const r = await api(c.url, p, init as RequestInit & { json?: unknown });
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff', p);
      assert.ok(r.headers.get('x-frame-options'), p);
      assert.equal(r.headers.get('x-powered-by'), null);
      assert.doesNotMatch(JSON.stringify(r.body), /\/(tmp|work|home|root)\/|\.ts:\d+|node_modules/);
    }
  });

  test('Expect: 100-continue without the scope is refused on its headers: no 100 Continue, nothing stored', async () => {
    const before = await snapshotStore(c.modelDir);
    const port = Number(new URL(c.url).port);
    for (const [target, auth, status] of [
      ['PUT /api/v1/models/sneaky', '', 401],
      ['PUT /api/v1/models/sneaky', `Authorization: Bearer ${PREDICT}\r\n`, 403],
      ['POST /v2/models/iris/infer', '', 401],
      ['POST /api/v1/models/iris/prediction', '', 401],
    ] as const) {
      const text = await new Promise<string>((resolve, reject) => {
        const socket = net.connect({ port, host: '127.0.0.1' }, () =>
          socket.write(
            `${target} HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/octet-stream\r\nContent-Length: 100000000\r\nExpect: 100-continue\r\n\r\n`,
          ),
        );
        let got = '';
        socket.on('data', (d) => {
          got += d.toString('latin1');
          // The final answer (or a 100 Continue, which would ask for the 100 MB body) is all there is to hear.
          if (/\r\n\r\n/.test(got) && (got.startsWith('HTTP/1.1 100') || /\r\n\r\n[\s\S]*\}/.test(got))) socket.destroy();
        });
        socket.on('close', () => resolve(got));
        socket.on('error', reject);
      });
      assert.ok(text.startsWith(`HTTP/1.1 ${status} `), `${target} ${auth ? 'predict key' : 'no key'}: ${JSON.stringify(text.slice(0, 200))}`);
    }
    assert.deepEqual(await snapshotStore(c.modelDir), before);
  });

  test('modelhosts listen on loopback only in the local cluster', () => {
    for (const m of c.modelhosts) assert.match(m.url, /^http:\/\/127\.0\.0\.1:/);
  });
});
