/**
 * The response cache (issue #17, item 6) through the real cluster: a model whose config says
 * `response_cache: {enable: true}` answers identical inputs from the modelhost's cache without running,
 * whichever body carried them (v1 JSON, v2 JSON, v2 binary); another version, or another file under the
 * same version number, never answers from the old entries; RESPONSE_CACHE_BYTES bounds the memory.
 * One modelhost, so every request meets the same cache.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FIXTURES, REPO, type TestCluster, api, startTestCluster, uploadModel } from '../helpers/cluster.ts';
import { metricSum } from '../helpers/metrics.ts';
import { infer } from '../helpers/v2-client.ts';

const CORPUS = path.join(REPO, 'test', 'fixtures', 'corpus');
/** The modelhost's bound: room for about a dozen small answers. */
const CACHE_BYTES = 8192;

let c: TestCluster;
before(async () => {
  c = await startTestCluster({ modelhosts: 1, modelhostEnv: { RESPONSE_CACHE_BYTES: String(CACHE_BYTES) } });
  const slow = await uploadModel(c.url, 'slow', path.join(FIXTURES, 'slow.onnx'), { config: { response_cache: { enable: true } } });
  assert.equal(slow.status, 201, JSON.stringify(slow.body));
  assert.equal((await uploadModel(c.url, 'ident', path.join(CORPUS, 'id_float32.onnx'), { config: { response_cache: { enable: true } } })).status, 201);
});
after(async () => {
  await c?.close();
});

/** The sum of the modelhost's series of a metric that carry these labels (0 when there are none). */
const metric = (name: string, labels: Record<string, string> = {}): Promise<number> => metricSum(c.modelhosts[0]!.url, name, labels);

/** Model runs (batches) of a model so far. */
const runs = (model: string): Promise<number> => metric('modelhost_batch_size_count', { model });

const v1 = (model: string, values: number[][], query = ''): ReturnType<typeof api> =>
  api(c.url, `/api/v1/models/${model}/prediction${query}`, { json: { values } });

describe('response cache', () => {
  test('an identical input is answered from the cache without a run, whichever body carries it', async () => {
    const row = [1.5, -2, 3.25, 4];
    const hits0 = await metric('modelhost_response_cache_hits_total', { model: 'slow' });
    const misses0 = await metric('modelhost_response_cache_misses_total', { model: 'slow' });
    const first = await v1('slow', [row]);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.headers.get('x-inferrer-cache'), 'miss');
    assert.match(first.headers.get('x-inferrer-batch') ?? '', /requests=1;rows=1/);
    const runsAfterMiss = await runs('slow');

    const again = await v1('slow', [row]);
    assert.equal(again.status, 200);
    assert.equal(again.headers.get('x-inferrer-cache'), 'hit');
    assert.equal(again.headers.get('x-inferrer-batch'), null, 'a cached answer ran in no batch');
    assert.deepEqual(again.body.values, first.body.values);
    assert.deepEqual(again.body.values, [row]);

    // The same tensor as v2 JSON and as v2 binary shares the entry; each answer is encoded as it asks.
    const tensor = { name: 'x', datatype: 'FP32', shape: [1, 4], data: row };
    const json = await infer(c.url, 'slow', [tensor]);
    assert.equal(json.status, 200, JSON.stringify(json.body));
    assert.equal(json.headers.get('x-inferrer-cache'), 'hit');
    assert.deepEqual(json.body.outputs[0].data, row);
    const binary = await infer(c.url, 'slow', [tensor], { binaryInputs: true, binaryOutputs: true });
    assert.equal(binary.status, 200);
    assert.equal(binary.headers.get('x-inferrer-cache'), 'hit');
    const y = binary.binary.get('y')!;
    assert.deepEqual([...new Float32Array(y.buffer.slice(y.byteOffset, y.byteOffset + y.length))], row);

    assert.equal(await runs('slow'), runsAfterMiss, 'no run for any of the three hits');
    assert.equal((await metric('modelhost_response_cache_hits_total', { model: 'slow' })) - hits0, 3);
    assert.equal((await metric('modelhost_response_cache_misses_total', { model: 'slow' })) - misses0, 1);

    // Another input misses, runs, and is answered with its own values.
    const other = await v1('slow', [[9, 8, 7, 6]]);
    assert.equal(other.headers.get('x-inferrer-cache'), 'miss');
    assert.deepEqual(other.body.values, [[9, 8, 7, 6]]);
    assert.equal(await runs('slow'), runsAfterMiss + 1);
  });

  test('hits count in the statistics extension as cache_hit and success, not as inferences', async () => {
    const stats = async (): Promise<any> => (await api(c.url, '/v2/models/slow/stats')).body.model_stats[0];
    const before = await stats();
    const row = [[0.5, 0.25, 0.125, 2]];
    assert.equal((await v1('slow', row)).headers.get('x-inferrer-cache'), 'miss');
    assert.equal((await v1('slow', row)).headers.get('x-inferrer-cache'), 'hit');
    const after = await stats();
    const d = (k: string): number => after.inference_stats[k].count - before.inference_stats[k].count;
    assert.equal(d('success'), 2);
    assert.equal(d('cache_hit'), 1);
    assert.equal(d('cache_miss'), 1);
    assert.equal(d('compute_infer'), 1, 'only the miss ran');
    assert.equal(after.inference_count - before.inference_count, 1);
    assert.ok(after.inference_stats.cache_hit.ns > before.inference_stats.cache_hit.ns, 'the lookup time is counted');
  });

  test('the model configuration says whether the cache is on; switching it reloads nothing', async () => {
    assert.deepEqual((await api(c.url, '/v2/models/slow/config')).body.response_cache, { enable: true });
    assert.deepEqual((await api(c.url, '/v2/models/iris/config')).body.response_cache, { enable: false });
    const iris = await v1('iris', [[6.7, 2.5, 5.8, 1.8]]);
    assert.equal(iris.status, 200);
    assert.equal(iris.headers.get('x-inferrer-cache'), null, 'a model without the cache says nothing of it');

    const loads = await metric('modelhost_model_load_duration_seconds_count', { model: 'slow' });
    const off = await api(c.url, '/api/v1/models/slow', { json: { config: { response_cache: { enable: false } } } });
    assert.equal(off.status, 200, JSON.stringify(off.body));
    const row = [[1, 1, 1, 1]];
    const deadline = Date.now() + 10_000;
    while ((await v1('slow', row)).headers.get('x-inferrer-cache') !== null) {
      assert.ok(Date.now() < deadline, 'the modelhost follows the config change');
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual((await api(c.url, '/v2/models/slow/config')).body.response_cache, { enable: false });
    const on = await api(c.url, '/api/v1/models/slow', { json: { config: { response_cache: { enable: true } } } });
    assert.equal(on.status, 200, JSON.stringify(on.body));
    while ((await v1('slow', row)).headers.get('x-inferrer-cache') === null) {
      assert.ok(Date.now() < deadline + 10_000, 'the cache serves again once switched back on');
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual((await api(c.url, '/v2/models/slow/config')).body.response_cache, { enable: true });
    assert.equal(await metric('modelhost_model_load_duration_seconds_count', { model: 'slow' }), loads, 'the session was not reloaded');
  });

  test('a Triton repository load sets response_cache.enable from its model configuration', async () => {
    const off = await api(c.url, '/v2/repository/models/iris/load', { json: { parameters: { config: JSON.stringify({ response_cache: { enable: true } }) } } });
    assert.equal(off.status, 200, JSON.stringify(off.body));
    assert.deepEqual((await api(c.url, '/v2/models/iris/config')).body.response_cache, { enable: true });
    const bad = await api(c.url, '/v2/repository/models/iris/load', {
      json: { parameters: { config: JSON.stringify({ response_cache: { enable: 'yes' } }) } },
    });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error, /response_cache\.enable/);
    assert.equal(
      (await api(c.url, '/v2/repository/models/iris/load', { json: { parameters: { config: JSON.stringify({ response_cache: { enable: false } }) } } })).status,
      200,
    );
    assert.deepEqual((await api(c.url, '/v2/models/iris/config')).body.response_cache, { enable: false });
  });

  test('a new version never answers from the old one, nor a new file under an old version number', async () => {
    // ident v1 answers y = x; symbolic.onnx answers y = x + 1.
    const row = [[10, 20, 30]];
    assert.deepEqual((await v1('ident', row)).body.values, row);
    const cached = await v1('ident', row);
    assert.equal(cached.headers.get('x-inferrer-cache'), 'hit');

    const up = await uploadModel(c.url, 'ident', path.join(CORPUS, 'symbolic.onnx'));
    assert.equal(up.status, 201, JSON.stringify(up.body));
    assert.equal(up.body.model.default_version, 2);
    const deadline = Date.now() + 10_000;
    let v2: Awaited<ReturnType<typeof v1>>;
    while ((v2 = await v1('ident', row, '?output=y')).body.model_version !== 2) {
      assert.equal(v2.body.model_version, 1);
      assert.ok(Date.now() < deadline, 'version 2 takes over');
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(v2.headers.get('x-inferrer-cache'), 'miss');
    assert.deepEqual(v2.body.values, [[11, 21, 31]]);
    const pinned = await v1('ident', row, '?version=1');
    assert.equal(pinned.headers.get('x-inferrer-cache'), 'hit', 'version 1 keeps its own entries');
    assert.deepEqual(pinned.body.values, row);

    // The model deleted and uploaded again: version 1 is now another file, and answers as that file does.
    assert.equal((await api(c.url, '/api/v1/models/ident', { method: 'DELETE' })).status, 200);
    const gone = async (): Promise<boolean> =>
      !((await (await fetch(`${c.modelhosts[0]!.url}/v1/models`)).json()) as { models: { name: string }[] }).models.some((m) => m.name === 'ident');
    while (!(await gone())) {
      assert.ok(Date.now() < deadline + 10_000, 'the modelhost unloads the deleted model');
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal((await uploadModel(c.url, 'ident', path.join(CORPUS, 'symbolic.onnx'), { config: { response_cache: { enable: true } } })).status, 201);
    const fresh = await v1('ident', row, '?version=1&output=y');
    assert.equal(fresh.status, 200, JSON.stringify(fresh.body));
    assert.equal(fresh.headers.get('x-inferrer-cache'), 'miss');
    assert.deepEqual(fresh.body.values, [[11, 21, 31]]);
  });

  test('RESPONSE_CACHE_BYTES bounds the memory: the least recently used answers go, a too-large one is never kept', async () => {
    assert.equal(await metric('modelhost_response_cache_capacity_bytes'), CACHE_BYTES);
    const evicted0 = await metric('modelhost_response_cache_evictions_total');
    const rows = Array.from({ length: 40 }, (_, i) => [[i, i + 0.5, -i]]);
    for (const r of rows) assert.equal((await v1('ident', r, '?output=y')).headers.get('x-inferrer-cache'), 'miss');
    const bytes = await metric('modelhost_response_cache_bytes');
    const entries = await metric('modelhost_response_cache_entries');
    assert.ok(bytes > 0 && bytes <= CACHE_BYTES, `held ${bytes} bytes, bound ${CACHE_BYTES}`);
    assert.ok(entries >= 4 && entries < rows.length, `${entries} entries`);
    const evicted = (await metric('modelhost_response_cache_evictions_total')) - evicted0;
    assert.ok(evicted >= rows.length - entries, `${evicted} evictions`);
    assert.equal((await v1('ident', rows.at(-1)!, '?output=y')).headers.get('x-inferrer-cache'), 'hit', 'the newest answer is kept');
    assert.equal((await v1('ident', rows[0]!, '?output=y')).headers.get('x-inferrer-cache'), 'miss', 'the oldest was pushed out');

    // 1000 rows answer 12 kB of outputs: more than the whole bound, so never kept.
    const big = Array.from({ length: 1000 }, (_, i) => [i, i, i]);
    for (let i = 0; i < 2; i++) {
      const a = await v1('ident', big, '?output=y');
      assert.equal(a.status, 200);
      assert.equal(a.headers.get('x-inferrer-cache'), 'miss');
    }
    assert.ok((await metric('modelhost_response_cache_bytes')) <= CACHE_BYTES, 'still within the bound');
  });
});
