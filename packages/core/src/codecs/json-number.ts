/**
 * Writing tensor elements as JSON text. Floats that JSON cannot carry (NaN, ±Infinity) travel as the
 * strings "NaN", "Infinity" and "-Infinity"; 64-bit integers are written as exact digits, never rounded
 * through a double.
 */

export function floatToJson(v: number): string {
  if (Object.is(v, -0)) return '-0.0';
  if (Number.isFinite(v)) return String(v);
  if (Number.isNaN(v)) return '"NaN"';
  return v > 0 ? '"Infinity"' : '"-Infinity"';
}

/**
 * The shortest decimal that reads back as the same float32 (what numpy prints), instead of the float64
 * expansion (0.1f is "0.1", not "0.10000000149011612").
 */
export function float32ToJson(v: number): string {
  if (!Number.isFinite(v) || Object.is(v, -0)) return floatToJson(v);
  // Integers up to 2^24 are exact and already shortest; larger ones need rounding like any other value.
  if (v === 0 || (Number.isInteger(v) && Math.abs(v) <= 16_777_216)) return String(v);
  for (let p = 6; p < 9; p++) {
    const s = Number(v.toPrecision(p));
    if (Math.fround(s) === v) return String(s);
  }
  return String(Number(v.toPrecision(9)));
}

/** Decodes IEEE 754 half-precision bits to a number. */
export function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Encodes a number to IEEE 754 half-precision bits (round to nearest even). */
export function floatToHalf(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}
