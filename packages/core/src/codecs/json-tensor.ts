/**
 * Large numeric arrays in request JSON, parsed straight from the body's bytes into typed arrays.
 *
 * A 224×224 image as JSON is 150,528 numbers in 1–3 MB of text. JSON.parse turns every one into a
 * JavaScript number inside nested arrays, and the decoder then copies them into a Float32Array: most of a
 * ResNet-50 request's serving cost. Here the body is scanned once: an array of plain numbers that is the
 * value of a tensor key ("data" in the Open Inference Protocol, "values" and input names in FRACTAL v1) is
 * parsed in place into a typed array, checked to be rectangular, and cut out of the text; what is left (the
 * request's small skeleton) goes through parseInferenceJson as before, with a marker where each array was.
 *
 * The values are exactly those the JSON.parse path produces: a number with at most 15 significant digits
 * and a small exponent is converted exactly (one correctly rounded operation on exact operands, Clinger's
 * fast path); for a float32 tensor, a longer one (17-digit float64 expansions of float32 values, as numpy
 * writes them) is approximated to a few units in the last place and kept when every double that close
 * rounds to the same float32, else converted by Number() from its text. Anything this parser does not take
 * (strings, NaN, booleans, nulls, ragged or empty lists, integers too long for a double, values out of
 * the type's range, text that is not JSON) leaves that array in the text, where the ordinary path reads it
 * and reports what is wrong exactly as before.
 */

/** How numbers are stored: float32 (every numeric input of the model is FP32), or exact doubles. */
export type PackMode = 'float32' | 'exact';

/** A numeric JSON array parsed into a typed array: its values in row-major order and its nested shape. */
export class PackedArray {
  readonly data: Float32Array | Float64Array;
  readonly dims: number[];

  constructor(data: Float32Array | Float64Array, dims: number[]) {
    this.data = data;
    this.dims = dims;
  }
}

/** The arrays cut out of one body, taken back by the marker the skeleton holds in their place. */
export class PackedArrays {
  readonly #prefix: string;
  readonly #arrays: (PackedArray | undefined)[];

  constructor(prefix: string, arrays: PackedArray[]) {
    this.#prefix = prefix;
    this.#arrays = arrays;
  }

  /** The array a marker stands for (each once), or the value itself when it is not a marker. */
  take(value: unknown): unknown {
    if (typeof value !== 'string' || !value.startsWith(this.#prefix)) return value;
    const i = Number(value.slice(this.#prefix.length));
    const a = this.#arrays[i];
    if (!a) return value;
    this.#arrays[i] = undefined;
    return a;
  }
}

export interface PackedJson {
  /** The text with each cut array replaced by a marker (a string parseInferenceJson reads as usual). */
  skeleton: string;
  arrays: PackedArrays;
}

/** Arrays shorter than this stay in the text (JSON.parse is as quick for them). */
export const MIN_PACKED_ELEMENTS = 64;
/** Deepest nesting a packed array may have (deeper ones stay in the text, where the usual limits apply). */
const MAX_NEST = 32;

const P10: number[] = Array.from({ length: 309 }, (_, k) => Number(`1e${k}`));

const EMPTY = new Float64Array(0);

let markers = 0;

/**
 * Scans JSON text bytes [0, end) and cuts out every array of at least MIN_PACKED_ELEMENTS plain numbers
 * that is the value of one of `keys`. Returns undefined when nothing was cut (the caller parses as usual).
 * `hint` is the expected element count of one array (the model's elements per row), to size the first buffer.
 */
export function packJsonArrays(bytes: Uint8Array, end: number, keys: readonly string[], mode: PackMode, hint = 1024): PackedJson | undefined {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const keyBytes = keys.map((k) => Buffer.from(k, 'utf8'));
  const prefix = `\u0000packed-${process.pid}-${++markers}-${Math.random().toString(36).slice(2)}#`;
  const marker = JSON.stringify(prefix);
  const arrays: PackedArray[] = [];
  const parts: string[] = [];
  let last = 0;
  let i = 0;
  while (i < end) {
    // Structure outside strings has no quotes: jump from string to string.
    const s = buf.indexOf(0x22, i);
    if (s < 0 || s >= end) break;
    let e = s + 1;
    for (;;) {
      e = buf.indexOf(0x22, e);
      if (e < 0 || e >= end) return finish();
      let slashes = 0;
      while (buf[e - 1 - slashes] === 0x5c) slashes++;
      if (slashes % 2 === 0) break;
      e++;
    }
    i = e + 1;
    if (!isKey(buf, s + 1, e, keyBytes)) continue;
    let k = skipSpace(buf, i, end);
    if (buf[k] !== 0x3a) continue;
    k = skipSpace(buf, k + 1, end);
    if (buf[k] !== 0x5b) continue;
    const packed = packArray(buf, k, end, mode === 'float32', hint);
    if (!packed) continue;
    parts.push(buf.toString('utf8', last, k), marker.slice(0, -1) + arrays.length + '"');
    arrays.push(packed.array);
    last = packed.end;
    i = packed.end;
  }
  return finish();

  function finish(): PackedJson | undefined {
    if (arrays.length === 0) return undefined;
    parts.push(buf.toString('utf8', last, end));
    return { skeleton: parts.join(''), arrays: new PackedArrays(prefix, arrays) };
  }
}

function isKey(buf: Uint8Array, s: number, e: number, keys: readonly Uint8Array[]): boolean {
  const n = e - s;
  for (const k of keys) {
    if (k.length !== n) continue;
    let j = 0;
    while (j < n && buf[s + j] === k[j]) j++;
    if (j === n) return true;
  }
  return false;
}

function skipSpace(buf: Uint8Array, i: number, end: number): number {
  while (i < end) {
    const c = buf[i]!;
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    i++;
  }
  return i;
}

/** The rectangular list of numbers opening at `at`, or undefined when it is anything else. */
function packArray(buf: Buffer, at: number, end: number, float32: boolean, hint: number): { array: PackedArray; end: number } | undefined {
  let out: Float32Array | Float64Array = EMPTY;
  let n = 0;
  const len: number[] = new Array<number>(MAX_NEST + 1).fill(0);
  // The length of the lists at each depth, fixed by the first one that closes there.
  const dims: number[] = new Array<number>(MAX_NEST).fill(-1);
  let depth = 0;
  let leaf = 0;
  let p = at;
  for (;;) {
    // A value starts at p.
    if (p >= end) return undefined;
    if (buf[p] === 0x5b) {
      depth++;
      if (depth > MAX_NEST || (leaf !== 0 && depth > leaf)) return undefined;
      len[depth] = 0;
      p = skipSpace(buf, p + 1, end);
      if (buf[p] === 0x5d) return undefined;
      continue;
    }
    if (leaf === 0) leaf = depth;
    else if (depth !== leaf) return undefined;
    if (!(float32 ? readFloat32(buf, p, end) : readExact(buf, p, end))) return undefined;
    p = numberEnd;
    if (n === out.length) {
      // The first buffer holds `hint` numbers (a row of the model); then it doubles.
      const size = Math.max(hint, MIN_PACKED_ELEMENTS, out.length * 2);
      const grown = float32 ? new Float32Array(size) : new Float64Array(size);
      grown.set(out);
      out = grown;
    }
    out[n] = numberValue;
    // Out of the type's range (1e39 in FP32, 1e400 anywhere): the ordinary path says so.
    if (out[n]! - out[n]! !== 0) return undefined;
    n++;
    len[depth]!++;
    // After a value: more, or the end of one or more lists.
    for (;;) {
      p = skipSpace(buf, p, end);
      const c = buf[p];
      if (c === 0x2c) {
        p = skipSpace(buf, p + 1, end);
        break;
      }
      if (c !== 0x5d || p >= end) return undefined;
      const d = depth - 1;
      if (dims[d] === -1) dims[d] = len[depth]!;
      else if (dims[d] !== len[depth]) return undefined;
      depth--;
      p++;
      if (depth === 0) {
        if (n < MIN_PACKED_ELEMENTS) return undefined;
        return { array: new PackedArray(out.length === n ? out : out.slice(0, n), dims.slice(0, leaf)), end: p };
      }
      len[depth]!++;
    }
  }
}

/** Where the last number read ended, and its value (module state: the readers are the hot loop). */
let numberEnd = 0;
let numberValue = 0;

/** Significant digits a float32 reading keeps: the rest only moves the value by less than FLOAT32_SLACK. */
const FLOAT32_DIGITS = 12;
/** Relative distance within which every real must round to the same float32 (twice what dropping digits can move it). */
const FLOAT32_SLACK = 2e-11;

/**
 * The JSON number at p as a float32 holds it: fround of the double JSON.parse gives. Up to 12 significant
 * digits are read, the value is approximated from them to better than 1e-11, and kept when every value
 * that close rounds to the same float32 (a float32 expansion such as 0.10000000149011612 is far from any
 * rounding boundary); otherwise Number() converts the text. False when the text is not a JSON number.
 */
function readFloat32(buf: Buffer, p: number, end: number): boolean {
  const start = p;
  let c = buf[p]!;
  const neg = c === 0x2d;
  if (neg) c = buf[++p]!;
  let m = 0;
  let digits = 0;
  let e10 = 0;
  if (c === 0x30) {
    c = buf[++p]!;
    if (c >= 0x30 && c <= 0x39) return false;
  } else if (c >= 0x31 && c <= 0x39) {
    do {
      if (digits < FLOAT32_DIGITS) {
        m = m * 10 + (c - 0x30);
        digits++;
      } else e10++;
      c = buf[++p]!;
    } while (c >= 0x30 && c <= 0x39);
  } else return false;
  if (c === 0x2e) {
    c = buf[++p]!;
    if (!(c >= 0x30 && c <= 0x39)) return false;
    if (m === 0) {
      // Zeros after the point before the first significant digit only move the exponent.
      while (c === 0x30) {
        e10--;
        c = buf[++p]!;
      }
    }
    // Then digits: the significant ones (up to FLOAT32_DIGITS in all) in the value, the rest skipped.
    const from = p;
    const stop = p + FLOAT32_DIGITS - digits;
    while (c >= 0x30 && c <= 0x39 && p < stop) {
      m = m * 10 + (c - 0x30);
      c = buf[++p]!;
    }
    e10 -= p - from;
    while (c >= 0x30 && c <= 0x39) c = buf[++p]!;
  }
  if (c === 0x65 || c === 0x45) {
    const x = readExponent(buf, p + 1);
    if (x === undefined) return false;
    e10 += x;
    p = exponentEnd;
  }
  if (p > end) return false;
  numberEnd = p;
  let v: number;
  if (m === 0) v = 0;
  else if (e10 >= -300 && e10 <= 300) {
    v = e10 < 0 ? m / P10[-e10]! : m * P10[e10]!;
    const f = Math.fround(v);
    if (Math.fround(v * (1 - FLOAT32_SLACK)) !== f || Math.fround(v * (1 + FLOAT32_SLACK)) !== f)
      v = Number(buf.toString('latin1', neg ? start + 1 : start, p));
  } else v = Number(buf.toString('latin1', neg ? start + 1 : start, p));
  numberValue = neg ? -v : v;
  return true;
}

/**
 * The JSON number at p as the double JSON.parse gives, when that is exact to compute: at most 15
 * significant digits and a power of ten up to 22 (both operands exact, one rounding). False for anything
 * else: longer numbers (JSON.parse converts them faster than Number() on a slice would; integers of 16
 * digits or more the ordinary path keeps exact as bigint), and text that is not a JSON number.
 */
function readExact(buf: Buffer, p: number, end: number): boolean {
  let c = buf[p]!;
  const neg = c === 0x2d;
  if (neg) c = buf[++p]!;
  let m = 0;
  let digits = 0;
  let e10 = 0;
  if (c === 0x30) {
    c = buf[++p]!;
    if (c >= 0x30 && c <= 0x39) return false;
  } else if (c >= 0x31 && c <= 0x39) {
    do {
      m = m * 10 + (c - 0x30);
      digits++;
      c = buf[++p]!;
    } while (c >= 0x30 && c <= 0x39);
  } else return false;
  if (c === 0x2e) {
    c = buf[++p]!;
    if (!(c >= 0x30 && c <= 0x39)) return false;
    do {
      m = m * 10 + (c - 0x30);
      e10--;
      if (m !== 0) digits++;
      c = buf[++p]!;
    } while (c >= 0x30 && c <= 0x39);
  }
  if (c === 0x65 || c === 0x45) {
    const x = readExponent(buf, p + 1);
    if (x === undefined) return false;
    e10 += x;
    p = exponentEnd;
  }
  if (p > end) return false;
  numberEnd = p;
  let v: number;
  if (m === 0) v = 0;
  else if (digits <= 15 && e10 >= -22 && e10 <= 22) v = e10 < 0 ? m / P10[-e10]! : m * P10[e10]!;
  else return false;
  numberValue = neg ? -v : v;
  return true;
}

let exponentEnd = 0;

/** The exponent after 'e' or 'E' at p (sign, digits), capped far beyond any double; sets exponentEnd. */
function readExponent(buf: Buffer, p: number): number | undefined {
  let c = buf[p]!;
  let neg = false;
  if (c === 0x2d || c === 0x2b) {
    neg = c === 0x2d;
    c = buf[++p]!;
  }
  if (!(c >= 0x30 && c <= 0x39)) return undefined;
  let x = 0;
  do {
    if (x < 100_000) x = x * 10 + (c - 0x30);
    c = buf[++p]!;
  } while (c >= 0x30 && c <= 0x39);
  exponentEnd = p;
  return neg ? -x : x;
}

/** float32 when every numeric input of a model is FP32 (the common case, and the fast one), else exact doubles. */
export function packModeOf(sig: { inputs: readonly { type: string }[] }): PackMode {
  return sig.inputs.every((i) => i.type === 'float32' || i.type === 'string') ? 'float32' : 'exact';
}

/** Elements in one row of a model's first input when its shape is fixed past the batch axis (a buffer size hint). */
export function rowElementsOf(sig: { inputs: readonly { shape: readonly (number | string)[] }[] }): number | undefined {
  const shape = sig.inputs[0]?.shape;
  if (!shape) return undefined;
  let n = 1;
  for (const d of shape.slice(1)) {
    if (typeof d !== 'number' || d < 0) return undefined;
    n *= d;
  }
  return n;
}
