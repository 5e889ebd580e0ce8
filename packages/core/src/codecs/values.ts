import { type DatatypeInfo, type TensorData, datatypeOfOrt, type OrtType } from '../datatypes.ts';
import { InferrerError } from '../errors.ts';
import { floatToHalf } from './json-number.ts';

/** Limits a decoder enforces on JSON values. */
export interface ValueLimits {
  maxElements: number;
  maxDepth: number;
  maxStringBytes: number;
}

export const DEFAULT_VALUE_LIMITS: ValueLimits = { maxElements: 16_777_216, maxDepth: 32, maxStringBytes: 1_048_576 };

/**
 * Shape of a nested JSON array, checking that it is rectangular. Leaves are anything that is not an
 * array. Throws INVALID_INPUT naming the input and the path of the first ragged element.
 */
export function nestedShape(value: unknown, input: string, limits: ValueLimits = DEFAULT_VALUE_LIMITS): number[] {
  const shape: number[] = [];
  let cur: unknown = value;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    if (shape.length > limits.maxDepth) {
      throw new InferrerError('INVALID_INPUT', `input '${input}' is nested deeper than ${limits.maxDepth} levels`, { input });
    }
    if (cur.length === 0) break;
    cur = cur[0];
  }
  checkRectangular(value, shape, 0, input, '');
  return shape;
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
      arr[i] = floatToHalf(typeof v === 'number' ? v : toFloat(v, input, i));
    };
  } else if (info.float) {
    // The common case, filled without a visitor (no closure per request on the hot path).
    const arr = new info.array!(count) as Float32Array | Float64Array;
    const n = fillFloats(value, arr, input, 0);
    if (n !== count) throw new InferrerError('INVALID_INPUT', `input '${input}' holds ${n} values but its shape needs ${count}`, { input, expected: count, got: n });
    return arr;
  } else {
    const arr = new info.array!(count) as Int32Array;
    out = arr;
    const min = info.min as number;
    const max = info.max as number;
    visit = (v, i) => {
      if (typeof v !== 'number' || !Number.isInteger(v)) throw badElement(input, i, `an integer (${info.v2})`, v);
      if (v < min || v > max) throw outOfRange(input, i, info, v);
      arr[i] = v;
    };
  }
  const n = eachLeaf(value, visit);
  if (n !== count) throw new InferrerError('INVALID_INPUT', `input '${input}' holds ${n} values but its shape needs ${count}`, { input, expected: count, got: n });
  return out;
}

/** Writes the leaves of a rectangular nested array into `arr` from index `at` on; returns the index after the last. */
function fillFloats(v: unknown, arr: Float32Array | Float64Array, input: string, at: number): number {
  if (!Array.isArray(v)) {
    // Past the end (a count mismatch, reported by the caller) typed-array writes are dropped.
    arr[at] = typeof v === 'number' ? v : toFloat(v, input, at);
    return at + 1;
  }
  if (v.length > 0 && !Array.isArray(v[0])) {
    for (let k = 0; k < v.length; k++) {
      const x = v[k];
      arr[at] = typeof x === 'number' ? x : toFloat(x, input, at);
      at++;
    }
    return at;
  }
  for (let k = 0; k < v.length; k++) at = fillFloats(v[k], arr, input, at);
  return at;
}

function toFloat(v: unknown, input: string, i: number): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
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

function outOfRange(input: string, index: number, info: DatatypeInfo, got: unknown): InferrerError {
  return new InferrerError('INVALID_INPUT', `input '${input}' element ${index}: ${String(got)} is out of range for ${info.v2} [${info.min}, ${info.max}]`, {
    input,
    index,
    expected: `${info.v2} in [${info.min}, ${info.max}]`,
    got: String(got),
  });
}
