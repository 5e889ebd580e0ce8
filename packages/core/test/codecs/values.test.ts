import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_VALUE_LIMITS, floatToHalf, nestedShape, toTypedData } from '@inferrer/core';

describe('nestedShape', () => {
  test('measures scalars, lists and nested lists', () => {
    assert.deepEqual(nestedShape(5, 'x'), []);
    assert.deepEqual(nestedShape([1, 2, 3], 'x'), [3]);
    assert.deepEqual(
      nestedShape(
        [
          [1, 2],
          [3, 4],
          [5, 6],
        ],
        'x',
      ),
      [3, 2],
    );
    assert.deepEqual(nestedShape([[[1]], [[2]]], 'x'), [2, 1, 1]);
    assert.deepEqual(nestedShape([], 'x'), [0]);
  });

  test('a short row is ragged, at its path', () => {
    assert.throws(
      () =>
        nestedShape(
          [
            [1, 2, 3, 4],
            [1, 2, 3],
          ],
          'input',
        ),
      {
        code: 'INVALID_INPUT',
        message: "input 'input' is not rectangular: at [1] expected 4 elements, got 3",
        details: { input: 'input', path: '[1]', expected: '4 elements', got: '3' },
      },
    );
  });

  test('a value where a row belongs is ragged', () => {
    assert.throws(() => nestedShape([[1, 2], 3], 'a'), {
      code: 'INVALID_INPUT',
      message: "input 'a' is not rectangular: at [1] expected an array of 2, got a value",
    });
  });

  test('a list where a value belongs is ragged, deep inside', () => {
    assert.throws(
      () =>
        nestedShape(
          [
            [1, 2],
            [3, [4]],
          ],
          'a',
        ),
      {
        code: 'INVALID_INPUT',
        message: "input 'a' is not rectangular: at [1][1] expected a value, got an array",
      },
    );
  });

  test('refuses nesting deeper than maxDepth', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 5; i++) deep = [deep];
    assert.deepEqual(nestedShape(deep, 'x', { ...DEFAULT_VALUE_LIMITS, maxDepth: 5 }), [1, 1, 1, 1, 1]);
    assert.throws(() => nestedShape([deep], 'x', { ...DEFAULT_VALUE_LIMITS, maxDepth: 5 }), {
      code: 'INVALID_INPUT',
      message: "input 'x' is nested deeper than 5 levels",
    });
  });
});

describe('toTypedData', () => {
  test('float32 from nested numbers, row-major', () => {
    const d = toTypedData(
      [
        [1, 2.5],
        [-3, 4],
      ],
      'float32',
      'x',
      4,
    );
    assert.ok(d instanceof Float32Array);
    assert.deepEqual(Array.from(d as Float32Array), [1, 2.5, -3, 4]);
  });

  test('floats accept "NaN", "Infinity", "+Infinity" and "-Infinity"', () => {
    const d = toTypedData(['NaN', 'Infinity', '+Infinity', '-Infinity', 1], 'float64', 'x', 5) as Float64Array;
    assert.ok(Number.isNaN(d[0]));
    assert.deepEqual(Array.from(d.subarray(1)), [Infinity, Infinity, -Infinity, 1]);
    const f = toTypedData(['NaN', '-Infinity'], 'float32', 'x', 2) as Float32Array;
    assert.ok(Number.isNaN(f[0]));
    assert.equal(f[1], -Infinity);
  });

  test('other strings for a float are refused, naming input, index and value', () => {
    assert.throws(() => toTypedData([1, 'nan'], 'float32', 'input', 2), {
      code: 'INVALID_INPUT',
      message: `input 'input' element 1: expected a number, got the string "nan"`,
      details: { input: 'input', index: 1, expected: 'a number', got: 'the string "nan"' },
    });
  });

  test('non-numeric values for a float are refused', () => {
    assert.throws(() => toTypedData([null], 'float32', 'x', 1), { message: "input 'x' element 0: expected a number, got null" });
    assert.throws(() => toTypedData([true], 'float32', 'x', 1), { message: "input 'x' element 0: expected a number, got boolean true" });
    assert.throws(() => toTypedData([{}], 'float32', 'x', 1), { message: "input 'x' element 0: expected a number, got an object" });
  });

  test('float16 is stored as half bits', () => {
    const d = toTypedData([1, -2, 0.1], 'float16', 'h', 3);
    assert.ok(d instanceof Uint16Array);
    assert.deepEqual(Array.from(d as Uint16Array), [0x3c00, 0xc000, floatToHalf(0.1)]);
  });

  test('int64 takes numbers and decimal strings; a big value as a string survives exactly', () => {
    const d = toTypedData([1, '-2', '9007199254740993', '9223372036854775807', '-9223372036854775808'], 'int64', 'b', 5);
    assert.ok(d instanceof BigInt64Array);
    assert.deepEqual(Array.from(d as BigInt64Array), [1n, -2n, 9007199254740993n, 9223372036854775807n, -9223372036854775808n]);
  });

  test('int64 refuses a non-integer', () => {
    assert.throws(() => toTypedData([1.5], 'int64', 'b', 1), {
      code: 'INVALID_INPUT',
      message: "input 'b' element 0: expected an integer (INT64), got number 1.5",
    });
    assert.throws(() => toTypedData(['1.5'], 'int64', 'b', 1), { message: `input 'b' element 0: expected an integer (INT64), got the string "1.5"` });
  });

  test('int64 refuses values past 2^63-1', () => {
    assert.throws(() => toTypedData(['9223372036854775808'], 'int64', 'b', 1), {
      code: 'INVALID_INPUT',
      message: "input 'b' element 0: 9223372036854775808 is out of range for INT64 [-9223372036854775808, 9223372036854775807]",
    });
  });

  test('uint64 refuses negatives and keeps 2^64-1', () => {
    const d = toTypedData(['18446744073709551615'], 'uint64', 'u', 1) as BigUint64Array;
    assert.equal(d[0], 18446744073709551615n);
    assert.throws(() => toTypedData([-1], 'uint64', 'u', 1), { message: "input 'u' element 0: -1 is out of range for UINT64 [0, 18446744073709551615]" });
  });

  test('int8 refuses 128 and -129 and keeps the bounds', () => {
    assert.deepEqual(Array.from(toTypedData([-128, 0, 127], 'int8', 'q', 3) as Int8Array), [-128, 0, 127]);
    assert.throws(() => toTypedData([1, 128], 'int8', 'q', 2), {
      code: 'INVALID_INPUT',
      message: "input 'q' element 1: 128 is out of range for INT8 [-128, 127]",
      details: { input: 'q', index: 1, expected: 'INT8 in [-128, 127]', got: '128' },
    });
    assert.throws(() => toTypedData([-129], 'int8', 'q', 1), { message: "input 'q' element 0: -129 is out of range for INT8 [-128, 127]" });
  });

  test('int32 refuses a float and a numeric string', () => {
    assert.throws(() => toTypedData([2.5], 'int32', 'i', 1), { message: "input 'i' element 0: expected an integer (INT32), got number 2.5" });
    assert.throws(() => toTypedData(['3'], 'int32', 'i', 1), { message: `input 'i' element 0: expected an integer (INT32), got the string "3"` });
  });

  test('bool takes true/false and 0/1 only', () => {
    assert.deepEqual(Array.from(toTypedData([true, false, 1, 0], 'bool', 'm', 4) as Uint8Array), [1, 0, 1, 0]);
    assert.throws(() => toTypedData([2], 'bool', 'm', 1), { message: "input 'm' element 0: expected a boolean, got number 2" });
  });

  test('string tensors take strings only, up to maxStringBytes', () => {
    assert.deepEqual(toTypedData(['a', 'bc'], 'string', 's', 2), ['a', 'bc']);
    assert.throws(() => toTypedData(['a', 3], 'string', 's', 2), { message: "input 's' element 1: expected a string, got number 3" });
    const limits = { ...DEFAULT_VALUE_LIMITS, maxStringBytes: 4 };
    assert.deepEqual(toTypedData(['abcd'], 'string', 's', 1, limits), ['abcd']);
    // 'ééé' is 3 characters but 6 bytes.
    assert.throws(() => toTypedData(['ééé'], 'string', 's', 1, limits), { message: "input 's' element 0 is longer than 4 bytes" });
  });

  test('refuses more elements than maxElements before converting', () => {
    const limits = { ...DEFAULT_VALUE_LIMITS, maxElements: 3 };
    assert.throws(() => toTypedData([1, 2, 3, 4], 'float32', 'x', 4, limits), {
      code: 'INVALID_INPUT',
      message: "input 'x' has 4 elements, more than the limit of 3",
      details: { input: 'x', limit: 3, got: 4 },
    });
  });

  test('an unknown type is refused', () => {
    assert.throws(() => toTypedData([1], 'complex64' as never, 'x', 1), { message: "input 'x' has type complex64, which Inferrer cannot carry" });
  });
});

describe('toTypedData: values out of range for the datatype', () => {
  test('a number too large for FP32 or FP64 is refused, naming input and flat index', () => {
    // JSON.parse reads 1e400 as Infinity; only the strings "Infinity"/"-Infinity" ask for an infinity.
    const huge = JSON.parse('[1, 2, 1e400]') as number[];
    for (const type of ['float32', 'float64'] as const) {
      assert.throws(() => toTypedData([huge], type, 'x', 3), {
        code: 'INVALID_INPUT',
        message: new RegExp(`^input 'x' element 2: a number beyond 1.8e308 is out of range for ${type === 'float32' ? 'FP32' : 'FP64'} \\[`),
      });
    }
    assert.throws(() => toTypedData([0, -1e39], 'float32', 'x', 2), {
      message: /^input 'x' element 1: -1e\+39 is out of range for FP32 \[-3.4028234663852886e\+38, 3.4028234663852886e\+38\]$/,
    });
    assert.equal((toTypedData([-1e39], 'float64', 'x', 1) as Float64Array)[0], -1e39);
    // A value that rounds to the largest float32 is in range; one that underflows to 0 is only rounded.
    assert.equal((toTypedData([3.4028235e38, 1e-50], 'float32', 'x', 2) as Float32Array)[0], 3.4028234663852886e38);
    assert.deepEqual(Array.from(toTypedData(['Infinity', '-Infinity'], 'float32', 'x', 2) as Float32Array), [Infinity, -Infinity]);
  });

  test('a long integer literal (bigint from the lossless parse) in a float tensor is refused when it overflows', () => {
    assert.equal((toTypedData([12345678901234567890n], 'float64', 'x', 1) as Float64Array)[0], 12345678901234567000);
    assert.throws(() => toTypedData([10n ** 300n], 'float32', 'x', 1), {
      code: 'INVALID_INPUT',
      message: /^input 'x' element 0: 10000000000000000000…\(301 characters\) is out of range for FP32/,
    });
    assert.throws(() => toTypedData([10n ** 400n], 'float64', 'x', 1), { message: /out of range for FP64/ });
  });

  test('FP16 refuses numbers that would become infinite, and keeps 65504', () => {
    assert.deepEqual(Array.from(toTypedData([65504, -65504], 'float16', 'h', 2) as Uint16Array), [0x7bff, 0xfbff]);
    assert.throws(() => toTypedData([1, 70000], 'float16', 'h', 2), {
      code: 'INVALID_INPUT',
      message: "input 'h' element 1: 70000 is out of range for FP16 [-65504, 65504]",
    });
    assert.throws(() => toTypedData([JSON.parse('-1e400')], 'float16', 'h', 1), { message: /element 0: a number beyond -1.8e308 is out of range for FP16/ });
    assert.equal((toTypedData(['Infinity'], 'float16', 'h', 1) as Uint16Array)[0], 0x7c00);
  });

  test('integers of every width refuse what they cannot hold, also as bigint or 1e400', () => {
    const cases: [Parameters<typeof toTypedData>[1], unknown][] = [
      ['int8', -129],
      ['uint8', 256],
      ['int16', 32768],
      ['uint16', -1],
      ['int32', 2147483648],
      ['uint32', 4294967296],
      ['int32', 10n ** 20n],
      ['uint8', JSON.parse('1e400')],
      ['int64', 9223372036854775808n],
      ['uint64', 18446744073709551616n],
      ['int64', '9'.repeat(300)],
      ['int64', JSON.parse('1e400')],
      ['uint64', JSON.parse('-1e400')],
    ];
    for (const [type, v] of cases)
      assert.throws(
        () => toTypedData([0, v], type, 'n', 2),
        { code: 'INVALID_INPUT', message: /^input 'n' element 1: .* is out of range for [A-Z0-9]+ \[/ },
        `${type} ${String(v)}`,
      );
    // A 300-digit value is shortened in the message.
    assert.throws(() => toTypedData([10n ** 299n], 'int64', 'n', 1), {
      message: "input 'n' element 0: 10000000000000000000…(300 characters) is out of range for INT64 [-9223372036854775808, 9223372036854775807]",
    });
  });
});

describe('toTypedData: BYTES elements the runtime cannot carry', () => {
  test('a NUL character is refused, naming input and element', () => {
    assert.throws(() => toTypedData(['ok', 'a\u0000b'], 'string', 's', 2), {
      code: 'INVALID_INPUT',
      message: "input 's' element 1: a BYTES element holds a NUL byte (U+0000); BYTES elements of string tensors must be UTF-8 text without NUL bytes",
      details: { input: 's', index: 1, expected: 'UTF-8 text without NUL bytes' },
    });
  });

  test('an unpaired surrogate (no UTF-8 form) is refused; paired ones are text', () => {
    assert.throws(() => toTypedData(['\ud800'], 'string', 's', 1), {
      code: 'INVALID_INPUT',
      message: /^input 's' element 0: a BYTES element holds an unpaired surrogate/,
    });
    assert.throws(() => toTypedData(['x\udc00y'], 'string', 's', 1), { code: 'INVALID_INPUT' });
    assert.deepEqual(toTypedData(['😀', 'é'], 'string', 's', 2), ['😀', 'é']);
  });
});

describe('nestedShape: the rank bounds the nesting', () => {
  test('lists nested deeper than the rank are refused by the rank, measured without recursion', () => {
    assert.deepEqual(nestedShape([[1, 2]], 'x', DEFAULT_VALUE_LIMITS, 2), [1, 2]);
    assert.throws(() => nestedShape([[[1, 2]]], 'x', DEFAULT_VALUE_LIMITS, 2), {
      code: 'INVALID_INPUT',
      message: "input 'x' nests lists deeper than its rank allows (at most 2 levels)",
      details: { input: 'x', limit: 2 },
    });
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    assert.throws(() => nestedShape(deep, 'x', DEFAULT_VALUE_LIMITS, 1), { message: "input 'x' nests lists deeper than its rank allows (at most 1 level)" });
    assert.throws(() => nestedShape(deep, 'x'), { message: "input 'x' is nested deeper than 32 levels" });
  });
});
