/**
 * The Open Inference Protocol through the real cluster. The correctness target: any model that
 * onnxruntime-node runs in-process gives the same outputs through the cluster — bit for bit for integers,
 * booleans and strings, the same floats — through JSON and through binary requests.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { type TestCluster, REPO, api, startTestCluster, uploadModel } from '../helpers/cluster.ts';
import { edgeValues } from '../helpers/edge-values.ts';
import { type V2Tensor, infer, toBytes } from '../helpers/v2-client.ts';

const CORPUS = path.join(REPO, 'test', 'fixtures', 'corpus');
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

function ortData(type: string, vals: unknown[]): ort.Tensor['data'] {
  switch (type) {
    case 'bool':
      return Uint8Array.from(vals as boolean[], (v) => (v ? 1 : 0)) as unknown as ort.Tensor['data'];
    case 'uint64':
      return BigUint64Array.from(vals as bigint[]);
    case 'int64':
      return BigInt64Array.from(vals as bigint[]);
    case 'string':
      return vals as string[];
    case 'float16':
      return Uint16Array.from(vals as number[]);
    default: {
      const C = {
        uint8: Uint8Array,
        uint16: Uint16Array,
        uint32: Uint32Array,
        int8: Int8Array,
        int16: Int16Array,
        int32: Int32Array,
        float32: Float32Array,
        float64: Float64Array,
      }[type]!;
      return C.from(vals as number[]);
    }
  }
}

/** Bytes of an in-process output, as the binary extension would carry them. */
function ortBytes(t: ort.Tensor, name: string): Buffer {
  const datatype = V2_OF[t.type]!;
  if (t.type === 'string') return toBytes({ name, datatype, shape: [...t.dims], data: t.data as string[] });
  const a = t.data as unknown as ArrayBufferView;
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** JSON output values turned back into bytes of the output's datatype (FP16 via the nearest half). */
function jsonBytes(out: { name: string; datatype: string; shape: number[]; data: unknown[] }): Buffer {
  const data = out.data.map((v) => (v === 'NaN' ? NaN : v === 'Infinity' ? Infinity : v === '-Infinity' ? -Infinity : v));
  if (out.datatype === 'BOOL') return toBytes({ ...out, data: data.map((v) => (v ? 1 : 0)) });
  if (out.datatype === 'FP16') return toBytes({ ...out, data: data.map((v) => halfBits(Number(v))) });
  return toBytes({ ...out, data });
}

function halfBits(v: number): number {
  const f = new Float32Array([v]);
  const x = new Uint32Array(f.buffer)[0]!;
  const sign = (x >>> 16) & 0x8000;
  if (Number.isNaN(v)) return 0x7e00;
  const exp = ((x >>> 23) & 0xff) - 127 + 15;
  const mant = x & 0x7fffff;
  if (exp >= 0x1f) return sign | 0x7c00;
  if (exp <= 0) return sign | Math.round((mant | 0x800000) / 2 ** (14 - exp));
  return sign | (exp << 10) | Math.round(mant / 8192);
}

/** NaN payloads differ between runs of the same model in JSON (JSON has one NaN); compare NaNs as equal. */
function sameFloats(a: Buffer, b: Buffer, datatype: string): boolean {
  if (a.equals(b)) return true;
  const size = datatype === 'FP64' ? 8 : datatype === 'FP32' ? 4 : datatype === 'FP16' ? 2 : 0;
  if (!size || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i += size) {
    const x = size === 8 ? a.readDoubleLE(i) : size === 4 ? a.readFloatLE(i) : a.readUInt16LE(i);
    const y = size === 8 ? b.readDoubleLE(i) : size === 4 ? b.readFloatLE(i) : b.readUInt16LE(i);
    const nan = size === 2 ? (v: number) => (v & 0x7c00) === 0x7c00 && (v & 0x3ff) !== 0 : Number.isNaN;
    if (!(Object.is(x, y) || (nan(x) && nan(y)))) return false;
  }
  return true;
}

let c: TestCluster;
const models = readdirSync(CORPUS)
  .filter((f) => f.endsWith('.onnx'))
  .map((f) => f.slice(0, -5))
  .sort();
before(async () => {
  c = await startTestCluster();
  for (const m of models) {
    const r = await uploadModel(c.url, `corpus-${m}`, path.join(CORPUS, `${m}.onnx`));
    assert.equal(r.status, 201, `${m}: ${JSON.stringify(r.body)}`);
  }
});
after(async () => {
  await c?.close();
});

function concreteShape(shape: readonly (number | string)[], _model: string): number[] {
  const sizes: Record<string, number> = { batch: 2, seq: 5, n: 3 };
  return shape.map((d) => (typeof d === 'number' && d >= 0 ? d : (sizes[String(d)] ?? 2)));
}

describe('same answers through the cluster as in-process', () => {
  for (const m of models) {
    test(m, async () => {
      const session = await ort.InferenceSession.create(path.join(CORPUS, `${m}.onnx`));
      const cases: Record<string, number[]>[] = [];
      const base: Record<string, number[]> = {};
      for (const meta of session.inputMetadata) base[meta.name] = concreteShape((meta as unknown as { shape: (number | string)[] }).shape, m);
      cases.push(base);
      if (m === 'empty_ok') cases.push({ x: [1, 0] }, { x: [0, 3] });
      for (const shapes of cases) {
        const tensors: V2Tensor[] = [];
        const feeds: Record<string, ort.Tensor> = {};
        for (const meta of session.inputMetadata) {
          const type = (meta as unknown as { type: string }).type;
          const shape = shapes[meta.name]!;
          const n = shape.reduce((a, b) => a * b, 1);
          const vals = edgeValues(type, n);
          feeds[meta.name] = new ort.Tensor(type as 'float32', ortData(type, vals) as Float32Array, shape);
          tensors.push({ name: meta.name, datatype: V2_OF[type]!, shape, data: type === 'bool' ? vals.map((v) => (v ? 1 : 0)) : vals });
        }
        const expected = await session.run(feeds);
        const fp16Json = (t: V2Tensor) => t.data.map((bits) => halfToNumber(Number(bits)));
        const jsonTensors = tensors.map((t) => (t.datatype === 'BOOL' ? { ...t, data: t.data.map((v) => v === 1) } : t));
        const viaJson = await infer(c.url, `corpus-${m}`, jsonTensors, { fp16Json, id: `json-${m}` });
        assert.equal(viaJson.status, 200, `${m} JSON ${show(viaJson.body)}`);
        assert.equal(viaJson.body.id, `json-${m}`);
        const viaBinary = await infer(c.url, `corpus-${m}`, tensors, { binaryInputs: true, binaryOutputs: true });
        assert.equal(viaBinary.status, 200, `${m} binary ${show(viaBinary.body)}`);
        for (const name of session.outputNames) {
          const want = expected[name]!;
          const datatype = V2_OF[want.type]!;
          const wantBytes = ortBytes(want, name);
          for (const [how, res] of [
            ['json', viaJson],
            ['binary', viaBinary],
          ] as const) {
            const out = res.body.outputs.find((o: { name: string }) => o.name === name);
            assert.ok(out, `${m} ${how}: output ${name} present`);
            assert.equal(out.datatype, datatype, `${m} ${how} ${name} datatype`);
            assert.deepEqual(out.shape.map(Number), [...want.dims], `${m} ${how} ${name} shape`);
            const got = how === 'binary' ? res.binary.get(name)! : jsonBytes(out);
            assert.ok(got, `${m} ${how} ${name} has data`);
            assert.ok(
              sameFloats(got, wantBytes, datatype),
              `${m} ${how} ${name}: ${got.toString('hex').slice(0, 80)} vs ${wantBytes.toString('hex').slice(0, 80)}`,
            );
            if (how === 'binary' && !datatype.startsWith('FP')) assert.ok(got.equals(wantBytes), `${m} binary ${name} bit for bit`);
          }
        }
      }
      await session.release();
    });
  }
});

function show(body: unknown): string {
  return JSON.stringify(body, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
}

function halfToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

describe('v2 routes', () => {
  test('server metadata, health and model metadata with -1 for symbolic dims', async () => {
    const server = await api(c.url, '/v2');
    assert.equal(server.status, 200);
    assert.equal(server.body.name, 'inferrer');
    assert.ok(server.body.extensions.includes('binary_tensor_data'));
    assert.equal((await api(c.url, '/v2/health/live')).status, 200);
    assert.equal((await api(c.url, '/v2/health/ready')).status, 200);
    const meta = await api(c.url, '/v2/models/corpus-symbolic');
    assert.equal(meta.status, 200);
    assert.equal(meta.body.platform, 'onnxruntime_onnx');
    assert.deepEqual(meta.body.versions, ['1']);
    assert.deepEqual(meta.body.inputs, [{ name: 'x', datatype: 'FP32', shape: [-1, -1] }]);
    assert.deepEqual(meta.body.outputs, [
      { name: 'y', datatype: 'FP32', shape: [-1, -1] },
      { name: 'len', datatype: 'INT64', shape: [1] },
    ]);
    assert.equal((await api(c.url, '/v2/models/corpus-symbolic/versions/1')).status, 200);
    assert.equal((await api(c.url, '/v2/models/corpus-symbolic/versions/9')).status, 404);
    // Ready once every worker has it warm: the corpus uploads above may have pushed it out of the workers'
    // MAX_LOADED_MODELS, and asking is what loads it again.
    let ready = await api(c.url, '/v2/models/iris/ready');
    for (const end = Date.now() + 15_000; !ready.body.ready && Date.now() < end; ready = await api(c.url, '/v2/models/iris/ready'))
      await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(ready.body, { name: 'iris', version: '1', ready: true });
    const missing = await api(c.url, '/v2/models/nothing-here');
    assert.equal(missing.status, 404);
    assert.match(missing.body.error, /nothing-here/);
  });

  test('a requested subset of outputs, and mixed JSON and binary outputs in one answer', async () => {
    const x = { name: 'input', datatype: 'FP32', shape: [1, 4], data: [6.7, 2.5, 5.8, 1.8] };
    const only = await infer(c.url, 'iris', [x], { outputs: [{ name: 'label' }] });
    assert.deepEqual(
      only.body.outputs.map((o: { name: string }) => o.name),
      ['label'],
    );
    assert.deepEqual(only.body.outputs[0].data, [2]);
    const mixed = await infer(c.url, 'iris', [x], {
      outputs: [
        { name: 'label', binary: false },
        { name: 'probabilities', binary: true },
      ],
    });
    assert.equal(mixed.status, 200);
    assert.deepEqual(mixed.body.outputs[0].data, [2]);
    assert.equal(mixed.binary.get('probabilities')!.length, 12);
    assert.ok(mixed.binary.get('probabilities')!.readFloatLE(8) > 0.99);
  });

  test('mismatches name the input, what was expected and what came', async () => {
    const cases: [V2Tensor[], RegExp][] = [
      [[{ name: 'input', datatype: 'FP32', shape: [1, 5], data: [1, 2, 3, 4, 5] }], /input 'input' has shape \[1, 5\] but the model expects \[-1, 4\]/],
      [[{ name: 'input', datatype: 'INT32', shape: [1, 4], data: [1, 2, 3, 4] }], /input 'input' has datatype INT32 but the model expects FP32/],
      [[{ name: 'input', datatype: 'FP32', shape: [2, 4], data: [1, 2, 3, 4] }], /input 'input' has shape \[2, 4\] \(8 elements\) but its data holds 4/],
      [[{ name: 'nope', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }], /the model has no input 'nope'/],
      [[{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [1, 'x', 3, 4] }], /input 'input' element 1: expected a number/],
    ];
    for (const [inputs, message] of cases) {
      const r = await infer(c.url, 'iris', inputs);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.match(r.body.error, message);
      assert.equal(r.body.code, 'INVALID_INPUT');
    }
    const short = await fetch(`${c.url}/v2/models/iris/infer`, {
      method: 'POST',
      headers: { 'inference-header-content-length': '200', 'content-type': 'application/octet-stream' },
      body: '{"inputs":[]}',
    });
    assert.equal(short.status, 400);
    const wrongSize = await infer(c.url, 'iris', [{ name: 'input', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }], { binaryInputs: true });
    assert.equal(wrongSize.status, 400);
    const badJson = await api(c.url, '/v2/models/iris/infer', { method: 'POST', body: '{"inputs": [', headers: { 'content-type': 'application/json' } });
    assert.equal(badJson.status, 400);
    assert.equal(badJson.body.code, 'INVALID_JSON');
  });

  test('concurrent v2 requests share batches as v1 requests do', async () => {
    const up = await uploadModel(c.url, 'slow2', path.join(REPO, 'test', 'fixtures', 'models', 'slow.onnx'), { config: { batching: { max_batch_size: 8 } } });
    assert.equal(up.status, 201);
    await infer(c.url, 'slow2', [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [0, 0, 0, 0] }]);
    await infer(c.url, 'slow2', [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [0, 0, 0, 0] }]);
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        infer(c.url, 'slow2', [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [i, 1, 2, 3] }], { binaryInputs: i % 2 === 0 }),
      ),
    );
    answers.forEach((a, i) => assert.deepEqual(a.body.outputs[0].data, [i, 1, 2, 3]));
    const shared = answers.filter((a) => !/requests=1;/.test(a.headers.get('x-inferrer-batch') ?? '')).length;
    assert.ok(shared >= 6, `batches were shared: ${answers.map((a) => a.headers.get('x-inferrer-batch')).join(' ')}`);
  });

  test('repository index, unload and load', async () => {
    const index = await api(c.url, '/v2/repository/index', { method: 'POST' });
    assert.equal(index.status, 200);
    assert.ok(index.body.some((m: { name: string; state: string }) => m.name === 'iris' && m.state === 'READY'));
    const x = [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [6.7, 2.5, 5.8, 1.8] }];
    assert.equal((await api(c.url, '/v2/repository/models/diabetes/unload', { method: 'POST' })).status, 200);
    const dx = [{ name: 'input', datatype: 'FP32', shape: [1, 10], data: Array(10).fill(0) }];
    const end = Date.now() + 5000;
    let status = 200;
    while (Date.now() < end && status !== 503) {
      status = (await infer(c.url, 'diabetes', dx)).status;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(status, 503, 'an unloaded model is not served');
    assert.equal((await api(c.url, '/v2/models/diabetes/ready')).status, 503);
    assert.equal((await infer(c.url, 'iris', x)).status, 200, 'other models are unaffected');
    assert.equal((await api(c.url, '/v2/repository/models/diabetes/load', { method: 'POST' })).status, 200);
    const end2 = Date.now() + 5000;
    while (Date.now() < end2 && status !== 200) {
      status = (await infer(c.url, 'diabetes', dx)).status;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(status, 200, 'loaded again');
    assert.equal((await api(c.url, '/v2/repository/models/ghost/load', { method: 'POST' })).status, 404);
  });
});
