/**
 * Requests that are valid HTTP but easy to misread: a body with a Content-Encoding on a route that does not
 * inflate one, a body sent chunked (no Content-Length). Each is answered as the request says, or refused
 * with a 4xx that names the problem, and a refused one changes nothing.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { DEMO, type TestCluster, api, snapshotStore, startTestCluster, uploadModel } from '../helpers/cluster.ts';

let c: TestCluster;
before(async () => {
  c = await startTestCluster();
});
after(async () => {
  await c?.close();
});

const row = JSON.stringify({ values: [6.7, 2.5, 5.8, 1.8] });

describe('Content-Encoding', () => {
  test('a coded body on a route that does not inflate one is 415 naming the coding, and nothing is stored', async () => {
    const before = await snapshotStore(c.modelDir);
    const ndjson = `${row}\n${row}\n`;
    const sends: [string, string, BodyInit][] = [
      ['/api/v1/models/iris/prediction', 'application/json', gzipSync(row)],
      ['/api/v1/models/iris/jobs', 'application/x-ndjson', gzipSync(ndjson)],
      ['/api/v1/models/iris', 'application/json', gzipSync(JSON.stringify({ model_description: 'gz' }))],
    ];
    for (const [route, type, body] of sends) {
      for (const coding of ['gzip', 'br']) {
        const r = await api(c.url, route, { method: 'POST', body, headers: { 'content-type': type, 'content-encoding': coding } });
        assert.equal(r.status, 415, `${route} ${coding}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.error.code, 'UNSUPPORTED_MEDIA_TYPE');
        assert.match(r.body.error.message, new RegExp(`Content-Encoding.*${coding}`));
      }
    }
    assert.deepEqual((await api(c.url, '/api/v1/jobs')).body.jobs, []);
    assert.deepEqual(await snapshotStore(c.modelDir), before);
    // identity is no coding; v2 infer still inflates gzip
    const plain = await api(c.url, '/api/v1/models/iris/prediction', { method: 'POST', body: row, headers: { 'content-encoding': 'identity' } });
    assert.equal(plain.status, 200);
    const v2 = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [6.7, 2.5, 5.8, 1.8] }] });
    const inflated = await api(c.url, '/v2/models/iris/infer', { method: 'POST', body: gzipSync(v2), headers: { 'content-encoding': 'gzip' } });
    assert.equal(inflated.status, 200);
  });
});

/** A body sent chunked: no Content-Length, only Transfer-Encoding. */
const chunked = (text: string): RequestInit =>
  ({
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: new ReadableStream({
      start(ctl) {
        ctl.enqueue(new TextEncoder().encode(text));
        ctl.close();
      },
    }),
    duplex: 'half',
  }) as RequestInit;

describe('chunked bodies', () => {
  test('promote with {"version": N} sent chunked promotes version N, not the canary', async () => {
    const up = await uploadModel(c.url, 'chunky', path.join(DEMO, 'iris.onnx'));
    assert.equal(up.status, 201);
    assert.equal((await uploadModel(c.url, 'chunky', path.join(DEMO, 'iris.onnx'), { make_default: false })).status, 201);
    assert.equal((await api(c.url, '/api/v1/models/chunky/canary', { json: { version: 2, percent: 10 } })).status, 200);
    const r = await api(c.url, '/api/v1/models/chunky/promote', chunked(JSON.stringify({ version: 1 })));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.model.default_version, 1);
    assert.deepEqual(r.body.model.traffic, {});
    const bad = await api(c.url, '/api/v1/models/chunky/promote', chunked(JSON.stringify({ version: 9 })));
    assert.equal(bad.status, 404, 'the version it names is looked up');
    assert.equal(bad.body.error.code, 'VERSION_NOT_FOUND');
  });
});
