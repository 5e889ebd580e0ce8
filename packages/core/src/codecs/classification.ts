/**
 * The classification extension of the Open Inference Protocol: an output asked for with
 * `"parameters": {"classification": k}` comes back as BYTES `"<value>:<index>[:<label>]"`, its k highest
 * elements in descending order (ties by index), per batch row for a model with a batch axis (shape
 * [batch, k]) and over the whole tensor otherwise (shape [k]); k is capped at the elements there are.
 * Values print as Triton prints them (C's `%f` for floats, decimal integers); labels come from the model.
 */
import { InferrerError } from '../errors.ts';
import type { OrtType } from '../datatypes.ts';
import type { Tensor } from '../tensor.ts';
import { halfToFloat } from './json-number.ts';

/** Elements one classification may rank (Triton's bound against pathological outputs). */
export const MAX_CLASSIFICATION_ELEMENTS = 1_000_000;

const RANKABLE: ReadonlySet<OrtType> = new Set(['uint8', 'uint16', 'uint32', 'uint64', 'int8', 'int16', 'int32', 'int64', 'float16', 'float32', 'float64']);

/** Whether an output of this type can be classified (numbers: not BOOL, not BYTES). */
export function classifiable(type: OrtType): boolean {
  return RANKABLE.has(type);
}

/** The top `k` of `t` as classification strings: per row when `batched`, else over the whole tensor. */
export function classify(t: Tensor, name: string, k: number, batched: boolean, labels?: readonly string[]): Tensor {
  if (!classifiable(t.type)) {
    throw new InferrerError('INVALID_REQUEST', `output '${name}' has type ${t.type}; classification needs a numeric output`, { output: name, got: t.type });
  }
  const rows = batched && t.dims.length > 0 ? t.dims[0]! : 1;
  const perRow = rows === 0 ? 0 : t.data.length / rows;
  if (perRow > MAX_CLASSIFICATION_ELEMENTS) {
    throw new InferrerError('INVALID_REQUEST', `output '${name}' has ${perRow} elements to rank, more than the limit of ${MAX_CLASSIFICATION_ELEMENTS}`, {
      output: name,
      limit: MAX_CLASSIFICATION_ELEMENTS,
    });
  }
  const count = Math.min(k, perRow);
  const value = valueReader(t);
  const out: string[] = [];
  const order = new Array<number>(perRow);
  for (let r = 0; r < rows; r++) {
    const base = r * perRow;
    for (let i = 0; i < perRow; i++) order[i] = i;
    order.sort((a, b) => compare(value(base + a), value(base + b)) || a - b);
    for (let j = 0; j < count; j++) {
      const i = order[j]!;
      const label = labels?.[i];
      out.push(`${format(value(base + i), t.type)}:${i}${label === undefined ? '' : `:${label}`}`);
    }
  }
  return { type: 'string', dims: batched && t.dims.length > 0 ? [rows, count] : [count], data: out };
}

/** Descending; NaN last. */
function compare(x: number | bigint, y: number | bigint): number {
  if (typeof x === 'number' && Number.isNaN(x)) return typeof y === 'number' && Number.isNaN(y) ? 0 : 1;
  if (typeof y === 'number' && Number.isNaN(y)) return -1;
  return x > y ? -1 : x < y ? 1 : 0;
}

function valueReader(t: Tensor): (i: number) => number | bigint {
  const data = t.data as ArrayLike<number | bigint>;
  if (t.type === 'float16') return (i) => halfToFloat(data[i] as number);
  return (i) => data[i]!;
}

/** How Triton writes a value: `std::to_string`, i.e. `%f` for floats and plain decimal for integers. */
function format(v: number | bigint, type: OrtType): string {
  if (typeof v === 'bigint') return v.toString();
  if (!type.startsWith('float')) return String(v);
  if (Number.isNaN(v)) return 'nan';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  // toFixed switches to exponent notation from 1e21; %f never does (such values are integers).
  if (Math.abs(v) >= 1e21) return `${BigInt(v).toString()}.000000`;
  return Object.is(v, -0) ? '-0.000000' : v.toFixed(6);
}
