import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { float32ToJson, floatToHalf, floatToJson, halfToFloat } from '@inferrer/core';

describe('floatToJson', () => {
  test('finite numbers as JSON numbers, the rest as strings', () => {
    assert.equal(floatToJson(1.5), '1.5');
    assert.equal(floatToJson(-0.25), '-0.25');
    assert.equal(floatToJson(Number.NaN), '"NaN"');
    assert.equal(floatToJson(Infinity), '"Infinity"');
    assert.equal(floatToJson(-Infinity), '"-Infinity"');
  });
});

describe('float32ToJson', () => {
  test('prints the shortest decimal that reads back as the same float32', () => {
    assert.equal(float32ToJson(Math.fround(0.1)), '0.1');
    assert.equal(float32ToJson(Math.fround(0.2)), '0.2');
    assert.equal(float32ToJson(Math.fround(1 / 3)), '0.33333334');
    assert.equal(float32ToJson(Math.fround(0.9999491)), '0.9999491');
    assert.equal(float32ToJson(Math.fround(7.750171e-11)), '7.750171e-11');
    assert.equal(float32ToJson(Math.fround(123.456)), '123.456');
  });

  test('large integer-valued floats are shortest too, not their float64 expansion', () => {
    // float32 max; its float64 expansion is 3.4028234663852886e+38.
    assert.equal(float32ToJson(Math.fround(3.4028234663852886e38)), '3.4028235e+38');
    // Math.fround(1e20) is 100000002004087734272; the shortest float32 decimal is 1e20.
    assert.equal(float32ToJson(Math.fround(1e20)), '100000000000000000000');
    assert.equal(float32ToJson(Math.fround(16777217)), '16777216');
  });

  test('integers and zero print as integers', () => {
    assert.equal(float32ToJson(0), '0');
    assert.equal(float32ToJson(2), '2');
    assert.equal(float32ToJson(-16777216), '-16777216');
  });

  test('non-finite values travel as strings', () => {
    assert.equal(float32ToJson(Number.NaN), '"NaN"');
    assert.equal(float32ToJson(-Infinity), '"-Infinity"');
  });

  test('every printed value reads back as the same float32', () => {
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    // A spread of bit patterns across exponents (finite, non-zero).
    for (let bits = 0x00800001; bits < 0x7f000000; bits += 0x00fedcb9) {
      u[0] = bits;
      const v = f[0]!;
      const text = float32ToJson(v);
      assert.equal(Math.fround(Number(text)), v, `${text} for bits ${bits.toString(16)}`);
      const digits = text.replace(/^-|e.*$|\./g, '').replace(/^0+|0+$/g, '');
      assert.ok(digits.length <= 9, `${text} has ${digits.length} significant digits`);
    }
  });
});

describe('float16 (floatToHalf / halfToFloat)', () => {
  const exact: [number, number][] = [
    [0, 0x0000],
    [1, 0x3c00],
    [-2, 0xc000],
    [0.5, 0x3800],
    [65504, 0x7bff],
    [2 ** -14, 0x0400],
    [2 ** -24, 0x0001],
    [-(2 ** -24), 0x8001],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
  ];
  for (const [value, bits] of exact) {
    test(`${value} ↔ 0x${bits.toString(16).padStart(4, '0')}`, () => {
      assert.equal(floatToHalf(value), bits);
      assert.equal(halfToFloat(bits), value);
    });
  }

  test('rounds to the nearest half, ties to even', () => {
    assert.equal(floatToHalf(0.1), 0x2e66);
    assert.equal(halfToFloat(0x2e66), 0.0999755859375);
    // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to the even mantissa (1).
    assert.equal(floatToHalf(1 + 2 ** -11), 0x3c00);
    // 1 + 3·2^-11 is halfway between 1 + 2^-10 (odd) and 1 + 2^-9: goes up to the even one.
    assert.equal(floatToHalf(1 + 3 * 2 ** -11), 0x3c02);
    // Halfway between 65504 and the next step overflows to Infinity.
    assert.equal(floatToHalf(65520), 0x7c00);
    assert.equal(floatToHalf(1e6), 0x7c00);
    // Below half the smallest subnormal: signed zero.
    assert.equal(floatToHalf(2 ** -26), 0x0000);
    assert.equal(floatToHalf(-(2 ** -26)), 0x8000);
    // Exactly half the smallest subnormal ties to even (zero); a bit more rounds up.
    assert.equal(floatToHalf(2 ** -25), 0x0000);
    assert.equal(floatToHalf(1.5 * 2 ** -25), 0x0001);
  });

  test('NaN stays NaN', () => {
    assert.equal(floatToHalf(Number.NaN) & 0x7c00, 0x7c00);
    assert.notEqual(floatToHalf(Number.NaN) & 0x03ff, 0);
    assert.ok(Number.isNaN(halfToFloat(0x7e00)));
    assert.ok(Number.isNaN(halfToFloat(floatToHalf(Number.NaN))));
  });

  test('negative zero keeps its sign bit', () => {
    assert.equal(floatToHalf(-0), 0x8000);
    assert.ok(Object.is(halfToFloat(0x8000), -0));
  });

  test('every finite half round-trips through a number', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      if ((bits & 0x7c00) === 0x7c00) continue; // Infinity and NaN
      assert.equal(floatToHalf(halfToFloat(bits)), bits, `bits 0x${bits.toString(16)}`);
    }
  });
});
