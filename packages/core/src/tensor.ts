import type { OrtType, TensorData } from './datatypes.ts';

/** A tensor as it travels inside Inferrer: ONNX Runtime type, concrete shape, flat row-major data. */
export interface Tensor {
  type: OrtType;
  dims: number[];
  data: TensorData;
}

export type NamedTensors = Record<string, Tensor>;

/** A symbolic dim is a string (ONNX dim_param) or -1; a fixed dim is a non-negative number. */
export type Dim = number | string;

export interface TensorSpec {
  name: string;
  type: OrtType;
  shape: Dim[];
}

export interface ModelSignature {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /**
   * The model's config says where its batch axis is (`batching.batch_axis`): `first`, dim 0 of every input
   * and output; `none`, requests are never joined. Absent (`auto`): the graph's dims decide.
   */
  batchAxis?: BatchAxis;
}

/** What a model's config can say of its batch axis; `auto` leaves it to the graph's dims. */
export type BatchAxis = 'auto' | 'first' | 'none';

/** The signature with the batch axis a model's config declares (none declared: as it is). */
export function withBatchAxis(sig: ModelSignature, axis: BatchAxis | undefined): ModelSignature {
  return axis === undefined || axis === 'auto' ? sig : { ...sig, batchAxis: axis };
}

/**
 * Why dim 0 of every input and output cannot be declared a batch axis (a tensor without dims, or whose dim
 * 0 is a fixed size), or undefined when it can.
 */
export function firstAxisProblem(sig: ModelSignature): string | undefined {
  for (const [kind, list] of [
    ['input', sig.inputs],
    ['output', sig.outputs],
  ] as const) {
    for (const t of list) {
      if (t.shape.length === 0) return `${kind} '${t.name}' is a scalar (no dims)`;
      if (!isSymbolic(t.shape[0]!)) return `${kind} '${t.name}' has a fixed dim 0 (${t.shape[0]})`;
    }
  }
  return undefined;
}

/**
 * Whether requests can be stacked along dim 0: dim 0 of every input and output is one and the same symbol,
 * and some input has two dims or more. A model whose inputs are all vectors ([n]: a shape, a sequence,
 * values a reduction reads together) takes one request's values, not n rows; an output whose dim 0 is
 * another symbol (Transpose [n, k] → [k, n]) or inputs whose first dims differ ([n, 2] and [m, 2]) do not
 * keep rows apart, so joined requests would be answered with each other's values. An unnamed dynamic dim
 * (-1, or "dynamic" as the runtime thread reports it) matches the symbol, except on a vector input, which
 * is rows only when it names the batch symbol itself (a per-row value beside [batch, k]). A model's config can
 * settle it either way (`batchAxis`): `first` for a model of id vectors ([batch] → [batch, d]), which the
 * dims alone cannot tell from a vector of values read together.
 */
export function hasDynamicBatchAxis(sig: ModelSignature): boolean {
  if (sig.batchAxis === 'none') return false;
  if (sig.batchAxis === 'first') return firstAxisProblem(sig) === undefined;
  const all = [...sig.inputs, ...sig.outputs];
  if (!all.every((t) => t.shape.length > 0 && isSymbolic(t.shape[0]!))) return false;
  if (!sig.inputs.some((t) => t.shape.length >= 2)) return false;
  let name: string | undefined;
  for (const t of all) {
    const d = t.shape[0]!;
    if (!isNamedDim(d)) continue;
    if (name !== undefined && d !== name) return false;
    name = d;
  }
  return sig.inputs.every((t) => t.shape.length >= 2 || t.shape[0] === name);
}

/** How a dynamic dim without a name (no dim_param) is written in a signature read from ONNX Runtime. */
const ANONYMOUS_DIM = 'dynamic';

/** A symbolic dim with a name (ONNX dim_param): the same name is the same size wherever it appears. */
export function isNamedDim(d: Dim): d is string {
  return typeof d === 'string' && d !== '' && d !== ANONYMOUS_DIM;
}

export function isSymbolic(d: Dim): boolean {
  return typeof d === 'string' || d < 0;
}
