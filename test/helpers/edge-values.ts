/** Test values for every tensor type, with the edges that break naive codecs (shared by the HTTP and gRPC corpus tests). */

/** `n` deterministic values of an ONNX element type (`float32`, `int64`, `string`, …), cycling through its edges. */
export function edgeValues(type: string, n: number): unknown[] {
  const pick = <T>(xs: T[]): T[] => Array.from({ length: n }, (_, i) => xs[i % xs.length]!);
  switch (type) {
    case 'bool':
      return pick([true, false, true]);
    case 'uint8':
      return pick([0, 255, 7]);
    case 'uint16':
      return pick([0, 65535, 300]);
    case 'uint32':
      return pick([0, 4294967295, 70000]);
    case 'uint64':
      return pick([0n, 18446744073709551615n, 9007199254740993n]);
    case 'int8':
      return pick([-128, 127, 0]);
    case 'int16':
      return pick([-32768, 32767, -1]);
    case 'int32':
      return pick([-2147483648, 2147483647, 42]);
    case 'int64':
      return pick([-9223372036854775808n, 9223372036854775807n, 9007199254740993n, -3n]);
    // FP16 as raw bits: 1.5, -2, 65504 (max), a subnormal, NaN, +Inf, -0.
    case 'float16':
      return pick([0x3e00, 0xc000, 0x7bff, 0x0001, 0x7e00, 0x7c00, 0x8000]);
    case 'float32':
      return pick([Math.fround(0.1), -2.5, NaN, Infinity, -Infinity, -0, Math.fround(1e-40), Math.fround(3.4e38)]);
    case 'float64':
      return pick([0.1, 1e300, -0, NaN, -Infinity, 5e-324, 123456789.12345679]);
    case 'string':
      return pick(['', 'héllo', 'a"b\\c', '🙂 emoji', 'x'.repeat(40)]);
    default:
      throw new Error(type);
  }
}
