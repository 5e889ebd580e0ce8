import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ModelSignature, type InferrerError, decodeV1Body, decodeV2Request } from '@inferrer/core';
import { MIN_PACKED_ELEMENTS, packJsonArrays } from '../../src/codecs/json-tensor.ts';

const sig = (type: string, row: number): ModelSignature =>
  ({ inputs: [{ name: 'x', type, shape: ['batch', row] }], outputs: [{ name: 'y', type, shape: ['batch', row] }] }) as ModelSignature;

/** A v2 body with the numbers written as given (text, so every form of number can be sent). */
function v2(numbers: string[], datatype = 'FP32', shape = [1, numbers.length]): Buffer {
  return Buffer.from(`{"inputs":[{"name":"x","shape":${JSON.stringify(shape)},"datatype":"${datatype}","data":[${numbers.join(',')}]}]}`);
}

/** What the JSON.parse path gives for these numbers as float32 / float64. */
const viaJsonParse = (numbers: string[], Ctor: Float32ArrayConstructor | Float64ArrayConstructor) =>
  Ctor.from(JSON.parse(`[${numbers.join(',')}]`) as number[]);

function rejection(fn: () => unknown): InferrerError {
  try {
    fn();
  } catch (err) {
    return err as InferrerError;
  }
  assert.fail('expected an error');
}

/** Numbers of every form a client writes: numpy float32 expansions, fixed, exponents, integers, zeros. */
function numbersOfEveryForm(n: number): string[] {
  let seed = 7;
  const rnd = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const x = (rnd() - 0.5) * 10 ** Math.floor(rnd() * 60 - 30);
    const k = i % 8;
    const p = Math.floor(rnd() * 17);
    out.push(
      k === 0
        ? String(Math.fround(x))
        : k === 1
          ? x.toExponential(p)
          : k === 2
            ? x.toFixed(p)
            : k === 3
              ? String(x)
              : k === 4
                ? String(Math.round(x * 1000))
                : k === 5
                  ? x.toPrecision(p + 1)
                  : k === 6
                    ? `${x < 0 ? '-' : ''}0.${'0'.repeat(p)}${Math.floor(rnd() * 1e9)}`
                    : (-x).toExponential(p).toUpperCase(),
    );
  }
  out.push(
    '0',
    '-0',
    '0.0',
    '-0.0',
    '1e-50',
    '-1e-46',
    '3.4028234e38',
    '1.401298464324817e-45',
    '123456789012345678901234',
    '0.000000000000000000000000000001',
  );
  return out;
}

describe('numeric JSON arrays parsed from the bytes', () => {
  test('FP32 values are exactly those of JSON.parse then Float32Array, for numbers of every form', () => {
    const numbers = numbersOfEveryForm(20_000);
    assert.ok(packJsonArrays(v2(numbers), v2(numbers).length, ['data'], 'float32'), 'every number is parsed from the bytes');
    const got = decodeV2Request(v2(numbers), undefined, sig('float32', numbers.length)).inputs.x!.data as Float32Array;
    const want = viaJsonParse(numbers, Float32Array);
    assert.equal(got.length, want.length);
    for (let i = 0; i < want.length; i++) assert.ok(Object.is(got[i], want[i]), `${numbers[i]}: got ${got[i]}, JSON.parse gives ${want[i]}`);
  });

  test('FP64 values are exactly those of JSON.parse (numbers it cannot convert exactly leave the list to JSON.parse)', () => {
    const numbers = numbersOfEveryForm(5_000);
    const got = decodeV2Request(v2(numbers, 'FP64'), undefined, sig('float64', numbers.length)).inputs.x!.data as Float64Array;
    const want = viaJsonParse(numbers, Float64Array);
    for (let i = 0; i < want.length; i++) assert.ok(Object.is(got[i], want[i]), `${numbers[i]}: got ${got[i]}, JSON.parse gives ${want[i]}`);
    const short = Array.from({ length: 1000 }, (_, i) => String((i - 500) / 8));
    assert.ok(packJsonArrays(v2(short, 'FP64'), v2(short, 'FP64').length, ['data'], 'exact'), 'short decimals are parsed from the bytes');
  });

  test('integer tensors and nested lists: the shape is the nesting, the values exact; 16-digit integers stay exact (INT64)', () => {
    const rows = Array.from({ length: 4 }, (_, r) => Array.from({ length: 50 }, (_, i) => r * 1000 - i));
    const body = Buffer.from(JSON.stringify({ inputs: [{ name: 'x', shape: [4, 50], datatype: 'INT32', data: rows }] }));
    const t = decodeV2Request(body, undefined, sig('int32', 50)).inputs.x!;
    assert.deepEqual(t.dims, [4, 50]);
    assert.deepEqual([...(t.data as Int32Array)], rows.flat());
    const big = Array.from({ length: 100 }, (_, i) => String(9007199254740993n + BigInt(i)));
    const t64 = decodeV2Request(v2(big, 'INT64'), undefined, sig('int64', 100)).inputs.x!;
    assert.deepEqual([...(t64.data as BigInt64Array)], big.map(BigInt));
  });

  test('FRACTAL v1 bodies: a row, rows, and several inputs by name', () => {
    const row = Array.from({ length: 300 }, (_, i) => Math.fround(Math.sin(i)));
    const one = decodeV1Body(Buffer.from(JSON.stringify({ values: row })), sig('float32', 300));
    assert.deepEqual([...(one.inputs.x!.data as Float32Array)], row);
    assert.equal(one.singleRow, true);
    const two = decodeV1Body(Buffer.from(JSON.stringify({ values: [row, row] })), sig('float32', 300));
    assert.deepEqual(two.inputs.x!.dims, [2, 300]);
    const multi: ModelSignature = {
      inputs: [
        { name: 'a', type: 'float32', shape: ['batch', 300] },
        { name: 'b', type: 'int64', shape: ['batch', 2] },
      ],
      outputs: [],
    } as unknown as ModelSignature;
    const both = decodeV1Body(Buffer.from(JSON.stringify({ values: { a: row, b: [1, 2] }, pad: 'x'.repeat(9000) })), multi);
    assert.deepEqual([...(both.inputs.a!.data as Float32Array)], row);
    assert.deepEqual([...(both.inputs.b!.data as BigInt64Array)], [1n, 2n]);
  });

  test('what the byte parser does not take is read and refused exactly as before', () => {
    const many = (s: string, at = 100): string[] => Array.from({ length: 200 }, (_, i) => (i === at ? s : String(i / 4)));
    const f32 = sig('float32', 200);
    // NaN and Infinity as strings (and bare, as Python writes them) are accepted by the ordinary path.
    assert.ok(Number.isNaN((decodeV2Request(v2(many('"NaN"')), undefined, f32).inputs.x!.data as Float32Array)[100]));
    assert.equal((decodeV2Request(v2(many('Infinity')), undefined, f32).inputs.x!.data as Float32Array)[100], Infinity);
    const cases: [string, string][] = [
      ['1e39', 'is out of range for FP32'],
      ['1e400', 'is out of range for FP32'],
      ['true', 'expected a number'],
      ['null', 'expected a number'],
      ['"1"', 'expected a number'],
      ['[1]', 'not rectangular'],
    ];
    for (const [bad, says] of cases) {
      const e = rejection(() => decodeV2Request(v2(many(bad)), undefined, f32));
      assert.equal(e.code, 'INVALID_INPUT', bad);
      assert.match(e.message, new RegExp(says.replace(/[[\]]/g, '\\$&')), bad);
    }
    for (const broken of ['01', '1.', '.5', '+1', '1e', '-', '0x10', '1,,2']) {
      const e = rejection(() => decodeV2Request(v2(many(broken)), undefined, f32));
      assert.equal(e.code, 'INVALID_JSON', broken);
    }
    // A ragged list, and a list nested deeper than the rank: the same messages as ever.
    const ragged = Buffer.from(JSON.stringify({ inputs: [{ name: 'x', shape: [2, 100], datatype: 'FP32', data: [Array(100).fill(1), Array(99).fill(1)] }] }));
    assert.match(rejection(() => decodeV2Request(ragged, undefined, sig('float32', 100))).message, /not rectangular/);
    const deep = Buffer.from(JSON.stringify({ inputs: [{ name: 'x', shape: [1, 100], datatype: 'FP32', data: [[Array(100).fill(1)]] }] }));
    assert.match(rejection(() => decodeV2Request(deep, undefined, sig('float32', 100))).message, /deeper than its rank/);
    // Trailing text after the JSON: the error is the whole text's.
    const trailing = Buffer.concat([v2(many('1')), Buffer.from('garbage')]);
    assert.equal(rejection(() => decodeV2Request(trailing, undefined, f32)).code, 'INVALID_JSON');
  });

  test("a client cannot point one input at another input's list with a marker-like string", () => {
    const numbers = Array.from({ length: 200 }, (_, i) => String(i));
    const packed = packJsonArrays(v2(numbers), v2(numbers).length, ['data'], 'float32')!;
    const marker = /"(\\u0000[^"]*)"/.exec(packed.skeleton)![1]!;
    const two: ModelSignature = {
      inputs: ['a', 'b'].map((name) => ({ name, type: 'float32', shape: ['batch', 200] })),
      outputs: [],
    } as unknown as ModelSignature;
    const body = Buffer.from(
      `{"inputs":[{"name":"a","shape":[1,200],"datatype":"FP32","data":[${numbers.join(',')}]},{"name":"b","shape":[1,200],"datatype":"FP32","data":"${marker.replace(/#\d+$/, '#0')}"}]}`,
    );
    assert.match(rejection(() => decodeV2Request(body, undefined, two)).message, /input 'b' has shape \[1, 200\] \(200 elements\) but its data holds 1$/);
  });

  test('lists shorter than MIN_PACKED_ELEMENTS, strings and lists under other keys stay in the text', () => {
    const short = Array.from({ length: MIN_PACKED_ELEMENTS - 1 }, (_, i) => String(i));
    const body = Buffer.from(
      `{"data":[${short.join(',')}],"other":[${Array(500).fill(1).join(',')}],"s":"\\"data\\":[1,2]","data2":[${Array(500).fill(1).join(',')}]}`,
    );
    assert.equal(packJsonArrays(body, body.length, ['data'], 'float32'), undefined);
    const strings = Buffer.from(`{"data":[${Array(500).fill('"a"').join(',')}]}`);
    assert.equal(packJsonArrays(strings, strings.length, ['data'], 'float32'), undefined);
  });

  test('the binary extension: only the JSON header is scanned', () => {
    const numbers = Array.from({ length: 300 }, (_, i) => String(i / 2));
    const header = Buffer.from(
      `{"inputs":[{"name":"x","shape":[1,300],"datatype":"FP32","data":[${numbers.join(',')}]},{"name":"z","shape":[1,2],"datatype":"FP32","parameters":{"binary_data_size":8}}]}`,
    );
    const two: ModelSignature = {
      inputs: [
        { name: 'x', type: 'float32', shape: ['batch', 300] },
        { name: 'z', type: 'float32', shape: ['batch', 2] },
      ],
      outputs: [],
    } as unknown as ModelSignature;
    const raw = Buffer.from(new Float32Array([1.5, 2.5]).buffer);
    const d = decodeV2Request(Buffer.concat([header, raw]), header.length, two);
    assert.deepEqual([...(d.inputs.x!.data as Float32Array)], numbers.map(Number));
    assert.deepEqual([...(d.inputs.z!.data as Float32Array)], [1.5, 2.5]);
  });
});
