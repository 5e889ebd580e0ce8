/** Stacking requests along the batch axis with one copy, and splitting the answers back with none. */
import { type NamedTensors, type Tensor, type NumericArray, elementCount } from '@inferrer/core';

/** A key that is equal for requests whose inputs can be stacked: same names, types and non-batch dims. */
export function stackKey(inputs: NamedTensors): string {
  let key = '';
  for (const name in inputs) {
    const t = inputs[name]!;
    key += `${name}:${t.type}:${t.dims.slice(1).join('x')};`;
  }
  return key;
}

/** Concatenates each input of `parts` along dim 0 into one freshly allocated tensor (one copy). */
export function concatInputs(parts: readonly NamedTensors[], rows: readonly number[]): NamedTensors {
  if (parts.length === 1) return parts[0]!;
  const total = rows.reduce((a, b) => a + b, 0);
  const out: NamedTensors = {};
  for (const name in parts[0]!) {
    const first = parts[0]![name]!;
    const dims = [total, ...first.dims.slice(1)];
    if (first.type === 'string') {
      const data: string[] = [];
      for (const p of parts) for (const s of p[name]!.data as string[]) data.push(s);
      out[name] = { type: first.type, dims, data };
      continue;
    }
    const src = first.data as NumericArray;
    const Ctor = src.constructor as new (n: number) => NumericArray;
    const data = new Ctor(elementCount(dims));
    let at = 0;
    for (const p of parts) {
      const d = p[name]!.data as NumericArray;
      (data as unknown as { set(a: ArrayLike<number | bigint>, o: number): void }).set(d, at);
      at += d.length;
    }
    out[name] = { type: first.type, dims, data };
  }
  return out;
}

/**
 * Splits batch outputs back per request by dim 0. Returns undefined when an output's dim 0 is not the
 * batch total (the model does not keep the batch axis on that output), so the caller can run the
 * requests one at a time instead.
 */
export function splitOutputs(outputs: NamedTensors, rows: readonly number[]): NamedTensors[] | undefined {
  if (rows.length === 1) return [outputs];
  const total = rows.reduce((a, b) => a + b, 0);
  const result: NamedTensors[] = rows.map(() => ({}));
  for (const name in outputs) {
    const t = outputs[name]!;
    if (t.dims.length === 0 || t.dims[0] !== total) return undefined;
    const per = elementCount(t.dims.slice(1));
    let at = 0;
    for (let i = 0; i < rows.length; i++) {
      const n = rows[i]!;
      const dims = [n, ...t.dims.slice(1)];
      const data = Array.isArray(t.data) ? t.data.slice(at * per, (at + n) * per) : (t.data as NumericArray).subarray(at * per, (at + n) * per);
      result[i]![name] = { type: t.type, dims, data } as Tensor;
      at += n;
    }
  }
  return result;
}
