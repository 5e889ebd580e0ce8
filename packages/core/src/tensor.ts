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
}

/**
 * Whether requests can be stacked along dim 0: every input has at least two dims and every output at least
 * one, and dim 0 of each is one and the same symbol. A vector input ([n]: a shape, a sequence, values a
 * reduction reads together) is one request's values, not n rows; an output whose dim 0 is another symbol
 * (Transpose [n, k] → [k, n]) or inputs whose first dims differ ([n, 2] and [m, 2]) do not keep rows
 * apart, so joined requests would be answered with each other's values. An unnamed dynamic dim (-1, or
 * "dynamic" as the runtime thread reports it) matches any symbol: nothing says it is another axis.
 */
export function hasDynamicBatchAxis(sig: ModelSignature): boolean {
  if (sig.inputs.length === 0 || sig.inputs.some((t) => t.shape.length < 2) || sig.outputs.some((t) => t.shape.length < 1)) return false;
  let name: string | undefined;
  for (const t of [...sig.inputs, ...sig.outputs]) {
    const d = t.shape[0]!;
    if (!isSymbolic(d)) return false;
    if (!isNamedDim(d)) continue;
    if (name !== undefined && d !== name) return false;
    name = d;
  }
  return true;
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
