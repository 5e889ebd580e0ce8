import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InferrerError, type ModelSignature, type NamedTensors, decodeV1Body, decodeV2Request, encodeV1Response, encodeV2Response } from '@inferrer/core';
import { CodecPool } from '@inferrer/runtime';

const IRIS: ModelSignature = {
  inputs: [{ name: 'input', type: 'float32', shape: ['batch', 4] }],
  outputs: [
    { name: 'label', type: 'int64', shape: ['batch'] },
    { name: 'probabilities', type: 'float32', shape: ['batch', 3] },
  ],
};
const IMAGES: ModelSignature = {
  inputs: [{ name: 'image', type: 'float32', shape: ['batch', 3, 8, 8] }],
  outputs: [{ name: 'y', type: 'float32', shape: ['batch', 2] }],
};

const rowsJson = (n: number): string => `{"values": [${Array.from({ length: n }, (_, i) => `[${i}, 2.5, 5.8, 1.8]`).join(',')}]}`;

describe('CodecPool', () => {
  const pool = new CodecPool({ processes: 1, idleMs: 300 });
  after(() => pool.close());

  test('decodes a v1 body in its process exactly as here; the body stays usable here', async () => {
    const text = rowsJson(100_000);
    const body = Buffer.from(text);
    const decoded = await pool.decodeV1(body, IRIS);
    const here = decodeV1Body(body, IRIS);
    assert.equal(decoded.rows, 100_000);
    assert.deepEqual(decoded.inputs.input!.dims, [100_000, 4]);
    // 1.6 MB of floats came back in parts into one array that owns its memory.
    const data = decoded.inputs.input!.data as Float32Array;
    assert.ok(data instanceof Float32Array && data.byteOffset === 0 && data.byteLength === data.buffer.byteLength);
    assert.deepEqual(data, here.inputs.input!.data);
    assert.equal(body.toString(), text);
  });

  test('takes a body in parts (as readBodyParts reads it), several MiB of them', async () => {
    const text = rowsJson(200_000);
    const bytes = Buffer.from(text);
    const parts = [Buffer.from(bytes.subarray(0, 100)), Buffer.from(bytes.subarray(100, 2_000_000)), bytes.subarray(2_000_000)];
    const decoded = await pool.decodeV1(parts, IRIS);
    assert.equal(decoded.rows, 200_000);
    assert.equal((decoded.inputs.input!.data as Float32Array)[4 * 199_999], 199_999);
  });

  test('errors come back as the same InferrerError, naming the element', async () => {
    await assert.rejects(pool.decodeV1(Buffer.from('{"values": [[1, 2, 3, 1e400]]}'), IRIS), (err: unknown) => {
      assert.ok(err instanceof InferrerError);
      assert.equal(err.code, 'INVALID_INPUT');
      assert.match(err.message, /^input 'input' element 3: a number beyond 1.8e308 is out of range for FP32/);
      assert.deepEqual([err.details.input, err.details.index], ['input', 3]);
      return true;
    });
    await assert.rejects(pool.decodeV1(Buffer.from('{"values": [1, 2'), IRIS), { code: 'INVALID_JSON' });
  });

  test('decodes v2 JSON, binary tensors and images sent as BYTES like decodeV2Request', async () => {
    const json = Buffer.from(
      JSON.stringify({ id: 'r1', inputs: [{ name: 'input', shape: [2, 4], datatype: 'FP32', data: [1, 2, 3, 4, 5, 6, 7, 8] }], outputs: [{ name: 'label' }] }),
    );
    const off = await pool.decodeV2(json, undefined, IRIS);
    assert.deepEqual(off, decodeV2Request(json, undefined, IRIS));

    const tensor = Buffer.from(new Float32Array([1, 2, 3, 4]).buffer);
    const head = Buffer.from(JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', parameters: { binary_data_size: 16 } }] }));
    const bin = await pool.decodeV2(Buffer.concat([head, tensor]), head.length, IRIS);
    assert.deepEqual(Array.from(bin.inputs.input!.data as Float32Array), [1, 2, 3, 4]);

    const png = Buffer.from('89504e470d0a1a0a', 'hex');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(png.length);
    const ihead = Buffer.from(JSON.stringify({ inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', parameters: { binary_data_size: 4 + png.length } }] }));
    const img = await pool.decodeV2(Buffer.concat([ihead, len, png]), ihead.length, IMAGES, undefined, new Set(['image']));
    const images = img.images!.image!;
    assert.ok(Buffer.isBuffer(images[0]));
    assert.deepEqual(images[0], png);
  });

  test('encodes answers as the same text', async () => {
    const outputs = (): NamedTensors => ({
      label: { type: 'int64', dims: [3], data: new BigInt64Array([2n, 0n, 9007199254740993n]) },
      probabilities: { type: 'float32', dims: [3, 3], data: new Float32Array([0.1, 0.2, 0.7, 1, 0, 0, 0.5, 0.25, 0.25]) },
    });
    const order = ['label', 'probabilities'];
    const v1 = await pool.encodeV1(outputs(), order, { model: 'iris', version: 1, all: true });
    assert.equal(v1.toString(), encodeV1Response(outputs(), order, { model: 'iris', version: 1, all: true }));
    const opts = {
      model: 'iris',
      version: 1,
      outputs: [
        { name: 'label', binary: false },
        { name: 'probabilities', binary: true },
      ],
      binaryOutput: false,
    };
    const v2 = await pool.encodeV2(outputs(), order, opts);
    const here = encodeV2Response(outputs(), order, opts);
    assert.equal(v2.json.toString(), here.json);
    assert.deepEqual(v2.binary, here.binary);
    // A view into a larger buffer (one request's share of a batch) sends only its own rows.
    const batch = new Float32Array([9, 9, 9, 9, 9, 9, 9, 9, 9, 1, 2, 3]);
    const share: NamedTensors = { probabilities: { type: 'float32', dims: [1, 3], data: batch.subarray(9) } };
    assert.equal(
      (await pool.encodeV1(share, ['probabilities'], { model: 'iris', version: 1 })).toString(),
      encodeV1Response(share, ['probabilities'], { model: 'iris', version: 1 }),
    );
    // A large answer comes back in parts, whole.
    const big: NamedTensors = { label: { type: 'int64', dims: [500_000], data: new BigInt64Array(500_000).fill(2n) } };
    const text = (await pool.encodeV1(big, ['label'], { model: 'iris', version: 1 })).toString();
    assert.equal(text, encodeV1Response(big, ['label'], { model: 'iris', version: 1 }));
  });

  test('processes start on demand and stop when idle', async () => {
    const idle = new CodecPool({ processes: 2, idleMs: 200 });
    try {
      assert.equal(idle.processes, 0);
      await Promise.all([
        idle.decodeV1(Buffer.from(rowsJson(10)), IRIS),
        idle.decodeV1(Buffer.from(rowsJson(10)), IRIS),
        idle.decodeV1(Buffer.from(rowsJson(10)), IRIS),
      ]);
      assert.ok(idle.processes >= 1 && idle.processes <= 2, `${idle.processes} processes`);
      await new Promise((r) => setTimeout(r, 600));
      assert.equal(idle.processes, 0);
    } finally {
      await idle.close();
    }
  });

  test('a body that needs more memory than a codec process has is BODY_TOO_LARGE; only that process ends', async () => {
    const small = new CodecPool({ processes: 1, maxHeapMb: 64 });
    try {
      // Numbers alone are parsed from the bytes into a Float32Array, off the heap; a "NaN" at the end leaves
      // the whole list to JSON.parse, whose arrays of numbers live on it.
      const heavy = `${rowsJson(2_000_000).slice(0, -2)},[1, 2, 3, "NaN"]]}`;
      await assert.rejects(small.decodeV1(Buffer.from(heavy), IRIS), { code: 'BODY_TOO_LARGE' });
      const decoded = await small.decodeV1(Buffer.from(rowsJson(3)), IRIS);
      assert.equal(decoded.rows, 3);
    } finally {
      await small.close();
    }
  });
});
