/**
 * What a run's outputs will take, from the model's declared output shapes and the dims the request's inputs
 * bind: a fixed dim is itself, a symbol that also names an input's dim (`batch` of `x` [batch, 1]) is that
 * input's size there. An output with a dim nothing binds (one its values choose: ConstantOfShape of a shape
 * the request sent) or of strings is not counted, so the sum is what the run takes at least.
 */
import { type ModelSignature, type NamedTensors, datatypeOfOrt, isNamedDim } from '@inferrer/core';

export interface OutputSize {
  /** Bytes of the outputs whose size is known before the run. */
  bytes: number;
  /** The largest of them, and its shape. */
  largest?: { name: string; dims: number[]; bytes: number };
}

export function knownOutputBytes(sig: ModelSignature, feeds: NamedTensors, fetches?: readonly string[]): OutputSize {
  const bound = new Map<string, number>();
  for (const spec of sig.inputs) {
    const t = feeds[spec.name];
    if (!t) continue;
    spec.shape.forEach((d, i) => {
      if (isNamedDim(d) && t.dims[i] !== undefined) bound.set(d, t.dims[i]!);
    });
  }
  const out: OutputSize = { bytes: 0 };
  for (const spec of sig.outputs) {
    if (fetches && !fetches.includes(spec.name)) continue;
    const size = datatypeOfOrt(spec.type)?.size ?? 0;
    if (size === 0) continue;
    const dims: number[] = [];
    for (const d of spec.shape) {
      const n = typeof d === 'number' ? (d >= 0 ? d : undefined) : isNamedDim(d) ? bound.get(d) : undefined;
      if (n === undefined) break;
      dims.push(n);
    }
    if (dims.length !== spec.shape.length) continue;
    const bytes = dims.reduce((a, b) => a * b, size);
    out.bytes += bytes;
    if (!out.largest || bytes > out.largest.bytes) out.largest = { name: spec.name, dims, bytes };
  }
  return out;
}
