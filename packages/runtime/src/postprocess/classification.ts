/** Classification answers: per row, the top-k classes with their scores (softmax or sigmoid first when the model answers logits). */
import { type ClassificationOutputSpec, InferrerError, type OutputActivation, type Tensor, halfToFloat } from '@inferrer/core';

export interface ClassScore {
  label: string;
  index: number;
  score: number;
}

/** Row r of a float tensor [rows, …] as plain numbers. */
export function rowValues(t: Tensor, r: number, per: number): number[] {
  const out = new Array<number>(per);
  for (let i = 0; i < per; i++) {
    const v = t.data[r * per + i];
    out[i] = t.type === 'float16' ? halfToFloat(v as number) : Number(v);
  }
  return out;
}

export function activate(values: number[], activation: OutputActivation): number[] {
  if (activation === 'sigmoid') return values.map((v) => 1 / (1 + Math.exp(-v)));
  if (activation !== 'softmax') return values;
  let max = -Infinity;
  for (const v of values) if (v > max) max = v;
  const e = values.map((v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

/** The top `k` classes of every row, best first (ties: lower index first). */
export function classify(t: Tensor, spec: ClassificationOutputSpec, k: number): ClassScore[][] {
  if (t.type === 'string' || t.type === 'bool' || t.dims.length === 0) {
    throw new InferrerError('INVALID_REQUEST', `output '${spec.output}' (${t.type} [${t.dims}]) holds no class scores`, { output: spec.output });
  }
  const rows = t.dims.length === 1 ? 1 : t.dims[0]!;
  const per = t.data.length / Math.max(1, rows);
  const out: ClassScore[][] = [];
  for (let r = 0; r < rows; r++) {
    const scores = activate(rowValues(t, r, per), spec.activation);
    const order = scores.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]! || a - b);
    out.push(order.slice(0, Math.max(1, Math.min(k, per))).map((i) => ({ label: spec.labels?.[i] ?? String(i), index: i, score: scores[i]! })));
  }
  return out;
}
