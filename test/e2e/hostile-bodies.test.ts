/**
 * Hostile request bodies through the real cluster (issue 13): each sends exactly the request an attack
 * run sent, and asserts a clear 4xx naming what was wrong, and that the workers keep serving.
 *
 * - nesting: 100,000 nested brackets to /api/test/sendtomodelhost, as an NDJSON job line, as v1 values
 *   and as v2 data (a 500 from a stack overflow before);
 * - numbers out of range for the datatype (1e400 for FP32/FP64, 300-digit integers for INT64, 70000 for
 *   FP16, 300 for INT8), named by input and flat index;
 * - the same output asked for 100,000 times;
 * - BYTES elements that ONNX Runtime's JavaScript binding cannot carry (a NUL byte, invalid UTF-8).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO, type TestCluster, api, startTestCluster, uploadModel } from '../helpers/cluster.ts';

const CORPUS = path.join(REPO, 'test', 'fixtures', 'corpus');
const DEEP = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;

let c: TestCluster;
before(async () => {
  c = await startTestCluster();
  for (const t of ['float32', 'float64', 'float16', 'int64', 'int8', 'string']) {
    const up = await uploadModel(c.url, `id_${t}`, path.join(CORPUS, `id_${t}.onnx`));
    assert.equal(up.status, 201, JSON.stringify(up.body));
  }
});
after(async () => {
  await c?.close();
});

const post = (route: string, body: string | Buffer, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
  api(c.url, route, { method: 'POST', headers, body: typeof body === 'string' ? body : new Uint8Array(body) });

/** The error a v1 (envelope) or v2 (flat) answer carries. */
function errorOf(body: any): { code: string; message: string } {
  if (body?.error && typeof body.error === 'object') return body.error;
  return { code: body?.code, message: body?.error };
}

/** The workers still answer an ordinary request after a hostile one. */
async function stillServing(): Promise<void> {
  const r = await post('/api/v1/models/iris/prediction', '{"values": [6.7, 2.5, 5.8, 1.8]}');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(r.body.values, [2]);
}

describe('JSON nested 100,000 levels deep', () => {
  test('to /api/test/sendtomodelhost: 400, not a stack overflow', async () => {
    const r = await post('/api/test/sendtomodelhost', `{"data": ${DEEP}}`);
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(errorOf(r.body).code, 'INVALID_REQUEST');
    assert.match(errorOf(r.body).message, /deeper than 64 levels/);
  });

  test('as v1 values and as v2 data: 400 naming the input and its rank', async () => {
    const v1 = await post('/api/v1/models/iris/prediction', `{"values": ${DEEP}}`);
    assert.equal(v1.status, 400, JSON.stringify(v1.body));
    assert.deepEqual([errorOf(v1.body).code, errorOf(v1.body).message], ['INVALID_INPUT', "input 'input' nests lists deeper than its rank allows (at most 2 levels)"]);
    const v2 = await post('/v2/models/id_float32/infer', `{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data": ${DEEP}}]}`);
    assert.equal(v2.status, 400, JSON.stringify(v2.body));
    assert.equal(errorOf(v2.body).code, 'INVALID_INPUT');
    // With a long integer inside, the exact (lossless) parser is used, which recurses: refused before it.
    const exact = await post('/v2/models/id_int64/infer', `{"inputs":[{"name":"x","shape":[1,3],"datatype":"INT64","data": ${'['.repeat(100_000)}12345678901234567890${']'.repeat(100_000)}}]}`);
    assert.equal(exact.status, 400, JSON.stringify(exact.body));
    assert.equal(errorOf(exact.body).code, 'INVALID_REQUEST');
    await stillServing();
  });

  test('as an NDJSON job line: that item fails as invalid input, naming its line; the others run', async () => {
    const res = await post('/api/v1/models/iris/jobs', `[6.7, 2.5, 5.8, 1.8]\n${DEEP}\n[5.1, 3.5, 1.4, 0.2]\n`, { 'content-type': 'application/x-ndjson' });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    const id = res.body.job.id as string;
    const until = Date.now() + 60_000;
    let job: any;
    while (Date.now() < until) {
      job = (await api(c.url, `/api/v1/jobs/${id}`)).body.job;
      if (['SUCCEEDED', 'PARTIAL', 'FAILED', 'CANCELLED'].includes(job.state)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(job.state, 'PARTIAL', JSON.stringify(job));
    const lines = (await (await fetch(`${c.url}/api/v1/jobs/${id}/results`)).text()).split('\n').filter(Boolean).map((l) => JSON.parse(l));
    assert.equal(lines.length, 3);
    assert.deepEqual(lines[1].error.code, 'INVALID_INPUT');
    assert.match(lines[1].error.message, /^line 2: the JSON nests arrays and objects deeper than 64 levels/);
    assert.ok(lines[0].outputs && lines[2].outputs, JSON.stringify(lines));
  });
});

describe('numbers out of range for the datatype', () => {
  const v2 = (model: string, datatype: string, data: string) => post(`/v2/models/${model}/infer`, `{"inputs":[{"name":"x","shape":[1,3],"datatype":"${datatype}","data":${data}}]}`);

  test('1e400 for FP32 and FP64 (v2 and v1): 400 naming input and element', async () => {
    for (const [model, type] of [['id_float32', 'FP32'], ['id_float64', 'FP64']]) {
      const r = await v2(model!, type!, '[1, 2, 1e400]');
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(errorOf(r.body).code, 'INVALID_INPUT');
      assert.match(errorOf(r.body).message, new RegExp(`^input 'x' element 2: a number beyond 1.8e308 is out of range for ${type}`));
      assert.deepEqual([r.body.details.input, r.body.details.index], ['x', 2]);
    }
    const v1 = await post('/api/v1/models/id_float32/prediction', '{"values": [1e400, 1, 2]}');
    assert.equal(v1.status, 400, JSON.stringify(v1.body));
    assert.match(errorOf(v1.body).message, /^input 'x' element 0: a number beyond 1.8e308 is out of range for FP32/);
    // 1e39 fits a double but not a float32.
    const f32 = await v2('id_float32', 'FP32', '[1, 1e39, 2]');
    assert.equal(f32.status, 400, JSON.stringify(f32.body));
    assert.match(errorOf(f32.body).message, /^input 'x' element 1: 1e\+39 is out of range for FP32/);
    // Infinity asked for as a string is a value, not an overflow.
    const inf = await v2('id_float32', 'FP32', '["Infinity", 1, 2]');
    assert.equal(inf.status, 200, JSON.stringify(inf.body));
  });

  test('a 300-digit integer for INT64 (v2 and v1), 70000 for FP16, 300 for INT8: 400 naming the element', async () => {
    const big = '9'.repeat(300);
    const cases: [Promise<{ status: number; body: any }>, RegExp][] = [
      [v2('id_int64', 'INT64', `[1, ${big}, 3]`), /^input 'x' element 1: 99999999999999999999…\(300 characters\) is out of range for INT64/],
      [post('/api/v1/models/id_int64/prediction', `{"values": [${big}, 1, 2]}`), /^input 'x' element 0: 99999999999999999999…\(300 characters\) is out of range for INT64/],
      [v2('id_float16', 'FP16', '[1, 2, 70000]'), /^input 'x' element 2: 70000 is out of range for FP16 \[-65504, 65504\]/],
      [v2('id_int8', 'INT8', '[1, 300, 2]'), /^input 'x' element 1: 300 is out of range for INT8 \[-128, 127\]/],
    ];
    for (const [pending, message] of cases) {
      const r = await pending;
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(errorOf(r.body).code, 'INVALID_INPUT');
      assert.match(errorOf(r.body).message, message);
    }
  });
});

describe('outputs', () => {
  test('the same output asked for 100,000 times: 400, not a 9.6 MB answer', async () => {
    const outputs = Array.from({ length: 100_000 }, () => ({ name: 'y' }));
    const r = await post('/v2/models/id_float32/infer', JSON.stringify({ inputs: [{ name: 'x', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }], outputs }));
    assert.equal(r.status, 400, JSON.stringify(r.body).slice(0, 300));
    assert.deepEqual([errorOf(r.body).code, errorOf(r.body).message], ['INVALID_REQUEST', `output 'y' is asked for more than once in "outputs"`]);
  });
});

describe('BYTES elements the runtime binding cannot carry', () => {
  test('JSON: a NUL character or an unpaired surrogate is refused naming the element; text round-trips', async () => {
    const nul = await post('/v2/models/id_string/infer', JSON.stringify({ inputs: [{ name: 'x', shape: [1, 3], datatype: 'BYTES', data: ['a\u0000b', 'c', 'd'] }] }));
    assert.equal(nul.status, 400, JSON.stringify(nul.body));
    assert.match(errorOf(nul.body).message, /^input 'x' element 0: a BYTES element holds a NUL byte/);
    const lone = await post('/v2/models/id_string/infer', '{"inputs":[{"name":"x","shape":[1,3],"datatype":"BYTES","data":["a","b","\\ud800"]}]}');
    assert.equal(lone.status, 400, JSON.stringify(lone.body));
    assert.match(errorOf(lone.body).message, /^input 'x' element 2: a BYTES element holds an unpaired surrogate/);
    const v1 = await post('/api/v1/models/id_string/prediction', JSON.stringify({ values: ['ok', 'a\u0000', 'b'] }));
    assert.equal(v1.status, 400, JSON.stringify(v1.body));
    assert.match(errorOf(v1.body).message, /^input 'x' element 1: a BYTES element holds a NUL byte/);
    const ok = await post('/v2/models/id_string/infer', JSON.stringify({ inputs: [{ name: 'x', shape: [1, 3], datatype: 'BYTES', data: ['a', 'é😀', ''] }] }));
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.deepEqual(ok.body.outputs[0].data, ['a', 'é😀', '']);
  });

  test('binary: invalid UTF-8 or a NUL byte is refused naming the element', async () => {
    const element = (b: Buffer) => {
      const len = Buffer.alloc(4);
      len.writeUInt32LE(b.length);
      return Buffer.concat([len, b]);
    };
    for (const [bad, index, what] of [
      [Buffer.from([0x61, 0xff, 0x62]), 0, /not valid UTF-8/],
      [Buffer.from([0x61, 0x00, 0x62]), 0, /a NUL byte/],
    ] as const) {
      const bin = Buffer.concat([element(bad), element(Buffer.from('x')), element(Buffer.from('y'))]);
      const head = Buffer.from(JSON.stringify({ inputs: [{ name: 'x', shape: [1, 3], datatype: 'BYTES', parameters: { binary_data_size: bin.length } }], outputs: [{ name: 'y', parameters: { binary_data: false } }] }));
      const r = await post('/v2/models/id_string/infer', Buffer.concat([head, bin]), { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(head.length) });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(errorOf(r.body).code, 'INVALID_INPUT');
      assert.match(errorOf(r.body).message, new RegExp(`^input 'x' element ${index}: a BYTES element holds`));
      assert.match(errorOf(r.body).message, what);
    }
    await stillServing();
  });
});
