/**
 * Triton and KServe tooling against the real cluster (issue #15): the model configuration extension that
 * perf_analyzer reads first, statistics summed over every worker, compressed bodies both ways. Every request
 * goes over real HTTP to the Inferrer, through the balancer, to two modelhosts.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import zlib from 'node:zlib';
import { type TestCluster, REPO, api, snapshotStore, startTestCluster, uploadModel } from '../helpers/cluster.ts';
import { busyModel } from '../helpers/busy-model.ts';
import { NO_INPUTS_OUTPUTS, noInputsModel } from '../helpers/no-inputs-model.ts';
import { whileHeld } from '../helpers/held.ts';
import { modelhostArrivals, until } from '../helpers/metrics.ts';
import { infer } from '../helpers/v2-client.ts';

const CORPUS = path.join(REPO, 'test', 'fixtures', 'corpus');
const IRIS_ROW = [6.7, 2.5, 5.8, 1.8];

let c: TestCluster;
before(async () => {
  c = await startTestCluster();
  assert.equal((await uploadModel(c.url, 'fixed', path.join(CORPUS, 'fixed_dims.onnx'))).status, 201);
  assert.equal(
    (
      await uploadModel(c.url, 'batch8', path.join(REPO, 'test', 'fixtures', 'models', 'multi_io.onnx'), {
        config: { batching: { max_batch_size: 8, max_queue_delay_ms: 2 } },
      })
    ).status,
    201,
  );
});
after(async () => {
  await c?.close();
});

interface Raw {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** A request on node:http: the answer's bytes exactly as sent (fetch would inflate a compressed answer). */
function raw(method: string, route: string, headers: Record<string, string>, body?: Buffer): Promise<Raw> {
  const u = new URL(c.url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        method,
        path: route,
        headers: { ...headers, ...(body ? { 'content-length': String(body.length) } : {}) },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (b: Buffer) => chunks.push(b));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const irisJson = (rows: number[][], extra: Record<string, unknown> = {}): Buffer =>
  Buffer.from(JSON.stringify({ inputs: [{ name: 'input', shape: [rows.length, 4], datatype: 'FP32', data: rows.flat() }], ...extra }));

describe('model configuration extension', () => {
  test('GET /v2 lists model_configuration, statistics and classification among its extensions', async () => {
    const r = await api(c.url, '/v2');
    for (const e of ['binary_tensor_data', 'model_repository', 'model_configuration', 'statistics', 'classification'])
      assert.ok(r.body.extensions.includes(e), e);
  });

  test('a batched model: max_batch_size > 0, dims without the batch dim, names as in the metadata, dynamic batching', async () => {
    const meta = await api(c.url, '/v2/models/iris');
    const r = await api(c.url, '/v2/models/iris/config');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const cfg = r.body;
    assert.equal(cfg.name, 'iris');
    assert.equal(cfg.platform, 'onnxruntime_onnx');
    assert.equal(cfg.backend, 'onnxruntime');
    assert.equal(cfg.max_batch_size, 32, 'the modelhosts default MAX_BATCH_SIZE');
    assert.deepEqual(
      cfg.input.map((i: { name: string }) => i.name),
      meta.body.inputs.map((i: { name: string }) => i.name),
    );
    assert.deepEqual(
      cfg.output.map((o: { name: string }) => o.name),
      meta.body.outputs.map((o: { name: string }) => o.name),
    );
    assert.deepEqual(cfg.input[0], {
      name: 'input',
      data_type: 'TYPE_FP32',
      format: 'FORMAT_NONE',
      dims: [4],
      is_shape_tensor: false,
      allow_ragged_batch: false,
      optional: false,
    });
    const label = cfg.output.find((o: { name: string }) => o.name === 'label');
    assert.deepEqual(
      { data_type: label.data_type, dims: label.dims, reshape: label.reshape },
      { data_type: 'TYPE_INT64', dims: [1], reshape: { shape: [] } },
      'a [batch] tensor shows dims [1] reshaped to []',
    );
    assert.equal(cfg.dynamic_batching.max_queue_delay_microseconds, 0);
    assert.equal(cfg.dynamic_batching.default_queue_policy.max_queue_size, 1024);
    assert.deepEqual(cfg.model_transaction_policy, { decoupled: false });
    assert.deepEqual(cfg.response_cache, { enable: false });
    assert.deepEqual(cfg.instance_group, [{ name: 'iris', kind: 'KIND_CPU', count: 1, gpus: [] }]);
    assert.deepEqual((await api(c.url, '/v2/models/iris/versions/1/config')).body, cfg);
  });

  test("the model's own batching config shows; a model without a batch axis has max_batch_size 0 and its full dims", async () => {
    const b = (await api(c.url, '/v2/models/batch8/config')).body;
    assert.equal(b.max_batch_size, 8);
    assert.equal(b.dynamic_batching.max_queue_delay_microseconds, 2000);
    assert.deepEqual(
      b.input.map((i: { name: string; data_type: string; dims: number[] }) => [i.name, i.data_type, i.dims]),
      [
        ['a', 'TYPE_FP32', [2]],
        ['b', 'TYPE_INT64', [1]],
      ],
    );
    const f = (await api(c.url, '/v2/models/fixed/config')).body;
    assert.equal(f.max_batch_size, 0);
    assert.equal(f.dynamic_batching, undefined);
    assert.deepEqual(f.input[0].dims, [2, 3]);
    assert.deepEqual(f.output[0].dims, [3, 2]);
  });

  test('an unknown model or version is 404', async () => {
    assert.equal((await api(c.url, '/v2/models/ghost/config')).status, 404);
    const v = await api(c.url, '/v2/models/iris/versions/7/config');
    assert.equal(v.status, 404);
    assert.equal(v.body.code, 'VERSION_NOT_FOUND');
  });
});

describe('statistics extension', () => {
  const stats = async (route: string): Promise<any> => {
    const r = await api(c.url, route);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  };
  const irisStats = async (): Promise<any> => (await stats('/v2/models/iris/stats')).model_stats[0];

  test('counts and nanoseconds per stage, for every request, summed over both workers', async () => {
    const before = await irisStats();
    const ok = 40;
    const rows = 3;
    const answers = await Promise.all(
      Array.from({ length: ok }, (_, i) =>
        infer(c.url, 'iris', [{ name: 'input', datatype: 'FP32', shape: [rows, 4], data: [...IRIS_ROW, ...IRIS_ROW, ...IRIS_ROW] }], {
          binaryInputs: i % 2 === 0,
        }),
      ),
    );
    for (const a of answers) assert.equal(a.status, 200);
    const bad = 5;
    for (let i = 0; i < bad; i++) assert.equal((await infer(c.url, 'iris', [{ name: 'input', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }])).status, 400);
    const after = await irisStats();
    const d = (k: string): number => after.inference_stats[k].count - before.inference_stats[k].count;
    const dns = (k: string): number => after.inference_stats[k].ns - before.inference_stats[k].ns;
    assert.equal(after.name, 'iris');
    assert.equal(after.version, '1');
    assert.equal(d('success'), ok);
    assert.equal(d('fail'), bad);
    for (const k of ['queue', 'compute_input', 'compute_infer', 'compute_output']) assert.equal(d(k), ok, k);
    assert.equal(after.inference_count - before.inference_count, ok * rows, 'each row is one inference');
    const runs = after.execution_count - before.execution_count;
    assert.ok(runs >= 1 && runs <= ok, `model runs ${runs}`);
    for (const k of ['success', 'compute_input', 'compute_infer', 'compute_output']) assert.ok(dns(k) > 0, `${k} ns grew`);
    assert.ok(dns('success') >= dns('compute_infer'), 'a request takes at least its run');
    assert.deepEqual(after.inference_stats.cache_hit, { count: 0, ns: 0 });
    assert.ok(after.last_inference >= Date.now() - 60_000 && after.last_inference <= Date.now());
    const perBatch = after.batch_stats.reduce((n: number, b: { compute_infer: { count: number } }) => n + b.compute_infer.count, 0);
    assert.equal(perBatch, after.execution_count, 'batch_stats account for every run');
    assert.ok(
      after.batch_stats.every((b: { batch_size: number }) => b.batch_size % rows === 0),
      'batches hold whole requests',
    );

    // The sum is over every worker: each modelhost's own counts add up to it.
    const own = await Promise.all(
      c.modelhosts.map(async (m) => ((await (await fetch(`${m.url}/v1/stats`)).json()) as any).models.find((s: any) => s.name === 'iris' && s.version === '1')),
    );
    assert.ok(own.filter(Boolean).length === 2, 'both workers served iris');
    assert.equal(
      own.reduce((n, s) => n + s.inference_stats.success.count, 0),
      after.inference_stats.success.count,
    );
    assert.equal(
      own.reduce((n, s) => n + s.inference_count, 0),
      after.inference_count,
    );
  });

  test('every model version at /v2/models/stats (not a model named "stats"), one version, and 404s', async () => {
    const all = await stats('/v2/models/stats');
    const names = all.model_stats.map((s: { name: string; version: string }) => `${s.name}@${s.version}`);
    for (const n of ['iris@1', 'diabetes@1', 'fixed@1']) assert.ok(names.includes(n), n);
    const fixed = all.model_stats.find((s: { name: string }) => s.name === 'fixed');
    assert.equal(fixed.inference_stats.success.count, 0, 'a model never run shows zeros');
    const one = await stats('/v2/models/iris/versions/1/stats');
    assert.equal(one.model_stats.length, 1);
    assert.equal((await api(c.url, '/v2/models/iris/versions/3/stats')).status, 404);
    assert.equal((await api(c.url, '/v2/models/ghost/stats')).status, 404);
  });
});

describe('compressed bodies', () => {
  test('gzip and deflate request bodies give the answer the plain body gives', async () => {
    const plain = await raw('POST', '/v2/models/iris/infer', { 'content-type': 'application/json' }, irisJson([IRIS_ROW]));
    assert.equal(plain.status, 200);
    for (const [coding, pack] of [
      ['gzip', zlib.gzipSync],
      ['deflate', zlib.deflateSync],
      ['deflate', zlib.deflateRawSync],
    ] as const) {
      const r = await raw('POST', '/v2/models/iris/infer', { 'content-type': 'application/json', 'content-encoding': coding }, pack(irisJson([IRIS_ROW])));
      assert.equal(r.status, 200, `${coding}: ${r.body}`);
      assert.deepEqual(JSON.parse(r.body.toString()), JSON.parse(plain.body.toString()));
    }
  });

  test('a compressed binary request counts its header length on the inflated JSON, as Triton does', async () => {
    const header = Buffer.from(
      JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', parameters: { binary_data_size: 16 } }], outputs: [{ name: 'label' }] }),
    );
    const body = Buffer.concat([header, Buffer.from(new Float32Array(IRIS_ROW).buffer)]);
    const r = await raw(
      'POST',
      '/v2/models/iris/infer',
      { 'content-type': 'application/octet-stream', 'content-encoding': 'gzip', 'inference-header-content-length': String(header.length) },
      zlib.gzipSync(body),
    );
    assert.equal(r.status, 200, r.body.toString());
    assert.deepEqual(JSON.parse(r.body.toString()).outputs[0].data, [2]);
  });

  test('answers honour Accept-Encoding (gzip, deflate, q-values), binary answers included', async () => {
    const plain = await raw('POST', '/v2/models/iris/infer', { 'content-type': 'application/json' }, irisJson([IRIS_ROW, IRIS_ROW]));
    const gz = await raw('POST', '/v2/models/iris/infer', { 'content-type': 'application/json', 'accept-encoding': 'gzip' }, irisJson([IRIS_ROW, IRIS_ROW]));
    assert.equal(gz.headers['content-encoding'], 'gzip');
    assert.equal(Number(gz.headers['content-length']), gz.body.length);
    assert.deepEqual(JSON.parse(zlib.gunzipSync(gz.body).toString()), JSON.parse(plain.body.toString()));
    const df = await raw(
      'POST',
      '/v2/models/iris/infer',
      { 'content-type': 'application/json', 'accept-encoding': 'gzip;q=0.2, deflate' },
      irisJson([IRIS_ROW]),
    );
    assert.equal(df.headers['content-encoding'], 'deflate');
    assert.equal(JSON.parse(zlib.inflateSync(df.body).toString()).outputs[0].data[0], 2);
    const none = await raw('POST', '/v2/models/iris/infer', { 'content-type': 'application/json', 'accept-encoding': 'br, gzip;q=0' }, irisJson([IRIS_ROW]));
    assert.equal(none.headers['content-encoding'], undefined);
    const bin = await raw(
      'POST',
      '/v2/models/iris/infer',
      { 'content-type': 'application/json', 'accept-encoding': 'gzip' },
      irisJson([IRIS_ROW], { parameters: { binary_data_output: true } }),
    );
    const inflated = zlib.gunzipSync(bin.body);
    const hl = Number(bin.headers['inference-header-content-length']);
    const head = JSON.parse(inflated.subarray(0, hl).toString());
    const probs = head.outputs.find((o: { name: string }) => o.name === 'probabilities');
    assert.equal(probs.parameters.binary_data_size, 12);
    assert.equal(inflated.length, hl + 8 + 12, 'the header length counts the inflated JSON; label (8) and probabilities (12) follow');
  });

  test('corrupt data is 400, an unknown coding 415, a body that inflates past MAX_BODY_BYTES 413; the workers stay up', async () => {
    const corrupt = await raw(
      'POST',
      '/v2/models/iris/infer',
      { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      Buffer.from('not gzip at all'),
    );
    assert.equal(corrupt.status, 400);
    assert.match(JSON.parse(corrupt.body.toString()).error, /not valid gzip data/);
    const br = await raw('POST', '/v2/models/iris/infer', { 'content-type': 'application/json', 'content-encoding': 'br' }, irisJson([IRIS_ROW]));
    assert.equal(br.status, 415);
    assert.equal(JSON.parse(br.body.toString()).code, 'UNSUPPORTED_MEDIA_TYPE');
    const bomb = zlib.gzipSync(Buffer.alloc(65 * 1024 * 1024, 0x20));
    assert.ok(bomb.length < 200_000);
    const big = await raw('POST', '/v2/models/iris/infer', { 'content-type': 'application/json', 'content-encoding': 'gzip' }, bomb);
    assert.equal(big.status, 413);
    assert.equal(JSON.parse(big.body.toString()).code, 'BODY_TOO_LARGE');
    assert.equal((await raw('POST', '/v2/models/iris/infer', { 'content-type': 'application/json' }, irisJson([IRIS_ROW]))).status, 200);
  });
});

describe('classification extension', () => {
  const ask = (rows: number[][], outputs: unknown[], extra: Record<string, unknown> = {}) =>
    api(c.url, '/v2/models/iris/infer', {
      json: { inputs: [{ name: 'input', shape: [rows.length, 4], datatype: 'FP32', data: rows.flat() }], outputs, ...extra },
    });

  test('top k of each row as BYTES "value:index:label", labels from the model', async () => {
    const r = await ask([IRIS_ROW, [5.1, 3.5, 1.4, 0.2]], [{ name: 'probabilities', parameters: { classification: 2 } }]);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const out = r.body.outputs[0];
    assert.equal(out.datatype, 'BYTES');
    assert.deepEqual(out.shape, [2, 2]);
    assert.deepEqual(out.data.slice(0, 2), ['0.999949:2:virginica', '0.000051:1:versicolor']);
    assert.match(out.data[2], /^0\.99\d{4}:0:setosa$/);
    // The same ranking as the raw probabilities.
    const plain = await ask([IRIS_ROW], [{ name: 'probabilities' }]);
    const p = plain.body.outputs[0].data as number[];
    assert.equal(out.data[0], `${p[2]!.toFixed(6)}:2:virginica`);
  });

  test('k is capped at the classes there are; an output whose size differs from the labels has none; binary answers carry it too', async () => {
    const capped = await ask([IRIS_ROW], [{ name: 'probabilities', parameters: { classification: 10 } }]);
    assert.deepEqual(capped.body.outputs[0].shape, [1, 3]);
    const label = await ask([IRIS_ROW], [{ name: 'label', parameters: { classification: 1 } }]);
    assert.deepEqual(label.body.outputs[0].data, ['2:0']);
    const withK = await raw(
      'POST',
      '/v2/models/iris/infer',
      { 'content-type': 'application/json' },
      irisJson([IRIS_ROW], { outputs: [{ name: 'probabilities', parameters: { classification: 1, binary_data: true } }] }),
    );
    const hl = Number(withK.headers['inference-header-content-length']);
    const head = JSON.parse(withK.body.subarray(0, hl).toString());
    assert.deepEqual([head.outputs[0].datatype, head.outputs[0].shape], ['BYTES', [1, 1]]);
    const bytes = withK.body.subarray(hl);
    assert.equal(bytes.readUInt32LE(0), bytes.length - 4);
    assert.equal(bytes.subarray(4).toString(), '0.999949:2:virginica');
  });

  test('a model without a batch axis is ranked over its whole output', async () => {
    const r = await api(c.url, '/v2/models/fixed/infer', {
      json: {
        inputs: [{ name: 'x', shape: [2, 3], datatype: 'INT32', data: [5, -2, 9, 0, 9, 1] }],
        outputs: [{ name: 'y', parameters: { classification: 3 } }],
      },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.outputs[0].shape, [3]);
    // y = transpose(x) = [5, 0, -2, 9, 9, 1]
    assert.deepEqual(r.body.outputs[0].data, ['9:3', '9:4', '5:0']);
  });

  test('a bad count or a non-numeric output is refused with 400 naming the output', async () => {
    const bad = await ask([IRIS_ROW], [{ name: 'probabilities', parameters: { classification: 'three' } }]);
    assert.equal(bad.status, 400);
    assert.match(bad.body.error, /output 'probabilities': "classification" must be a positive integer/);
    assert.equal((await uploadModel(c.url, 'strings', path.join(CORPUS, 'id_string.onnx'))).status, 201);
    const s = await api(c.url, '/v2/models/strings/infer', {
      json: { inputs: [{ name: 'x', shape: [1, 3], datatype: 'BYTES', data: ['a', 'b', 'c'] }], outputs: [{ name: 'y', parameters: { classification: 1 } }] },
    });
    assert.equal(s.status, 400);
    assert.match(s.body.error, /output 'y' is BYTES; classification needs a numeric output/);
  });
});

describe('model repository: load with a file and a configuration', () => {
  const load = (name: string, parameters?: Record<string, unknown>, body?: string) =>
    api(
      c.url,
      `/v2/repository/models/${name}/load`,
      body !== undefined
        ? { method: 'POST', body, headers: { 'content-type': 'application/json' } }
        : parameters
          ? { json: { parameters } }
          : { method: 'POST' },
    );
  const iris64 = (): string => readFileSync(path.join(REPO, 'models', 'demo', 'iris.onnx')).toString('base64');

  test('"file:1/model.onnx" in base64 uploads a model as PUT does, and it serves', async () => {
    const r = await load('flower', { 'file:1/model.onnx': iris64() });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.version, 1);
    const meta = await api(c.url, '/v2/models/flower');
    assert.deepEqual(meta.body.versions, ['1']);
    const a = await infer(c.url, 'flower', [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: IRIS_ROW }]);
    assert.equal(a.status, 200);
    assert.deepEqual(a.body.outputs.find((o: { name: string }) => o.name === 'label').data, [2]);
  });

  test('with a Triton config: a new version with its batching and instances; a config alone changes them', async () => {
    const config = JSON.stringify({
      name: 'flower',
      platform: 'onnxruntime_onnx',
      max_batch_size: 4,
      dynamic_batching: { max_queue_delay_microseconds: 500 },
      instance_group: [{ kind: 'KIND_CPU', count: 2 }],
    });
    const r = await load('flower', { config, 'file:2/model.onnx': iris64() });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.version, 2);
    const cfg = (await api(c.url, '/v2/models/flower/config')).body;
    assert.equal(cfg.max_batch_size, 4);
    assert.equal(cfg.dynamic_batching.max_queue_delay_microseconds, 500);
    assert.deepEqual(cfg.instance_group[0].count, 2);
    assert.equal((await load('flower', { config: JSON.stringify({ max_batch_size: 16 }) })).status, 200);
    const after = (await api(c.url, '/v2/models/flower/config')).body;
    assert.equal(after.max_batch_size, 16);
    assert.equal(after.dynamic_batching.max_queue_delay_microseconds, 500, 'what the config does not name stays');
    assert.equal((await infer(c.url, 'flower', [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: IRIS_ROW }])).status, 200);
  });

  test('bad loads are refused with 4xx naming the problem, and the store does not change', async () => {
    const before = await snapshotStore(c.modelDir);
    const cases: [Promise<{ status: number; body: any }>, number, RegExp][] = [
      [load('flower', { 'file:1/model.onnx': 'not base64!' }), 400, /must be the file's content in base64/],
      [load('flower', { 'file:1/model.onnx': Buffer.from('not a model').toString('base64') }), 400, /./],
      [load('flower', { 'file:1/model.onnx': iris64(), 'file:1/other.onnx': iris64() }), 400, /one ONNX file/],
      [load('flower', { 'file:../model.onnx': iris64() }), 400, /file:<version>\/model\.onnx/],
      [load('flower', { 'file:1/model.onnx': '' }), 400, /empty/],
      [load('flower', { something: 'x' }), 400, /unknown load parameter "something"/],
      [load('flower', { config: '{"name": "other"}' }), 400, /names model "other", not flower/],
      [load('flower', { config: '{"model_transaction_policy": {"decoupled": true}}' }), 400, /decoupled/],
      [load('flower', { config: '{"sequence_batching": {}}' }), 400, /sequence_batching/],
      [load('flower', { config: '{"max_batch_size": -1}' }), 400, /max_batch_size must be an integer/],
      [load('flower', { config: 'nope' }), 400, /not valid JSON/],
      [load('flower', undefined, '{"parameters": {}, "extra": 1}'), 400, /takes only "parameters"/],
      [load('ghost'), 404, /ghost/],
    ];
    for (const [p, status, message] of cases) {
      const r = await p;
      assert.equal(r.status, status, JSON.stringify(r.body));
      assert.match(r.body.error, message);
    }
    assert.deepEqual(await snapshotStore(c.modelDir), before);
  });
});

describe('models without inputs', () => {
  test('an ONNX graph of constants is accepted at upload and {"inputs": []} runs it, in JSON and binary', async () => {
    const form = new FormData();
    form.append('path', new Blob([new Uint8Array(noInputsModel())]), 'constants.onnx');
    const up = await api(c.url, '/api/v1/models/constants', { method: 'PUT', body: form });
    assert.equal(up.status, 201, JSON.stringify(up.body));
    const meta = (await api(c.url, '/v2/models/constants')).body;
    assert.deepEqual(meta.inputs, []);
    assert.deepEqual(
      meta.outputs.map((o: { name: string }) => o.name),
      ['t', 'i', 'g'],
    );
    assert.equal((await api(c.url, '/v2/models/constants/config')).body.max_batch_size, 0);
    const json = await infer(c.url, 'constants', []);
    assert.equal(json.status, 200);
    for (const [name, want] of Object.entries(NO_INPUTS_OUTPUTS)) {
      const out = json.body.outputs.find((o: { name: string }) => o.name === name);
      const data = name === 'i' ? out.data.map(BigInt) : out.data;
      assert.deepEqual([out.datatype, out.shape.map(Number), data], [want.datatype, want.shape, want.data], name);
    }
    const bin = await infer(c.url, 'constants', [], { binaryInputs: true, binaryOutputs: true });
    assert.equal(bin.status, 200);
    assert.deepEqual([...new Float32Array(new Uint8Array(bin.binary.get('t')!).buffer)], [1.5, -2, 0.25, 8]);
    assert.equal(bin.binary.get('i')!.readBigInt64LE(16), 9007199254740993n);
    assert.deepEqual([...bin.binary.get('g')!], [1, 0, 0, 1]);
    const extra = await infer(c.url, 'constants', [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }]);
    assert.equal(extra.status, 400);
    assert.match(extra.body.error, /has no input 'x'/);
  });
});

describe('model readiness', () => {
  test('after a PUT, ready is false until every worker has the model loaded and warm; asking is what loads it', async () => {
    const loadedOn = async (name: string): Promise<string[]> =>
      (
        await Promise.all(
          c.modelhosts.map(async (m) =>
            ((await (await fetch(`${m.url}/v1/models`)).json()) as { models: { name: string; state: string }[] }).models.some(
              (x) => x.name === name && x.state === 'READY',
            )
              ? m.id
              : '',
          ),
        )
      ).filter(Boolean);
    assert.equal((await uploadModel(c.url, 'fresh', path.join(CORPUS, 'symbolic.onnx'))).status, 201);
    assert.deepEqual(await loadedOn('fresh'), [], 'no worker has loaded it yet');
    const first = await api(c.url, '/v2/models/fresh/ready');
    assert.equal(first.status, 503);
    assert.deepEqual(first.body, { name: 'fresh', version: '1', ready: false });
    let r = first;
    for (const end = Date.now() + 20_000; r.status !== 200 && Date.now() < end; r = await api(c.url, '/v2/models/fresh/ready'))
      await new Promise((res) => setTimeout(res, 100));
    assert.equal(r.status, 200);
    assert.deepEqual((await loadedOn('fresh')).sort(), c.modelhosts.map((m) => m.id).sort(), 'ready once both workers hold it');
    assert.equal((await api(c.url, '/v2/models/fresh/versions/1/ready')).status, 200);
    assert.equal((await api(c.url, '/v2/repository/models/fresh/unload', { method: 'POST' })).status, 200);
    assert.equal((await api(c.url, '/v2/models/fresh/ready')).status, 503, 'an unloaded model is not ready');
  });
});

describe('schedule policy: per-request priority and timeout', () => {
  const x = (i: number) => ({ inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [i, 0, 0, 0] }] });
  /** Posts one request (to the Inferrer, or straight to one worker); resolves with its status, code, the worker that answered and when. */
  const post = async (
    model: string,
    body: Record<string, unknown>,
    t0: number,
    base = c.url,
    reqId?: string,
  ): Promise<{ status: number; code: string | undefined; worker: string | null; at: number }> => {
    const r = await api(base, `/v2/models/${model}/infer`, { json: body, ...(reqId ? { headers: { 'x-request-id': reqId } } : {}) });
    // The Inferrer answers v2 errors as {error, code}; a worker as {error: {code, …}}.
    return { status: r.status, code: r.body?.code ?? r.body?.error?.code, worker: r.headers.get('x-modelhost-id'), at: performance.now() - t0 };
  };

  before(async () => {
    // One request per run, one slot per worker: slowq takes ~150 ms a run (slow.onnx), busyq ~35 ms (four
    // 768×768 steps: twelve queued drain in about 0.4 s, long enough that a later request sent while they
    // wait finds most of them still there on a loaded machine, and under the second after which level 2 is
    // served as level 1).
    const one = { config: { batching: { max_batch_size: 1 }, instances: 1 } };
    assert.equal((await uploadModel(c.url, 'slowq', path.join(REPO, 'test', 'fixtures', 'models', 'slow.onnx'), one)).status, 201);
    const form = new FormData();
    form.append('path', new Blob([new Uint8Array(busyModel(4))]), 'busy.onnx');
    form.append('metadata', JSON.stringify(one));
    assert.equal((await api(c.url, '/api/v1/models/busyq', { method: 'PUT', body: form })).status, 201);
    for (let i = 0; i < 4; i++) for (const m of ['slowq', 'busyq']) assert.equal((await post(m, x(0), 0)).status, 200);
  });

  test('GET /v2 lists schedule_policy; the model configuration shows two priority levels and timeouts honoured', async () => {
    assert.ok((await api(c.url, '/v2')).body.extensions.includes('schedule_policy'));
    const cfg = (await api(c.url, '/v2/models/slowq/config')).body;
    assert.equal(cfg.dynamic_batching.priority_levels, 2);
    assert.equal(cfg.dynamic_batching.default_priority_level, 1);
    assert.equal(cfg.dynamic_batching.default_queue_policy.allow_timeout_override, true);
  });

  test('priority 1 runs before priority 2 that queued earlier; at one level, in arrival order', async () => {
    // Straight to one worker, so that the order is that worker's queue (the balancer would spread them).
    const mh = c.modelhosts[0]!;
    const worker = mh.url;
    // Requests of busyq that reached the worker: those waiting and those taken from the queue to run.
    const arrived = (): Promise<number> => modelhostArrivals(worker, 'busyq');
    // Thirteen connections open and warm first, so the requests reach the worker in the order they are sent.
    await Promise.all(Array.from({ length: 13 }, (_, i) => post('busyq', x(i), 0, worker)));
    for (const late of [1, 2]) {
      const arrived0 = await arrived();
      // Twelve, then the later one once all twelve are in the worker's queue (read from its metrics), sent
      // while the worker is held, so that it arrives with most of them still waiting (a fixed 25 ms once let
      // it reach the worker after the queue had run dry on a loaded machine, with runs of 6 to 10 ms).
      const early = Array.from({ length: 12 }, (_, i) => post('busyq', { ...x(i), parameters: { priority: 2 } }, 0, worker, `prio${late}-early-${i}`));
      await until('the twelve wait in the worker queue', async () => (await arrived()) - arrived0 >= 12, 15_000);
      const [urgent] = await whileHeld(
        mh.process.pid!,
        () => [post('busyq', { ...x(10), parameters: { priority: late } }, 0, worker, `prio${late}-late`)],
        () => new Promise((r) => setTimeout(r, 200)),
      );
      for (const r of [...(await Promise.all(early)), await urgent]) assert.equal(r.status, 200);
      // The order the worker answered them in, from its access log (one line per answer, in order): the
      // client's clock once saw twelve answers together on a loaded machine.
      let order: string[] = [];
      await until('the worker logged the thirteen answers', async () => {
        order = c
          .jsonLogs(mh.id)
          .map((l) => String(l.reqId))
          .filter((id) => id.startsWith(`prio${late}-`));
        return order.length === 13;
      });
      const overtaken = order.length - 1 - order.indexOf(`prio${late}-late`);
      const show = `the worker answered ${order.join(', ')}`;
      if (late === 1) assert.ok(overtaken >= 2, `priority 1 overtook ${overtaken} of 12 queued priority-2 requests: ${show}`);
      else assert.equal(overtaken, 0, `at one level the later request runs last: ${show}`);
    }
  });

  test('a timeout (microseconds) is the request deadline: queued past it, it is answered at once, not run', async () => {
    // Straight to one worker, whose queue it joins (the balancer might send it to an idle one).
    const worker = c.modelhosts[1]!.url;
    await Promise.all(Array.from({ length: 7 }, (_, i) => post('slowq', x(i), 0, worker)));
    const t0 = performance.now();
    const busy = Array.from({ length: 6 }, (_, i) => post('slowq', x(i), t0, worker));
    await new Promise((r) => setTimeout(r, 40));
    const timed = await post('slowq', { ...x(9), parameters: { timeout: 100_000 } }, t0, worker);
    const rest = await Promise.all(busy);
    assert.ok(rest.every((r) => r.status === 200));
    assert.ok(timed.status === 504 || timed.status === 503, `status ${timed.status}`);
    assert.ok(timed.code === 'DEADLINE_EXCEEDED' || timed.code === 'QUEUE_FULL', String(timed.code));
    assert.ok(timed.at < Math.max(...rest.map((r) => r.at)), `answered at ${timed.at.toFixed(0)} ms, before the queue ahead of it was done`);
    assert.equal((await post('slowq', { ...x(9), parameters: { timeout: 30_000_000 } }, t0)).status, 200, 'a long timeout leaves it be (through the Inferrer)');
  });

  test('a priority or timeout that is not a whole number in range is refused with 400 naming it', async () => {
    for (const [parameters, message] of [
      [{ priority: 3 }, /"parameters.priority" must be 0 \(the default level\), 1 or 2/],
      [{ priority: 'high' }, /"parameters.priority"/],
      [{ timeout: -1 }, /"parameters.timeout" must be a whole number of microseconds/],
      [{ timeout: 1.5 }, /"parameters.timeout"/],
    ] as const) {
      const r = await api(c.url, '/v2/models/slowq/infer', { json: { ...x(0), parameters } });
      assert.equal(r.status, 400, JSON.stringify(parameters));
      assert.match(r.body.error, message);
    }
  });
});

/** The README's Open Inference Protocol section, from its heading to the next one. */
function readmeOipSection(): string {
  const text = readFileSync(path.join(REPO, 'README.md'), 'utf8');
  const start = text.indexOf('## Open Inference Protocol');
  assert.ok(start >= 0);
  return text.slice(start, text.indexOf('\n## ', start + 3));
}

describe('the README', () => {
  test('its OIP section lists exactly the extensions GET /v2 advertises', async () => {
    const section = readmeOipSection();
    const line = /Extensions advertised in `GET \/v2`:([^.]*)\./.exec(section.replace(/\n/g, ' '));
    assert.ok(line, 'the section has the sentence that lists them');
    const listed = [...line[1]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
    assert.deepEqual(listed.sort(), ((await api(c.url, '/v2')).body.extensions as string[]).sort());
  });
});
