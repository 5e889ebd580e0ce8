import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_VALUE_LIMITS,
  type ModelSignature,
  type NamedTensors,
  decodeV1Request,
  elementToJson,
  encodeV1Response,
  flatToJson,
  floatToHalf,
  rowsToJson,
  tensorToNestedJson,
  v1Envelope,
  v1IsKnownType,
} from '@inferrer/core';

// The signatures ONNX Runtime reports for the demo models and the test fixtures.
const IRIS: ModelSignature = {
  inputs: [{ name: 'input', type: 'float32', shape: ['batch', 4] }],
  outputs: [
    { name: 'label', type: 'int64', shape: ['batch'] },
    { name: 'probabilities', type: 'float32', shape: ['batch', 3] },
  ],
};
const DIGITS: ModelSignature = {
  inputs: [{ name: 'image', type: 'float32', shape: ['batch', 1, 8, 8] }],
  outputs: [{ name: 'label', type: 'int64', shape: ['batch'] }],
};
const MULTI_IO: ModelSignature = {
  inputs: [
    { name: 'a', type: 'float32', shape: ['batch', 2] },
    { name: 'b', type: 'int64', shape: ['batch', 1] },
  ],
  outputs: [
    { name: 'sum', type: 'float32', shape: ['batch', 1] },
    { name: 'doubled', type: 'int64', shape: ['batch', 1] },
  ],
};
const FIXED: ModelSignature = {
  inputs: [{ name: 'x', type: 'float32', shape: [1, 4] }],
  outputs: [{ name: 'y', type: 'float32', shape: [1, 2] }],
};
const IDS: ModelSignature = {
  inputs: [{ name: 'ids', type: 'int64', shape: ['batch'] }],
  outputs: [{ name: 'y', type: 'int64', shape: ['batch'] }],
};
const QUANT: ModelSignature = {
  inputs: [{ name: 'q', type: 'int8', shape: [-1, 2] }],
  outputs: [{ name: 'y', type: 'int8', shape: [-1, 2] }],
};

const range = (n: number, scale = 1): number[] => Array.from({ length: n }, (_, i) => i * scale);
const image = (seed: number): number[][][] => [Array.from({ length: 8 }, (_, r) => range(8).map((c) => (seed + r * 8 + c) / 64))];

describe('decodeV1Request: one input', () => {
  test('one row without the outer list', () => {
    const d = decodeV1Request({ values: [6.7, 2.5, 5.8, 1.8] }, IRIS);
    assert.equal(d.rows, 1);
    assert.equal(d.singleRow, true);
    assert.deepEqual(d.inputs.input!.dims, [1, 4]);
    assert.equal(d.inputs.input!.type, 'float32');
    assert.ok(d.inputs.input!.data instanceof Float32Array);
    assert.deepEqual(Array.from(d.inputs.input!.data as Float32Array), [6.7, 2.5, 5.8, 1.8].map(Math.fround));
  });

  test('a list of rows', () => {
    const d = decodeV1Request(
      {
        values: [
          [6.7, 2.5, 5.8, 1.8],
          [5.1, 3.5, 1.4, 0.2],
          [5.9, 3, 4.2, 1.5],
        ],
      },
      IRIS,
    );
    assert.equal(d.rows, 3);
    assert.equal(d.singleRow, false);
    assert.deepEqual(d.inputs.input!.dims, [3, 4]);
    assert.equal(d.inputs.input!.data.length, 12);
    assert.equal((d.inputs.input!.data as Float32Array)[4], Math.fround(5.1));
  });

  test('a list of one row is not a single row', () => {
    const d = decodeV1Request({ values: [[6.7, 2.5, 5.8, 1.8]] }, IRIS);
    assert.equal(d.rows, 1);
    assert.equal(d.singleRow, false);
    assert.deepEqual(d.inputs.input!.dims, [1, 4]);
  });

  test('[batch,1,8,8]: one row nested as [1,8,8]', () => {
    const d = decodeV1Request({ values: image(0) }, DIGITS);
    assert.deepEqual(d.inputs.image!.dims, [1, 1, 8, 8]);
    assert.equal(d.rows, 1);
    assert.equal(d.singleRow, true);
    assert.equal((d.inputs.image!.data as Float32Array)[9], 9 / 64);
  });

  test('[batch,1,8,8]: one flat row of 64 values', () => {
    const d = decodeV1Request({ values: range(64, 1 / 64) }, DIGITS);
    assert.deepEqual(d.inputs.image!.dims, [1, 1, 8, 8]);
    assert.equal(d.rows, 1);
    assert.equal(d.singleRow, true);
    assert.equal((d.inputs.image!.data as Float32Array)[63], 63 / 64);
  });

  test('[batch,1,8,8]: a list of flat rows', () => {
    const d = decodeV1Request({ values: [range(64), range(64, 2), range(64, 3)] }, DIGITS);
    assert.deepEqual(d.inputs.image!.dims, [3, 1, 8, 8]);
    assert.equal(d.rows, 3);
    assert.equal(d.singleRow, false);
    assert.equal((d.inputs.image!.data as Float32Array)[64 + 5], 10);
    assert.equal((d.inputs.image!.data as Float32Array)[128 + 5], 15);
  });

  test('[batch,1,8,8]: a list of nested rows', () => {
    const d = decodeV1Request({ values: [image(0), image(1)] }, DIGITS);
    assert.deepEqual(d.inputs.image!.dims, [2, 1, 8, 8]);
    assert.equal(d.rows, 2);
  });

  test('a wrong shape names the input, what it expects and what it got', () => {
    assert.throws(() => decodeV1Request({ values: image(0)[0] }, DIGITS), {
      code: 'INVALID_INPUT',
      message: "input 'image' expects one row of shape [1, 8, 8] or a list of such rows (model shape [batch, 1, 8, 8]); got values of shape [8, 8]",
      details: { input: 'image', expected: ['batch', 1, 8, 8], got: [8, 8] },
    });
    assert.throws(() => decodeV1Request({ values: [1, 2, 3] }, IRIS), {
      code: 'INVALID_INPUT',
      message: "input 'input' expects one row of shape [4] or a list of such rows (model shape [batch, 4]); got values of shape [3]",
      details: { input: 'input', expected: ['batch', 4], got: [3] },
    });
    assert.throws(() => decodeV1Request({ values: [[1, 2, 3, 4, 5]] }, IRIS), { message: /got values of shape \[1, 5\]$/ });
  });

  test('-1 dims print as ?', () => {
    assert.throws(() => decodeV1Request({ values: [1, 2, 3] }, QUANT), {
      message: "input 'q' expects one row of shape [2] or a list of such rows (model shape [?, 2]); got values of shape [3]",
    });
  });

  test('an empty list is refused', () => {
    assert.throws(() => decodeV1Request({ values: [] }, IRIS), { code: 'INVALID_INPUT', message: /got values of shape \[0\]$/ });
    assert.throws(() => decodeV1Request({ values: [] }, IDS), { code: 'INVALID_INPUT', message: "input 'ids' has no rows" });
  });

  test('[batch] inputs: a scalar is one row, a list is rows', () => {
    const one = decodeV1Request({ values: 5 }, IDS);
    assert.deepEqual(one.inputs.ids!.dims, [1]);
    assert.equal(one.singleRow, true);
    const many = decodeV1Request({ values: [5, 6, 7] }, IDS);
    assert.deepEqual(many.inputs.ids!.dims, [3]);
    assert.equal(many.rows, 3);
    assert.deepEqual(Array.from(many.inputs.ids!.data as BigInt64Array), [5n, 6n, 7n]);
  });

  test('a non-numeric value names the input and the element', () => {
    assert.throws(
      () =>
        decodeV1Request(
          {
            values: [
              [1, 2, 3, 4],
              [5, 'six', 7, 8],
            ],
          },
          IRIS,
        ),
      {
        code: 'INVALID_INPUT',
        message: `input 'input' element 5: expected a number, got the string "six"`,
      },
    );
  });

  test('ragged rows are refused', () => {
    assert.throws(
      () =>
        decodeV1Request(
          {
            values: [
              [1, 2, 3, 4],
              [1, 2, 3],
            ],
          },
          IRIS,
        ),
      {
        code: 'INVALID_INPUT',
        message: "input 'input' is not rectangular: at [1] expected 4 elements, got 3",
      },
    );
  });

  test('"NaN" and "Infinity" strings reach float inputs', () => {
    const d = decodeV1Request({ values: ['NaN', 'Infinity', '-Infinity', 1] }, IRIS);
    const data = d.inputs.input!.data as Float32Array;
    assert.ok(Number.isNaN(data[0]));
    assert.equal(data[1], Infinity);
    assert.equal(data[2], -Infinity);
    assert.equal(data[3], 1);
  });

  test('out-of-range int8 is refused', () => {
    assert.throws(
      () =>
        decodeV1Request(
          {
            values: [
              [1, 2],
              [3, 200],
            ],
          },
          QUANT,
        ),
      {
        code: 'INVALID_INPUT',
        message: "input 'q' element 3: 200 is out of range for INT8 [-128, 127]",
      },
    );
    const ok = decodeV1Request({ values: [-128, 127] }, QUANT);
    assert.deepEqual(Array.from(ok.inputs.q!.data as Int8Array), [-128, 127]);
  });

  test('the element limit applies', () => {
    assert.throws(
      () =>
        decodeV1Request(
          {
            values: [
              [1, 2, 3, 4],
              [5, 6, 7, 8],
            ],
          },
          IRIS,
          { ...DEFAULT_VALUE_LIMITS, maxElements: 4 },
        ),
      {
        code: 'INVALID_INPUT',
        message: "input 'input' has 8 elements, more than the limit of 4",
      },
    );
  });
});

describe('decodeV1Request: fixed shapes (no batch axis)', () => {
  test('the row alone or the full shape', () => {
    for (const values of [[1, 2, 3, 4], [[1, 2, 3, 4]]]) {
      const d = decodeV1Request({ values }, FIXED);
      assert.deepEqual(d.inputs.x!.dims, [1, 4]);
      assert.equal(d.rows, 1);
      assert.equal(d.singleRow, true);
      assert.deepEqual(Array.from(d.inputs.x!.data as Float32Array), [1, 2, 3, 4]);
    }
  });

  test('a different element count is refused with the fixed shape', () => {
    assert.throws(
      () =>
        decodeV1Request(
          {
            values: [
              [1, 2, 3, 4],
              [5, 6, 7, 8],
            ],
          },
          FIXED,
        ),
      {
        code: 'INVALID_INPUT',
        message: "input 'x' expects a tensor of shape [1, 4] (model shape [1, 4]); got values of shape [2, 4]",
      },
    );
  });
});

describe('decodeV1Request: several inputs', () => {
  test('the dict form, one row each', () => {
    const d = decodeV1Request({ values: { a: [1.5, 2], b: [3] } }, MULTI_IO);
    assert.equal(d.rows, 1);
    assert.deepEqual(d.inputs.a!.dims, [1, 2]);
    assert.deepEqual(d.inputs.b!.dims, [1, 1]);
    assert.deepEqual(Array.from(d.inputs.a!.data as Float32Array), [1.5, 2]);
    assert.ok(d.inputs.b!.data instanceof BigInt64Array);
    assert.deepEqual(Array.from(d.inputs.b!.data as BigInt64Array), [3n]);
  });

  test('the dict form, rows each, in signature order', () => {
    const d = decodeV1Request(
      {
        values: {
          b: [[5], [6]],
          a: [
            [1, 2],
            [3, 4],
          ],
        },
      },
      MULTI_IO,
    );
    assert.equal(d.rows, 2);
    assert.deepEqual(Object.keys(d.inputs), ['a', 'b']);
    assert.deepEqual(d.inputs.a!.dims, [2, 2]);
    assert.deepEqual(d.inputs.b!.dims, [2, 1]);
  });

  test('a big int64 written as a string survives exactly', () => {
    const d = decodeV1Request({ values: { a: [0, 0], b: ['9007199254740993'] } }, MULTI_IO);
    assert.equal((d.inputs.b!.data as BigInt64Array)[0], 9007199254740993n);
  });

  test('a non-integer for int64 is refused', () => {
    assert.throws(() => decodeV1Request({ values: { a: [0, 0], b: [1.5] } }, MULTI_IO), {
      code: 'INVALID_INPUT',
      message: "input 'b' element 0: expected an integer (INT64), got number 1.5",
    });
  });

  test('inputs with different row counts are refused', () => {
    assert.throws(
      () =>
        decodeV1Request(
          {
            values: {
              a: [
                [1, 2],
                [3, 4],
              ],
              b: [[5]],
            },
          },
          MULTI_IO,
        ),
      {
        code: 'INVALID_INPUT',
        message: "input 'b' has 1 rows but the other inputs have 2",
        details: { input: 'b', expected: 2, got: 1 },
      },
    );
  });

  test('a missing input is named', () => {
    assert.throws(() => decodeV1Request({ values: { a: [1, 2] } }, MULTI_IO), { code: 'INVALID_INPUT', message: "input 'b' is missing" });
  });

  test('an unknown input is named with the real ones', () => {
    assert.throws(() => decodeV1Request({ values: { a: [1, 2], b: [1], c: [1] } }, MULTI_IO), {
      code: 'INVALID_INPUT',
      message: "the model has no input 'c' (inputs: a, b)",
      details: { input: 'c', expected: ['a', 'b'] },
    });
  });

  test('a bare list for a model with several inputs asks for the dict form', () => {
    assert.throws(() => decodeV1Request({ values: [1, 2, 3] }, MULTI_IO), {
      code: 'INVALID_INPUT',
      message: `the model has 2 inputs: send "values" as an object keyed by 'a', 'b'`,
    });
  });
});

describe('decodeV1Request: the body', () => {
  for (const [what, body] of [
    ['null', null],
    ['an array', [1, 2, 3, 4]],
    ['a string', '{"values": [1]}'],
  ] as const) {
    test(`${what} is INVALID_REQUEST`, () => {
      assert.throws(() => decodeV1Request(body, IRIS), { code: 'INVALID_REQUEST', message: 'the body must be a JSON object like {"values": [...]}' });
    });
  }

  test('no values field is INVALID_REQUEST', () => {
    assert.throws(() => decodeV1Request({ instances: [[1, 2, 3, 4]] }, IRIS), { code: 'INVALID_REQUEST', message: 'the body has no "values" field' });
  });
});

describe('encodeV1Response', () => {
  const outputs = (): NamedTensors => ({
    label: { type: 'int64', dims: [2], data: new BigInt64Array([2n, 0n]) },
    probabilities: { type: 'float32', dims: [2, 3], data: new Float32Array([7.750171e-11, 5.087454e-5, 0.9999491, 0.9999979, 2.191914e-6, 2.521057e-19]) },
  });
  const order = ['label', 'probabilities'];
  const status = '{"http_status":{"code":200,"description":"Request fulfilled, document follows","name":"OK"}';

  test('the first output as values, one entry per row', () => {
    const text = encodeV1Response(outputs(), order, { model: 'iris', version: 3 });
    assert.equal(text, `${status},"model_name":"iris","model_version":3,"values":[2,0]}`);
  });

  test('?outputs=all adds every output, float32 printed short', () => {
    const text = encodeV1Response(outputs(), order, { model: 'iris', version: 1, all: true });
    assert.equal(
      text,
      `${status},"model_name":"iris","model_version":1,"values":[2,0],` +
        '"outputs":{"label":[2,0],"probabilities":[[7.750171e-11,0.00005087454,0.9999491],[0.9999979,0.000002191914,2.521057e-19]]}}',
    );
    const parsed = JSON.parse(text);
    assert.deepEqual(parsed.outputs.label, [2, 0]);
    assert.equal(parsed.outputs.probabilities[0][2], 0.9999491);
  });

  test('a named output as values, and extra fields', () => {
    const text = encodeV1Response(outputs(), order, { model: 'iris', version: 2, output: 'probabilities', extra: { modelhost: 'mh-1' } });
    const parsed = JSON.parse(text);
    assert.equal(parsed.modelhost, 'mh-1');
    assert.deepEqual(parsed.values, [
      [7.750171e-11, 0.00005087454, 0.9999491],
      [0.9999979, 0.000002191914, 2.521057e-19],
    ]);
    assert.equal(parsed.outputs, undefined);
  });

  test('an unknown output is INVALID_REQUEST naming the real ones', () => {
    assert.throws(() => encodeV1Response(outputs(), order, { model: 'iris', version: 1, output: 'logits' }), {
      code: 'INVALID_REQUEST',
      message: "the model has no output 'logits' (outputs: label, probabilities)",
    });
  });

  test('int64 beyond 2^53 keeps every digit; NaN and Infinity travel as strings', () => {
    const text = encodeV1Response(
      {
        big: { type: 'int64', dims: [2, 1], data: new BigInt64Array([9007199254740993n, -9223372036854775808n]) },
        f: { type: 'float32', dims: [3], data: new Float32Array([Number.NaN, Infinity, -Infinity]) },
      },
      ['big', 'f'],
      { model: 'm', version: 1, all: true },
    );
    assert.match(text, /"values":\[9007199254740993,-9223372036854775808\]/);
    assert.match(text, /"f":\["NaN","Infinity","-Infinity"\]/);
  });

  test('Math.fround(0.1) prints as 0.1', () => {
    const text = encodeV1Response({ y: { type: 'float32', dims: [1, 1], data: new Float32Array([0.1]) } }, ['y'], { model: 'm', version: 1 });
    assert.ok(text.endsWith('"values":[0.1]}'), text);
  });
});

describe('tensor to JSON helpers', () => {
  test('rowsToJson: scalars for one-element rows, nested lists otherwise', () => {
    assert.equal(rowsToJson({ type: 'int32', dims: [3, 1], data: new Int32Array([1, 2, 3]) }), '[1,2,3]');
    assert.equal(rowsToJson({ type: 'int32', dims: [2, 2, 2], data: new Int32Array([1, 2, 3, 4, 5, 6, 7, 8]) }), '[[[1,2],[3,4]],[[5,6],[7,8]]]');
    assert.equal(rowsToJson({ type: 'float64', dims: [], data: new Float64Array([0.5]) }), '[0.5]');
  });

  test('tensorToNestedJson and flatToJson', () => {
    const t = { type: 'uint8' as const, dims: [2, 3], data: new Uint8Array([1, 2, 3, 4, 5, 6]) };
    assert.equal(tensorToNestedJson(t), '[[1,2,3],[4,5,6]]');
    assert.equal(flatToJson(t), '[1,2,3,4,5,6]');
    assert.equal(tensorToNestedJson({ type: 'float64', dims: [], data: new Float64Array([2.5]) }), '2.5');
  });

  test('elementToJson for bool, string and float16', () => {
    assert.equal(elementToJson({ type: 'bool', dims: [2], data: new Uint8Array([1, 0]) }, 0), 'true');
    assert.equal(elementToJson({ type: 'bool', dims: [2], data: new Uint8Array([1, 0]) }, 1), 'false');
    assert.equal(elementToJson({ type: 'string', dims: [1], data: ['say "hi"'] }, 0), '"say \\"hi\\""');
    assert.equal(elementToJson({ type: 'float16', dims: [2], data: new Uint16Array([floatToHalf(1.5), floatToHalf(0.1)]) }, 0), '1.5');
    assert.equal(elementToJson({ type: 'float16', dims: [2], data: new Uint16Array([floatToHalf(1.5), floatToHalf(0.1)]) }, 1), '0.0999755859375');
  });

  test('v1Envelope and v1IsKnownType', () => {
    assert.deepEqual(v1Envelope(404, { error: 'x' }), {
      http_status: { code: 404, description: 'Nothing matches the given URI', name: 'NOT_FOUND' },
      error: 'x',
    });
    assert.equal(v1IsKnownType('float16'), true);
    assert.equal(v1IsKnownType('complex64'), false);
  });
});
