import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classify } from '../../src/codecs/classification.ts';
import { decodeV2Request, encodeV2Response } from '../../src/codecs/v2.ts';
import type { ModelSignature } from '../../src/tensor.ts';

test('top k per batch row, descending, ties by index, labels where there are some, values as %f', () => {
  const t = { type: 'float32' as const, dims: [2, 4], data: new Float32Array([0.1, 0.7, 0.1, 0.1, 3, -1, 2.5, 3]) };
  const r = classify(t, 'p', 2, true, ['a', 'b', 'c']);
  assert.deepEqual(r.dims, [2, 2]);
  assert.deepEqual(r.data, ['0.700000:1:b', '0.100000:0:a', '3.000000:0:a', '3.000000:3']);
});

test('without a batch axis the whole tensor is ranked; k is capped; integers print plainly; NaN ranks last', () => {
  const ints = { type: 'int32' as const, dims: [2, 3], data: new Int32Array([5, -2, 9, 0, 9, 1]) };
  assert.deepEqual(classify(ints, 'y', 3, false), { type: 'string', dims: [3], data: ['9:2', '9:4', '5:0'] });
  assert.deepEqual(classify(ints, 'y', 50, false).dims, [6]);
  const big = { type: 'int64' as const, dims: [1, 2], data: new BigInt64Array([9223372036854775807n, -1n]) };
  assert.deepEqual(classify(big, 'y', 1, true).data, ['9223372036854775807:0']);
  const f = { type: 'float64' as const, dims: [4], data: new Float64Array([Number.NaN, -Infinity, 1e300, -0]) };
  const all = classify(f, 'z', 4, false).data as string[];
  assert.equal(all[0], `${BigInt(1e300)}.000000:2`);
  assert.deepEqual(all.slice(1), ['-0.000000:3', '-inf:1', 'nan:0']);
  const half = { type: 'float16' as const, dims: [1, 2], data: new Uint16Array([0x3e00, 0xc000]) };
  assert.deepEqual(classify(half, 'h', 2, true).data, ['1.500000:0', '-2.000000:1']);
});

test('BOOL and BYTES outputs cannot be classified', () => {
  assert.throws(() => classify({ type: 'bool', dims: [1], data: new Uint8Array([1]) }, 'b', 1, false), { code: 'INVALID_REQUEST' });
  assert.throws(() => classify({ type: 'string', dims: [1], data: ['x'] }, 's', 1, false), /classification needs a numeric output/);
});

test('the v2 codec reads "classification" on a requested output and answers BYTES, in JSON or binary', () => {
  const sig: ModelSignature = {
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', 3] }],
    outputs: [
      { name: 'y', type: 'float32', shape: ['batch', 3] },
      { name: 's', type: 'string', shape: ['batch', 1] },
    ],
  };
  const body = (outputs: unknown) => Buffer.from(JSON.stringify({ inputs: [{ name: 'x', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }], outputs }));
  const d = decodeV2Request(body([{ name: 'y', parameters: { classification: 2 } }]), undefined, sig);
  assert.deepEqual(d.outputs, [{ name: 'y', binary: false, classification: 2 }]);
  const outputs = { y: { type: 'float32' as const, dims: [1, 3], data: new Float32Array([0.2, 0.5, 0.3]) } };
  const json = encodeV2Response(outputs, ['y'], {
    model: 'm',
    version: 1,
    outputs: d.outputs!,
    binaryOutput: false,
    batched: true,
    labels: { y: ['a', 'b', 'c'] },
  });
  assert.deepEqual(JSON.parse(json.json).outputs, [{ name: 'y', datatype: 'BYTES', shape: [1, 2], data: ['0.500000:1:b', '0.300000:2:c'] }]);
  const bin = encodeV2Response(outputs, ['y'], {
    model: 'm',
    version: 1,
    outputs: [{ name: 'y', binary: true, classification: 1 }],
    binaryOutput: false,
    batched: true,
  });
  assert.equal(Buffer.concat(bin.binary).toString('latin1'), '\x0a\x00\x00\x000.500000:1');
  for (const [p, why] of [
    [{ classification: 'x' }, /positive integer/],
    [{ classification: -1 }, /positive integer/],
    [{ classification: 1.5 }, /positive integer/],
  ] as const) {
    assert.throws(() => decodeV2Request(body([{ name: 'y', parameters: p }]), undefined, sig), why);
  }
  assert.throws(
    () => decodeV2Request(body([{ name: 's', parameters: { classification: 1 } }]), undefined, sig),
    /output 's' is BYTES; classification needs a numeric output/,
  );
  assert.equal(decodeV2Request(body([{ name: 'y', parameters: { classification: 0 } }]), undefined, sig).outputs![0]!.classification, undefined);
});
