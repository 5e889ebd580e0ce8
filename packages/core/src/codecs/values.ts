import { isUtf8 } from 'node:buffer';
import { type DatatypeInfo, type TensorData, datatypeOfOrt, type OrtType } from '../datatypes.ts';
import { InferrerError } from '../errors.ts';
import { floatToHalf } from './json-number.ts';
import { PackedArray } from './json-tensor.ts';

/** Limits a decoder enforces on JSON values. */
export interface ValueLimits {
  maxElements: number;
  maxDepth: number;
  maxStringBytes: number;
}

export const DEFAULT_VALUE_LIMITS: ValueLimits = { maxElements: 16_777_216, maxDepth: 32, maxStringBytes: 1_048_576 };

/**
 * Shape of a nested JSON array, checking that it is rectangular. Leaves are anything that is not an
 * array. Throws INVALID_INPUT naming the input and the path of the first ragged element, or when the
 * lists nest deeper than `rank` (the most levels the tensor can take) or limits.maxDepth. The depth is
 * measured without recursion, and nothing below walks deeper than it, so any nesting is safe to measure.
 */
export function nestedShape(value: unknown, input: string, limits: ValueLimits = DEFAULT_VALUE_LIMITS, rank?: number): number[] {
  const shape: number[] = [];
  const most = rank === undefined ? limits.maxDepth : Math.min(rank, limits.maxDepth);
  // Parsed from the bytes already (json-tensor.ts): rectangular by construction, its shape known.
  if (value instanceof PackedArray) {
    if (value.dims.length > most) throw tooDeep(input, limits, rank, most);
    return [...value.dims];
  }
  let cur: unknown = value;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    if (shape.length > most) throw tooDeep(input, limits, rank, most);
    if (cur.length === 0) break;
    cur = cur[0];
  }
  checkRectangular(value, shape, 0, input, '');
  return shape;
}

function tooDeep(input: string, limits: ValueLimits, rank: number | undefined, most: number): InferrerError {
  const message =
    rank !== undefined && rank <= limits.maxDepth
      ? `input '${input}' nests lists deeper than its rank allows (at most ${rank} level${rank === 1 ? '' : 's'})`
      : `input '${input}' is nested deeper than ${limits.maxDepth} levels`;
  return new InferrerError('INVALID_INPUT', message, { input, limit: most });
}

function checkRectangular(value: unknown, shape: number[], depth: number, input: string, path: string): void {
  if (depth === shape.length) {
    if (Array.isArray(value)) throw ragged(input, path, 'a value', 'an array');
    return;
  }
  if (!Array.isArray(value)) throw ragged(input, path, `an array of ${shape[depth]}`, 'a value');
  if (value.length !== shape[depth]) throw ragged(input, path, `${shape[depth]} elements`, `${value.length}`);
  if (depth + 1 === shape.length) {
    for (let i = 0; i < value.length; i++) if (Array.isArray(value[i])) throw ragged(input, `${path}[${i}]`, 'a value', 'an array');
    return;
  }
  for (let i = 0; i < value.length; i++) checkRectangular(value[i], shape, depth + 1, input, `${path}[${i}]`);
}

function ragged(input: string, path: string, expected: string, got: string): InferrerError {
  return new InferrerError('INVALID_INPUT', `input '${input}' is not rectangular: at ${path || 'the top'} expected ${expected}, got ${got}`, {
    input,
    path,
    expected,
    got,
  });
}

/**
 * Visits the leaves of a rectangular nested array (already checked by nestedShape) in row-major order,
 * with their flat index; innermost lists are walked in one tight loop. Returns the number of leaves.
 */
function eachLeaf(value: unknown, visit: (v: unknown, i: number) => void): number {
  let i = 0;
  const walk = (v: unknown): void => {
    if (!Array.isArray(v)) {
      visit(v, i++);
      return;
    }
    if (v.length === 0) return;
    if (!Array.isArray(v[0])) {
      for (let k = 0; k < v.length; k++) visit(v[k], i++);
      return;
    }
    for (let k = 0; k < v.length; k++) walk(v[k]);
  };
  walk(value);
  return i;
}

/**
 * Converts JSON leaves into a typed array of the given ONNX Runtime type, checking every element:
 * numbers for numeric types (integers in range for integer types), booleans (or 0/1) for bool, strings
 * for string tensors. Floats also accept "NaN", "Infinity", "-Infinity"; 64-bit integers also accept
 * decimal strings so values beyond 2^53 survive. Values are written straight into the result.
 */
export function toTypedData(value: unknown, type: OrtType, input: string, count: number, limits: ValueLimits = DEFAULT_VALUE_LIMITS): TensorData {
  if (count > limits.maxElements) {
    throw new InferrerError('INVALID_INPUT', `input '${input}' has ${count} elements, more than the limit of ${limits.maxElements}`, {
      input,
      limit: limits.maxElements,
      got: count,
    });
  }
  const info = datatypeOfOrt(type);
  if (!info) throw new InferrerError('INVALID_INPUT', `input '${input}' has type ${type}, which Inferrer cannot carry`, { input, type });
  if (value instanceof PackedArray) {
    const n = value.data.length;
    if (n !== count)
      throw new InferrerError('INVALID_INPUT', `input '${input}' holds ${n} values but its shape needs ${count}`, { input, expected: count, got: n });
    // Stored as this type already (in range: json-tensor.ts leaves out-of-range values to this path).
    if ((type === 'float32' && value.data instanceof Float32Array) || (type === 'float64' && value.data instanceof Float64Array)) return value.data;
    // Exact doubles for another type: checked element by element below, as JSON numbers are.
    value = Array.from(value.data);
  }
  let out: TensorData;
  let visit: (v: unknown, i: number) => void;
  if (info.ort === 'string') {
    const strings: string[] = new Array(count);
    out = strings;
    visit = (v, i) => {
      if (typeof v !== 'string') throw badElement(input, i, 'a string', v);
      // A UTF-16 code unit takes at most 3 UTF-8 bytes, so only longer strings need counting.
      if (v.length * 3 > limits.maxStringBytes && Buffer.byteLength(v) > limits.maxStringBytes) {
        throw new InferrerError('INVALID_INPUT', `input '${input}' element ${i} is longer than ${limits.maxStringBytes} bytes`, { input, index: i });
      }
      checkText(v, input, i);
      strings[i] = v;
    };
  } else if (info.bigint) {
    const big = new info.array!(count) as BigInt64Array | BigUint64Array;
    out = big;
    visit = (v, i) => {
      big[i] = toBigInt(v, info, input, i);
    };
  } else if (info.ort === 'bool') {
    const arr = new info.array!(count) as Uint8Array;
    out = arr;
    visit = (v, i) => {
      if (v === true || v === 1) arr[i] = 1;
      else if (v === false || v === 0) arr[i] = 0;
      else throw badElement(input, i, 'a boolean', v);
    };
  } else if (info.ort === 'float16') {
    const arr = new info.array!(count) as Uint16Array;
    out = arr;
    visit = (v, i) => {
      const x = typeof v === 'number' ? v : toFloat(v, input, i, info);
      const h = floatToHalf(x);
      // An infinite half from a finite number (or from 1e400, which JSON.parse reads as Infinity).
      if ((h & 0x7fff) === 0x7c00 && (typeof v === 'number' || typeof v === 'bigint')) throw outOfRange(input, i, info, v);
      arr[i] = h;
    };
  } else if (info.float) {
    // The common case, filled without a visitor (no closure per request on the hot path).
    const arr = new info.array!(count) as Float32Array | Float64Array;
    const n = fillFloats(value, arr, input, info, 0);
    if (n !== count)
      throw new InferrerError('INVALID_INPUT', `input '${input}' holds ${n} values but its shape needs ${count}`, { input, expected: count, got: n });
    return arr;
  } else {
    const arr = new info.array!(count) as Int32Array;
    out = arr;
    const min = info.min as number;
    const max = info.max as number;
    visit = (v, i) => {
      if (typeof v !== 'number' || !Number.isInteger(v)) {
        // Integers past 2^53 arrive as bigint, and 1e400 as Infinity: both are out of range here.
        if (typeof v === 'bigint' || v === Infinity || v === -Infinity) throw outOfRange(input, i, info, v);
        throw badElement(input, i, `an integer (${info.v2})`, v);
      }
      if (v < min || v > max) throw outOfRange(input, i, info, v);
      arr[i] = v;
    };
  }
  const n = eachLeaf(value, visit);
  if (n !== count)
    throw new InferrerError('INVALID_INPUT', `input '${input}' holds ${n} values but its shape needs ${count}`, { input, expected: count, got: n });
  return out;
}

/**
 * Writes the leaves of a rectangular nested array into `arr` from index `at` on; returns the index after
 * the last. A number that becomes infinite in the array (1e400, which JSON.parse reads as Infinity, or
 * 1e39 for FP32) is out of range; only the strings "Infinity" and "-Infinity" ask for an infinity.
 */
function fillFloats(v: unknown, arr: Float32Array | Float64Array, input: string, info: DatatypeInfo, at: number): number {
  if (!Array.isArray(v)) {
    // Past the end (a count mismatch, reported by the caller) typed-array writes are dropped.
    if (typeof v === 'number') {
      arr[at] = v;
      if (arr[at]! - arr[at]! !== 0 && at < arr.length) throw outOfRange(input, at, info, v);
    } else arr[at] = toFloat(v, input, at, info);
    return at + 1;
  }
  if (v.length > 0 && !Array.isArray(v[0])) {
    for (let k = 0; k < v.length; k++) {
      const x = v[k];
      if (typeof x === 'number') {
        arr[at] = x;
        // Finite values give 0; an infinity gives NaN (JSON numbers are never NaN).
        if (arr[at]! - arr[at]! !== 0 && at < arr.length) throw outOfRange(input, at, info, x);
      } else arr[at] = toFloat(x, input, at, info);
      at++;
    }
    return at;
  }
  for (let k = 0; k < v.length; k++) at = fillFloats(v[k], arr, input, info, at);
  return at;
}

function toFloat(v: unknown, input: string, i: number, info?: DatatypeInfo): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') {
    // A long integer literal (kept exact by the lossless parse) in a float tensor.
    const n = Number(v);
    if (!Number.isFinite(info?.ort === 'float32' ? Math.fround(n) : n)) throw outOfRange(input, i, info, v);
    return n;
  }
  if (v === 'NaN') return NaN;
  if (v === 'Infinity' || v === '+Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  throw badElement(input, i, 'a number', v);
}

function toBigInt(v: unknown, info: DatatypeInfo, input: string, i: number): bigint {
  let b: bigint;
  if (typeof v === 'number' && Number.isInteger(v)) b = BigInt(v);
  else if (typeof v === 'bigint') b = v;
  else if (typeof v === 'string' && /^-?\d{1,20}$/.test(v)) b = BigInt(v);
  else if (v === Infinity || v === -Infinity || (typeof v === 'string' && /^-?\d{21,}$/.test(v))) throw outOfRange(input, i, info, v);
  else throw badElement(input, i, `an integer (${info.v2})`, v);
  if (b < (info.min as bigint) || b > (info.max as bigint)) throw outOfRange(input, i, info, v);
  return b;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 32 ? v.slice(0, 32) + '…' : v)}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

function badElement(input: string, index: number, expected: string, got: unknown): InferrerError {
  return new InferrerError('INVALID_INPUT', `input '${input}' element ${index}: expected ${expected}, got ${describe(got)}`, {
    input,
    index,
    expected,
    got: describe(got),
  });
}

/** The range of each datatype as messages show it. */
function rangeOf(info: DatatypeInfo | undefined): string {
  if (!info) return 'a finite number';
  if (info.ort === 'float16') return 'FP16 [-65504, 65504]';
  if (info.ort === 'float32') return 'FP32 [-3.4028234663852886e+38, 3.4028234663852886e+38]';
  if (info.ort === 'float64') return 'FP64 [-1.7976931348623157e+308, 1.7976931348623157e+308]';
  return `${info.v2} [${info.min}, ${info.max}]`;
}

function outOfRange(input: string, index: number, info: DatatypeInfo | undefined, got: unknown): InferrerError {
  // Infinity as a number can only come from a literal too large for a double (1e400).
  const text = got === Infinity || got === -Infinity ? `a number beyond ${got === Infinity ? '' : '-'}1.8e308` : String(got);
  const shown = text.length > 40 ? `${text.slice(0, 20)}…(${text.length} characters)` : text;
  const range = rangeOf(info);
  return new InferrerError('INVALID_INPUT', `input '${input}' element ${index}: ${shown} is out of range for ${range}`, {
    input,
    index,
    expected: `${range.replace(' [', ' in [')}`,
    got: shown,
  });
}

/**
 * BYTES elements reach ONNX Runtime as JavaScript strings, which the binding turns into C strings: a NUL
 * byte would cut the element short and invalid UTF-8 would come back replaced. Such elements are refused.
 */
export function checkText(s: string, input: string, index: number): void {
  if (s.includes('\u0000')) throw badText(input, index, 'a NUL byte (U+0000)');
  if (!(s as unknown as { isWellFormed(): boolean }).isWellFormed()) throw badText(input, index, 'an unpaired surrogate (not valid UTF-8)');
}

/** The same check for a binary BYTES element: no NUL byte, valid UTF-8. */
export function checkTextBytes(b: Buffer, input: string, index: number): void {
  if (b.includes(0)) throw badText(input, index, 'a NUL byte');
  if (!isUtf8(b)) throw badText(input, index, 'bytes that are not valid UTF-8');
}

function badText(input: string, index: number, what: string): InferrerError {
  return new InferrerError(
    'INVALID_INPUT',
    `input '${input}' element ${index}: a BYTES element holds ${what}; BYTES elements of string tensors must be UTF-8 text without NUL bytes`,
    {
      input,
      index,
      expected: 'UTF-8 text without NUL bytes',
    },
  );
}
