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

/** Whether dim 0 of every input and output is symbolic, i.e. requests can be stacked along it. */
export function hasDynamicBatchAxis(sig: ModelSignature): boolean {
  const all = [...sig.inputs, ...sig.outputs];
  return all.length > 0 && all.every((t) => t.shape.length > 0 && isSymbolic(t.shape[0]!));
}

export function isSymbolic(d: Dim): boolean {
  return typeof d === 'string' || d < 0;
}
