/**
 * The Open Inference Protocol over gRPC (inference.GRPCInferenceService) against the real cluster, with a
 * plain @grpc/grpc-js + @grpc/proto-loader client built from the .proto (none of the server's code). Every
 * answer is compared with the HTTP answer to the same request: inference for every datatype of the corpus
 * (raw_input_contents and typed contents), metadata, readiness, configuration, statistics and the
 * repository; then auth, request ids, limits, deadlines, error codes and metrics.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as ort from 'onnxruntime-node';
import { type TestCluster, DEMO, FIXTURES, REPO, api, startTestCluster, uploadModel } from '../helpers/cluster.ts';
import { edgeValues } from '../helpers/edge-values.ts';
import { type GrpcClient, grpcClient } from '../helpers/grpc-client.ts';
import { metricSum as metric, until } from '../helpers/metrics.ts';
import { NO_INPUTS_OUTPUTS, noInputsModel } from '../helpers/no-inputs-model.ts';
import { type V2Tensor, infer, toBytes } from '../helpers/v2-client.ts';

const CORPUS = path.join(REPO, 'test', 'fixtures', 'corpus');
const ADMIN = 'admin-key-0123456789abcdef';
const PREDICT = 'predict-key-0123456789abcdef';
const MAX_BODY = 2 * 1024 * 1024;
const BODY_TIMEOUT_MS = 2000;
const IRIS_ROW = [6.7, 2.5, 5.8, 1.8];
const V2_OF: Record<string, string> = {
  bool: 'BOOL',
  uint8: 'UINT8',
  uint16: 'UINT16',
  uint32: 'UINT32',
  uint64: 'UINT64',
  int8: 'INT8',
  int16: 'INT16',
  int32: 'INT32',
  int64: 'INT64',
  float16: 'FP16',
  float32: 'FP32',
  float64: 'FP64',
  string: 'BYTES',
};

let c: TestCluster;
let dir: string;
let client: GrpcClient;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-grpc-'));
  const keys = path.join(dir, 'keys.json');
  await writeFile(
    keys,
    JSON.stringify({
      keys: [
        { key: ADMIN, scopes: ['admin', 'predict'], name: 'ops' },
        { key: PREDICT, scopes: ['predict'], name: 'app' },
      ],
    }),
  );
  c = await startTestCluster({
    grpcPort: 0,
    inferrerEnv: {
      API_KEYS_FILE: keys,
      AUTH_DISABLED: 'false',
      MAX_BODY_BYTES: String(MAX_BODY),
      BODY_TIMEOUT_MS: String(BODY_TIMEOUT_MS),
      BODY_MIN_BYTES_PER_S: '100000',
    },
  });
  assert.ok(c.grpcAddress, 'the launcher started gRPC and says where');
  client = grpcClient(c.grpcAddress!, { 'grpc.max_receive_message_length': -1 });
  const models = ['corpus', ...readdirCorpus()];
  for (const m of models.slice(1)) {
    const r = await uploadModel(c.url, `corpus-${m}`, path.join(CORPUS, `${m}.onnx`), undefined, ADMIN);
    assert.equal(r.status, 201, `${m}: ${JSON.stringify(r.body)}`);
  }
});
after(async () => {
  client?.close();
  await c?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function readdirCorpus(): string[] {
  return [
    'id_bool',
    'id_uint8',
    'id_uint16',
    'id_uint32',
    'id_uint64',
    'id_int8',
    'id_int16',
    'id_int32',
    'id_int64',
    'id_float16',
    'id_float32',
    'id_float64',
    'id_string',
    'mixed',
    'scalar',
    'fixed_dims',
    'symbolic',
    'empty_ok',
    'float_specials',
    'fp16_math',
  ];
}

interface Answer {
  err: grpc.ServiceError | null;
  res: any;
  head: grpc.Metadata | undefined;
}

/** One unary call; the answer, the error and the initial metadata. */
function call(method: string, req: unknown, opts: { key?: string; reqId?: string; deadlineMs?: number } = {}): Promise<Answer> {
  const md = new grpc.Metadata();
  if (opts.key) md.set('authorization', `Bearer ${opts.key}`);
  if (opts.reqId) md.set('x-request-id', opts.reqId);
  const options: grpc.CallOptions = opts.deadlineMs ? { deadline: Date.now() + opts.deadlineMs } : {};
  return new Promise((resolve) => {
    let head: grpc.Metadata | undefined;
    const ongoing = client[method]!(req, md, options, (err, res) => resolve({ err, res, head }));
    ongoing.on('metadata', (m: grpc.Metadata) => {
      head = m;
    });
  });
}

const ok = async (method: string, req: unknown, key = PREDICT): Promise<any> => {
  const a = await call(method, req, { key });
  assert.equal(a.err, null, `${method}: ${a.err?.message}`);
  return a.res;
};

const http = (route: string, init: Parameters<typeof api>[2] = {}) =>
  api(c.url, route, { ...init, headers: { authorization: `Bearer ${ADMIN}`, ...(init.headers ?? {}) } });

/** Typed contents of a tensor, in the list its datatype uses. */
function contents(t: V2Tensor): Record<string, unknown[]> | undefined {
  const str = (xs: unknown[]) => xs.map((v) => String(v));
  switch (t.datatype) {
    case 'BOOL':
      return { bool_contents: t.data.map((v) => v === 1 || v === true) };
    case 'UINT8':
    case 'UINT16':
    case 'UINT32':
      return { uint_contents: t.data };
    case 'INT8':
    case 'INT16':
    case 'INT32':
      return { int_contents: t.data };
    case 'INT64':
      return { int64_contents: str(t.data) };
    case 'UINT64':
      return { uint64_contents: str(t.data) };
    case 'FP32':
      return { fp32_contents: t.data };
    case 'FP64':
      return { fp64_contents: t.data };
    case 'BYTES':
      return { bytes_contents: t.data.map((s) => Buffer.from(String(s))) };
    default:
      return undefined;
  }
}

const concrete = (shape: readonly (number | string)[]): number[] =>
  shape.map((d) => (typeof d === 'number' && d >= 0 ? d : (({ batch: 2, seq: 5, n: 3 } as Record<string, number>)[String(d)] ?? 2)));

describe('ModelInfer gives the HTTP answer for every datatype of the corpus', () => {
  for (const m of readdirCorpus()) {
    test(m, async () => {
      const session = await ort.InferenceSession.create(path.join(CORPUS, `${m}.onnx`));
      const tensors: V2Tensor[] = session.inputMetadata.map((meta) => {
        const type = (meta as unknown as { type: string }).type;
        const shape = concrete((meta as unknown as { shape: (number | string)[] }).shape);
        const vals = edgeValues(
          type,
          shape.reduce((a, b) => a * b, 1),
        );
        return { name: meta.name, datatype: V2_OF[type]!, shape, data: type === 'bool' ? vals.map((v) => (v ? 1 : 0)) : vals };
      });
      await session.release();
      const viaHttp = await infer(
        c.url,
        `corpus-${m}`,
        tensors,
        { binaryInputs: true, binaryOutputs: true, id: 'same' },
        { authorization: `Bearer ${PREDICT}` },
      );
      assert.equal(
        viaHttp.status,
        200,
        JSON.stringify(viaHttp.body, (_k, v) => (typeof v === 'bigint' ? String(v) : v)),
      );
      const base = {
        model_name: `corpus-${m}`,
        model_version: '',
        id: 'same',
        inputs: tensors.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape.map(String) })),
      };
      const ways: [string, unknown][] = [['raw', { ...base, raw_input_contents: tensors.map((t) => toBytes(t)) }]];
      if (tensors.every((t) => contents(t)))
        ways.push(['contents', { ...base, inputs: base.inputs.map((inp, i) => ({ ...inp, contents: contents(tensors[i]!) })) }]);
      for (const [how, req] of ways) {
        const res = await ok('ModelInfer', req);
        assert.equal(res.model_name, `corpus-${m}`);
        assert.equal(res.model_version, '1');
        assert.equal(res.id, 'same');
        assert.equal(res.outputs.length, viaHttp.body.outputs.length, `${m} ${how}: every output`);
        res.outputs.forEach((o: { name: string; datatype: string; shape: string[] }, i: number) => {
          const h = viaHttp.body.outputs[i];
          assert.equal(o.name, h.name);
          assert.equal(o.datatype, h.datatype, `${m} ${how} ${o.name} datatype`);
          assert.deepEqual(o.shape.map(Number), h.shape.map(Number), `${m} ${how} ${o.name} shape`);
          assert.ok(Buffer.from(res.raw_output_contents[i]).equals(viaHttp.binary.get(h.name)!), `${m} ${how} ${o.name}: the same bytes as over HTTP`);
        });
      }
    });
  }

  test('FP16 has no contents list: sent that way it is refused with INVALID_ARGUMENT', async () => {
    const a = await call(
      'ModelInfer',
      { model_name: 'corpus-id_float16', inputs: [{ name: 'x', datatype: 'FP16', shape: ['1', '3'], contents: { fp32_contents: [1, 2, 3] } }] },
      { key: PREDICT },
    );
    assert.equal(a.err?.code, grpc.status.INVALID_ARGUMENT);
    assert.match(a.err!.details, /FP16.*raw_input_contents/);
  });

  test('contents of the wrong list, out of range or of the wrong count, raw entries of the wrong size and shared memory are refused, naming the tensor', async () => {
    const cases: [unknown, RegExp][] = [
      [
        { model_name: 'corpus-id_int8', inputs: [{ name: 'x', datatype: 'INT8', shape: ['1', '3'], contents: { fp32_contents: [1, 2, 3] } }] },
        /input 'x' is INT8: its values go in int_contents, not fp32_contents/,
      ],
      [
        { model_name: 'corpus-id_int8', inputs: [{ name: 'x', datatype: 'INT8', shape: ['1', '3'], contents: { int_contents: [1, 200, 3] } }] },
        /input 'x' element 1: 200 does not fit INT8/,
      ],
      [
        { model_name: 'corpus-id_int8', inputs: [{ name: 'x', datatype: 'INT8', shape: ['2', '3'], contents: { int_contents: [1, 2, 3] } }] },
        /shape \[2, 3\] \(6 elements\) but its contents hold 3/,
      ],
      [
        { model_name: 'corpus-id_int8', inputs: [{ name: 'x', datatype: 'INT8', shape: ['1', '3'] }], raw_input_contents: [Buffer.alloc(3), Buffer.alloc(3)] },
        /raw_input_contents has 2 entries for 1 inputs/,
      ],
      [
        { model_name: 'corpus-id_int8', inputs: [{ name: 'x', datatype: 'INT8', shape: ['1', '4'] }], raw_input_contents: [Buffer.alloc(4)] },
        /input 'x' has shape \[1, 4\] but the model expects \[-1, 3\]/,
      ],
      // Triton's shared memory parameters: the Inferrer has none, so they are refused, not ignored.
      [
        {
          model_name: 'corpus-id_int8',
          inputs: [
            {
              name: 'x',
              datatype: 'INT8',
              shape: ['1', '3'],
              parameters: { shared_memory_region: { string_param: 'in0' }, shared_memory_byte_size: { int64_param: '3' } },
            },
          ],
        },
        /input 'x' names shared memory region "in0", but the Inferrer has no shared memory: send its data in raw_input_contents or contents/,
      ],
      [
        {
          model_name: 'corpus-id_int8',
          inputs: [{ name: 'x', datatype: 'INT8', shape: ['1', '3'], contents: { int_contents: [1, 2, 3] } }],
          outputs: [{ name: 'y', parameters: { shared_memory_region: { string_param: 'out0' } } }],
        },
        /output 'y' names shared memory region "out0", but the Inferrer has no shared memory/,
      ],
      // A raw entry shorter, longer or empty for its shape is named in the request's own terms (not binary_data_size).
      ...[8, 16, 0].map((n): [unknown, RegExp] => [
        { model_name: 'corpus-id_float32', inputs: [{ name: 'x', datatype: 'FP32', shape: ['1', '3'] }], raw_input_contents: [Buffer.alloc(n)] },
        new RegExp(`input 'x' has shape \\[1, 3\\] \\(3 FP32 elements, 12 bytes\\) but its raw_input_contents entry holds ${n} bytes`),
      ]),
    ];
    for (const [req, message] of cases) {
      const a = await call('ModelInfer', req, { key: PREDICT });
      assert.equal(a.err?.code, grpc.status.INVALID_ARGUMENT, String(message));
      assert.match(a.err!.details, message);
    }
  });

  test('classification, a subset of outputs, and a model without inputs, as over HTTP', async () => {
    const iris = {
      model_name: 'iris',
      inputs: [{ name: 'input', datatype: 'FP32', shape: ['2', '4'], contents: { fp32_contents: [...IRIS_ROW, 5.1, 3.5, 1.4, 0.2] } }],
    };
    const res = await ok('ModelInfer', { ...iris, outputs: [{ name: 'probabilities', parameters: { classification: { int64_param: '2' } } }] });
    assert.deepEqual(
      res.outputs.map((o: any) => [o.name, o.datatype, o.shape.map(Number)]),
      [['probabilities', 'BYTES', [2, 2]]],
    );
    const h = await api(c.url, '/v2/models/iris/infer', {
      json: {
        inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 4], data: [...IRIS_ROW, 5.1, 3.5, 1.4, 0.2] }],
        outputs: [{ name: 'probabilities', parameters: { classification: 2 } }],
      },
      headers: { authorization: `Bearer ${PREDICT}` },
    });
    assert.deepEqual(toBytes({ name: 'p', datatype: 'BYTES', shape: [4], data: h.body.outputs[0].data }), Buffer.from(res.raw_output_contents[0]));
    assert.match(Buffer.from(res.raw_output_contents[0]).toString('latin1'), /0\.999949:2:virginica/);

    const form = new FormData();
    form.append('path', new Blob([new Uint8Array(noInputsModel())]), 'constants.onnx');
    assert.equal((await http('/api/v1/models/constants', { method: 'PUT', body: form })).status, 201);
    const k = await ok('ModelInfer', { model_name: 'constants', inputs: [] });
    assert.deepEqual(
      k.outputs.map((o: any) => o.name),
      ['t', 'i', 'g'],
    );
    assert.deepEqual([...new Float32Array(new Uint8Array(k.raw_output_contents[0]).buffer)], NO_INPUTS_OUTPUTS.t.data);
    assert.equal(Buffer.from(k.raw_output_contents[1]).readBigInt64LE(16), 9007199254740993n);
  });
});

describe('schedule policy over gRPC', () => {
  const iris = {
    model_name: 'iris',
    inputs: [{ name: 'input', datatype: 'FP32', shape: ['1', '4'] }],
    raw_input_contents: [Buffer.from(new Float32Array(IRIS_ROW).buffer)],
  };

  test("priority and timeout as Triton's client sends them (uint64_param, int64_param) are taken; a priority out of range is INVALID_ARGUMENT naming it", async () => {
    const plain = await ok('ModelInfer', iris);
    const scheduled = await ok('ModelInfer', { ...iris, parameters: { priority: { uint64_param: '2' }, timeout: { int64_param: '30000000' } } });
    assert.deepEqual(
      scheduled.raw_output_contents.map((b: Uint8Array) => Buffer.from(b).toString('hex')),
      plain.raw_output_contents.map((b: Uint8Array) => Buffer.from(b).toString('hex')),
    );
    const bad = await call('ModelInfer', { ...iris, parameters: { priority: { uint64_param: '3' } } }, { key: PREDICT });
    assert.equal(bad.err?.code, grpc.status.INVALID_ARGUMENT);
    assert.match(bad.err!.details, /"parameters.priority" must be 0 \(the default level\), 1 or 2; got 3/);
  });
});

describe('the other calls answer as their HTTP routes do', () => {
  test('ServerLive, ServerReady, ServerMetadata (no key needed)', async () => {
    assert.deepEqual((await call('ServerLive', {})).res, { live: true });
    assert.deepEqual((await call('ServerReady', {})).res, { ready: true });
    const meta = (await call('ServerMetadata', {})).res;
    const h = (await api(c.url, '/v2')).body;
    assert.deepEqual(meta, { name: h.name, version: h.version, extensions: h.extensions });
  });

  test('ModelMetadata, ModelReady, ModelConfig', async () => {
    const meta = await ok('ModelMetadata', { name: 'corpus-symbolic', version: '' });
    const h = (await http('/v2/models/corpus-symbolic')).body;
    assert.deepEqual(
      {
        ...meta,
        inputs: meta.inputs.map((t: any) => ({ ...t, shape: t.shape.map(Number) })),
        outputs: meta.outputs.map((t: any) => ({ ...t, shape: t.shape.map(Number) })),
      },
      { name: h.name, versions: h.versions, platform: h.platform, inputs: h.inputs, outputs: h.outputs },
    );
    assert.deepEqual(await ok('ModelReady', { name: 'iris', version: '1' }), { ready: (await http('/v2/models/iris/versions/1/ready')).body.ready });
    const cfg = (await ok('ModelConfig', { name: 'iris', version: '' })).config;
    const hc = (await http('/v2/models/iris/config')).body;
    assert.equal(cfg.name, hc.name);
    assert.equal(cfg.max_batch_size, hc.max_batch_size);
    assert.deepEqual(
      cfg.input.map((i: any) => [i.name, i.data_type, i.dims.map(Number)]),
      hc.input.map((i: any) => [i.name, i.data_type, i.dims]),
    );
    assert.deepEqual(
      cfg.output.map((o: any) => [o.name, o.data_type, o.dims.map(Number), o.reshape?.shape.map(Number) ?? null]),
      hc.output.map((o: any) => [o.name, o.data_type, o.dims, o.reshape?.shape ?? null]),
    );
    assert.equal(Number(cfg.dynamic_batching.default_queue_policy.max_queue_size), hc.dynamic_batching.default_queue_policy.max_queue_size);
    assert.equal(cfg.model_transaction_policy.decoupled, false);
    assert.equal(cfg.instance_group[0].kind, 'KIND_CPU');
    const none = await call('ModelMetadata', { name: 'ghost' }, { key: PREDICT });
    assert.equal(none.err?.code, grpc.status.NOT_FOUND);
  });

  test('ModelStatistics sums every worker, as /v2/models/{m}/stats does, and counts gRPC inference too', async () => {
    const before = (await ok('ModelStatistics', { name: 'iris', version: '1' })).model_stats[0];
    for (let i = 0; i < 6; i++)
      await ok('ModelInfer', {
        model_name: 'iris',
        inputs: [{ name: 'input', datatype: 'FP32', shape: ['1', '4'] }],
        raw_input_contents: [Buffer.from(new Float32Array(IRIS_ROW).buffer)],
      });
    const s = (await ok('ModelStatistics', { name: 'iris', version: '1' })).model_stats[0];
    assert.equal(Number(s.inference_stats.success.count) - Number(before.inference_stats.success.count), 6);
    const h = (await http('/v2/models/iris/versions/1/stats')).body.model_stats[0];
    assert.equal(Number(s.inference_stats.success.count), h.inference_stats.success.count);
    assert.equal(Number(s.inference_count), h.inference_count);
    const all = await ok('ModelStatistics', { name: '', version: '' });
    assert.deepEqual(
      all.model_stats.map((x: any) => `${x.name}@${x.version}`),
      (await http('/v2/models/stats')).body.model_stats.map((x: any) => `${x.name}@${x.version}`),
    );
  });

  test('RepositoryIndex, RepositoryModelLoad with a file and a config, RepositoryModelUnload (admin scope)', async () => {
    const index = (await ok('RepositoryIndex', {})).models;
    assert.deepEqual(index, (await http('/v2/repository/index', { method: 'POST' })).body);
    const file = await readFile(path.join(DEMO, 'iris.onnx'));
    const denied = await call('RepositoryModelLoad', { model_name: 'viagrpc', parameters: { 'file:1/model.onnx': { bytes_param: file } } }, { key: PREDICT });
    assert.equal(denied.err?.code, grpc.status.PERMISSION_DENIED);
    await ok(
      'RepositoryModelLoad',
      { model_name: 'viagrpc', parameters: { 'file:1/model.onnx': { bytes_param: file }, config: { string_param: '{"max_batch_size": 4}' } } },
      ADMIN,
    );
    assert.equal((await http('/v2/models/viagrpc/config')).body.max_batch_size, 4);
    const res = await ok('ModelInfer', {
      model_name: 'viagrpc',
      inputs: [{ name: 'input', datatype: 'FP32', shape: ['1', '4'], contents: { fp32_contents: IRIS_ROW } }],
    });
    assert.equal(Buffer.from(res.raw_output_contents[0]).readBigInt64LE(0), 2n);
    const bad = await call(
      'RepositoryModelLoad',
      { model_name: 'viagrpc', parameters: { 'file:1/model.onnx': { bytes_param: Buffer.from('not onnx') } } },
      { key: ADMIN },
    );
    assert.equal(bad.err?.code, grpc.status.INVALID_ARGUMENT);
    // A known parameter in the wrong field is named as such (not as an unknown parameter).
    for (const [parameters, message] of [
      [{ config: { bytes_param: Buffer.from('{}') } }, /load parameter "config" must be a string_param \(the configuration as JSON\), not bytes_param/],
      [{ 'file:1/model.onnx': { string_param: 'x' } }, /load parameter "file:1\/model.onnx" must be a bytes_param \(the file\), not string_param/],
    ] as const) {
      const wrong = await call('RepositoryModelLoad', { model_name: 'viagrpc', parameters }, { key: ADMIN });
      assert.equal(wrong.err?.code, grpc.status.INVALID_ARGUMENT);
      assert.match(wrong.err!.details, message);
    }
    await ok('RepositoryModelUnload', { model_name: 'viagrpc' }, ADMIN);
    const gone = await waitFor(
      async () =>
        (
          await call(
            'ModelInfer',
            { model_name: 'viagrpc', inputs: [{ name: 'input', datatype: 'FP32', shape: ['1', '4'], contents: { fp32_contents: IRIS_ROW } }] },
            { key: PREDICT },
          )
        ).err?.code === grpc.status.UNAVAILABLE,
    );
    assert.ok(gone, 'an unloaded model answers UNAVAILABLE');
    assert.deepEqual(await ok('ModelReady', { name: 'viagrpc' }), { ready: false });
  });
});

async function waitFor(check: () => Promise<boolean>, ms = 10_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) if (await check()) return true;
  return false;
}

describe('framed as HTTP requests are', () => {
  const irisReq = {
    model_name: 'iris',
    inputs: [{ name: 'input', datatype: 'FP32', shape: ['1', '4'] }],
    raw_input_contents: [Buffer.from(new Float32Array(IRIS_ROW).buffer)],
  };

  test('auth: UNAUTHENTICATED without a key or with a bad one, PERMISSION_DENIED without the scope', async () => {
    const none = await call('ModelInfer', irisReq);
    assert.equal(none.err?.code, grpc.status.UNAUTHENTICATED);
    assert.match(none.err!.details, /API key/);
    assert.equal((await call('ModelInfer', irisReq, { key: 'not-a-real-key-000000' })).err?.code, grpc.status.UNAUTHENTICATED);
    assert.equal((await call('RepositoryModelUnload', { model_name: 'iris' }, { key: PREDICT })).err?.code, grpc.status.PERMISSION_DENIED);
    assert.equal((await call('ModelMetadata', { name: 'iris' })).err?.code, grpc.status.UNAUTHENTICATED, 'metadata needs a key, as over HTTP');
  });

  test('request ids: the one sent comes back, and reaches the modelhost', async () => {
    const a = await call('ModelInfer', irisReq, { key: PREDICT, reqId: 'grpc-req-42' });
    assert.equal(a.err, null);
    assert.equal(a.head?.get('x-request-id')[0], 'grpc-req-42');
    const fresh = await call('ModelInfer', irisReq, { key: PREDICT });
    assert.match(String(fresh.head?.get('x-request-id')[0]), /\S{8,}/);
    const failed = await call('ModelInfer', { ...irisReq, model_name: 'ghost' }, { key: PREDICT, reqId: 'grpc-req-43' });
    assert.equal(failed.err?.metadata.get('x-request-id')[0], 'grpc-req-43');
    assert.equal(failed.err?.metadata.get('inferrer-error-code')[0], 'MODEL_NOT_FOUND');
    assert.equal(failed.err?.code, grpc.status.NOT_FOUND);
    await new Promise((r) => setTimeout(r, 300));
    const seen = c.modelhosts.flatMap((m) => c.jsonLogs(m.id)).some((l) => l.reqId === 'grpc-req-42');
    assert.ok(seen, 'the modelhost logged the request under its id: the same path as HTTP');
  });

  test('a message over MAX_BODY_BYTES is RESOURCE_EXHAUSTED', async () => {
    const big = await call('ModelInfer', { ...irisReq, raw_input_contents: [Buffer.alloc(MAX_BODY + 1024)] }, { key: PREDICT });
    assert.equal(big.err?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal((await call('ModelInfer', irisReq, { key: PREDICT })).err, null, 'the server is fine after it');
  });

  test('a request that never ends its stream is cut after BODY_TIMEOUT_MS, and an address holds MAX_PENDING_BODIES_PER_CLIENT of them', {
    timeout: 30_000,
  }, async () => {
    // Raw HTTP/2: each call sends its whole message (or the start of one) and never ends its stream, as a
    // slow or hostile client would; grpc-js would wait for the end of the stream for ever, holding the bytes.
    const message = (client as any).constructor.service.ModelInfer.requestSerialize(irisReq) as Buffer;
    const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), message]);
    framed.writeUInt32BE(message.length, 1);
    const session = http2.connect(`http://${c.grpcAddress}`);
    const calls = Array.from(
      { length: 34 },
      (_, i) =>
        new Promise<{ status: number; code: string; message: string; ms: number; closed: Promise<void> }>((resolve, reject) => {
          const started = Date.now();
          const stream = session.request(
            {
              ':method': 'POST',
              ':path': '/inference.GRPCInferenceService/ModelInfer',
              'content-type': 'application/grpc',
              te: 'trailers',
              authorization: `Bearer ${PREDICT}`,
            },
            { endStream: false },
          );
          const closed = new Promise<void>((done) => stream.on('close', () => done()));
          const answer = (h: http2.IncomingHttpHeaders): void => {
            if (h['grpc-status'] === undefined) return;
            const message = decodeURIComponent(String(h['grpc-message']));
            resolve({ status: Number(h['grpc-status']), code: String(h['inferrer-error-code']), message, ms: Date.now() - started, closed });
          };
          stream.on('response', answer);
          stream.on('trailers', answer);
          stream.on('error', reject);
          stream.resume();
          stream.write(i % 2 === 0 ? framed : framed.subarray(0, 10));
        }),
    );
    // Meanwhile a well-behaved client is served.
    assert.equal((await call('ModelInfer', irisReq, { key: PREDICT })).err, null);
    const answers = await Promise.all(calls);
    const tooMany = answers.filter((a) => a.status === grpc.status.RESOURCE_EXHAUSTED);
    const slow = answers.filter((a) => a.status === grpc.status.DEADLINE_EXCEEDED);
    assert.equal(tooMany.length, 2, JSON.stringify(answers.map((a) => a.code)));
    assert.equal(slow.length, 32);
    for (const a of tooMany) {
      assert.equal(a.code, 'TOO_MANY_BODIES');
      assert.match(a.message, /32 gRPC requests stalled while arriving \(MAX_PENDING_BODIES_PER_CLIENT\)/);
    }
    for (const a of slow) {
      assert.equal(a.code, 'BODY_TOO_SLOW');
      assert.match(a.message, /did not arrive in time \(its connection brought \d+ bytes in \d+ ms; at least 100000 bytes\/s after the first 2000 ms\)/);
      assert.ok(a.ms >= BODY_TIMEOUT_MS && a.ms < BODY_TIMEOUT_MS + 10_000, `cut after ${a.ms} ms`);
    }
    // The server resets the streams it cut (the client never ends them), so what they had sent is let go.
    await Promise.all(answers.map((a) => a.closed));
    session.close();
    assert.equal((await call('ModelInfer', irisReq, { key: PREDICT })).err, null, 'the server is fine after it');
  });

  test("the call's deadline is the request's deadline: a request queued past it leaves the worker's queue", async () => {
    assert.equal(
      (await uploadModel(c.url, 'slowg', path.join(FIXTURES, 'slow.onnx'), { config: { batching: { max_batch_size: 1 }, instances: 1 } }, ADMIN)).status,
      201,
    );
    const x = { name: 'x', datatype: 'FP32', shape: [1, 4], data: [0, 1, 2, 3] };
    assert.equal((await infer(c.url, 'slowg', [x], {}, { authorization: `Bearer ${PREDICT}` })).status, 200);
    // Fill both workers' queues with seconds of work, then two calls at once: one with a 300 ms gRPC deadline,
    // one with the schedule policy's 300 ms timeout and no gRPC deadline. The work is posted to each modelhost
    // straight: a burst through the Inferrer could reach one worker only (it travelled as one group before
    // the Inferrer learned the model's cost; a call sent to the idle worker then ran, and the test failed).
    // The calls go once each queue holds at least three (a run takes ~150 ms or more).
    const busy = c.modelhosts.flatMap((m) => Array.from({ length: 12 }, () => infer(m.url, 'slowg', [x])));
    await until('both workers hold a queue of slowg', async () =>
      (await Promise.all(c.modelhosts.map((m) => metric(m.url, 'modelhost_queue_depth', { model: 'slowg' })))).every((d) => d >= 3),
    );
    const started = Date.now();
    const input = {
      inputs: [{ name: 'x', datatype: 'FP32', shape: ['1', '4'] }],
      raw_input_contents: [Buffer.from(new Float32Array([0, 1, 2, 3]).buffer)],
    };
    const [late, timed] = await Promise.all([
      call('ModelInfer', { model_name: 'slowg', ...input }, { key: PREDICT, reqId: 'grpc-deadline-1', deadlineMs: 300 }).then((r) => ({
        ...r,
        ms: Date.now() - started,
      })),
      call(
        'ModelInfer',
        { model_name: 'slowg', parameters: { timeout: { int64_param: '300000' } }, ...input },
        { key: PREDICT, reqId: 'grpc-deadline-2' },
      ).then((r) => ({ ...r, ms: Date.now() - started })),
    ]);
    // DEADLINE_EXCEEDED at the deadline, or UNAVAILABLE at once from a worker that sees it cannot make it.
    for (const r of [late, timed]) {
      assert.ok(r.err?.code === grpc.status.DEADLINE_EXCEEDED || r.err?.code === grpc.status.UNAVAILABLE, String(r.err?.code));
      assert.ok(r.ms < 2000, `answered after ${r.ms} ms`);
    }
    await Promise.all(busy);
    for (const id of ['grpc-deadline-1', 'grpc-deadline-2']) {
      const line = c.modelhosts.flatMap((m) => c.jsonLogs(m.id)).find((l) => l.reqId === id && l.status !== undefined);
      assert.ok(line, `the worker saw ${id}`);
      // 503 refused on arrival, 504 dropped at the worker's deadline, or 499: the Inferrer gave up at its own
      // deadline a moment first and the worker took the request out of its queue (~2 s of work ahead of it) unrun.
      assert.ok([503, 504, 499].includes(Number(line!.status)), `the worker dropped ${id} instead of running it: ${JSON.stringify(line)}`);
    }
  });

  test('the Inferrer counts gRPC calls in its request metrics, by method and status', async () => {
    const text = await (await fetch(`${c.url}/metrics`)).text();
    const count = (status: string): number =>
      Number(
        new RegExp(
          `^inferrer_requests_total\\{[^}]*route="/inference.GRPCInferenceService/ModelInfer"[^}]*protocol="grpc"[^}]*status="${status}"[^}]*\\} (\\d+)`,
          'm',
        ).exec(text)?.[1] ?? 0,
      );
    assert.ok(count('200') > 20, `ModelInfer 200: ${count('200')}`);
    assert.ok(count('400') > 0 && count('401') > 0 && count('404') > 0, 'refusals counted under their HTTP status');
    assert.match(text, /inferrer_request_duration_seconds_count\{[^}]*route="\/inference.GRPCInferenceService\/ModelInfer"/);
  });
});
