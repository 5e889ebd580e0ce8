/**
 * Which numbers of a request are "features" for drift, and how to read them from the flat tensors:
 *
 *   inputs   a tabular input [batch, k…] gives one feature per element of a row: `input[0]` … `input[k-1]`;
 *            an image input [batch, C, H, W] or [batch, H, W, C] (C ≤ 4) gives one feature per channel,
 *            `image[channel 0]` …, whose values are the pixels (at most PIXELS_PER_CHANNEL per image,
 *            evenly spaced, so a 224×224 image costs the same as a 64×64 one);
 *   outputs  one value per row: `label` (a class index, a regression value); several per row (scores,
 *            probabilities, logits): `probabilities:class` (the arg max, the predicted class) and
 *            `probabilities:score` (the top score).
 *
 * Names depend on the tensor's name and row shape only, so a profile made from one batch size fits all.
 * Each side follows at most MAX_DRIFT_FEATURES features; string tensors are not followed.
 */
import type { ModelSignature, NamedTensors, Tensor } from '@inferrer/core';
import { MAX_DRIFT_FEATURES } from './profile.ts';

export const PIXELS_PER_CHANNEL = 4096;

export type SlotKind = 'element' | 'nchw' | 'nhwc' | 'argmax' | 'max';

/** Where one feature's values are in a tensor. */
export interface FeatureSlot {
  name: string;
  tensor: string;
  kind: SlotKind;
  /** Element of the row (element), channel (nchw, nhwc). */
  index: number;
  /** Numbers per row in the tensor. */
  rowElems: number;
  /** nchw / nhwc: pixels per channel and the stride between sampled pixels. */
  pixels: number;
  stride: number;
}

const rowElemsOf = (dims: readonly number[]): number => dims.slice(1).reduce((a, b) => a * b, 1);

/** Whether a row shape [C, H, W] / [H, W, C] is an image, and how its channels lie. */
function imageLayout(dims: readonly number[]): { kind: 'nchw' | 'nhwc'; channels: number; pixels: number } | undefined {
  if (dims.length !== 4) return undefined;
  const [, a, b, c] = dims as [number, number, number, number];
  if (a >= 1 && a <= 4 && b > 4 && c > 4) return { kind: 'nchw', channels: a, pixels: b * c };
  if (c >= 1 && c <= 4 && a > 4 && b > 4) return { kind: 'nhwc', channels: c, pixels: a * b };
  return undefined;
}

const numeric = (t: Tensor): boolean => t.type !== 'string';

/** The input features of tensors shaped like these (cached by the caller per shape). */
export function inputSlots(tensors: NamedTensors, order: readonly string[]): FeatureSlot[] {
  const out: FeatureSlot[] = [];
  for (const name of order) {
    const t = tensors[name];
    if (!t || !numeric(t) || t.dims.length === 0) continue;
    const rowElems = rowElemsOf(t.dims);
    const image = imageLayout(t.dims);
    if (image) {
      const stride = Math.max(1, Math.ceil(image.pixels / PIXELS_PER_CHANNEL));
      for (let c = 0; c < image.channels && out.length < MAX_DRIFT_FEATURES; c++) {
        out.push({ name: `${name}[channel ${c}]`, tensor: name, kind: image.kind, index: c, rowElems, pixels: image.pixels, stride });
      }
    } else {
      for (let i = 0; i < rowElems && out.length < MAX_DRIFT_FEATURES; i++)
        out.push({ name: `${name}[${i}]`, tensor: name, kind: 'element', index: i, rowElems, pixels: 1, stride: 1 });
    }
  }
  return out;
}

/** The output features: one value per row as is; several per row as predicted class and top score. */
export function outputSlots(tensors: NamedTensors, order: readonly string[]): FeatureSlot[] {
  const out: FeatureSlot[] = [];
  for (const name of order) {
    const t = tensors[name];
    if (!t || !numeric(t) || t.dims.length === 0 || out.length >= MAX_DRIFT_FEATURES - 1) continue;
    const rowElems = rowElemsOf(t.dims);
    if (rowElems === 1) out.push({ name, tensor: name, kind: 'element', index: 0, rowElems, pixels: 1, stride: 1 });
    else if (rowElems > 1 && rowElems <= 100_000 && t.dims.length === 2) {
      out.push({ name: `${name}:class`, tensor: name, kind: 'argmax', index: 0, rowElems, pixels: 1, stride: 1 });
      out.push({ name: `${name}:score`, tensor: name, kind: 'max', index: 0, rowElems, pixels: 1, stride: 1 });
    }
  }
  return out;
}

/** A cache key for a set of tensors' row shapes (the batch size does not matter). */
export function shapeKey(tensors: NamedTensors, order: readonly string[]): string {
  let k = '';
  for (const name of order) {
    const t = tensors[name];
    k += t ? `${name}:${t.type}:${t.dims.slice(1).join('x')};` : `${name}:-;`;
  }
  return k;
}

/**
 * Calls `fn(value)` for every value of `slot` in row `r` of `t`. Numbers only: int64 values (bigint) are
 * converted, which is exact for class indices and counts.
 */
export function forEachValue(t: Tensor, slot: FeatureSlot, r: number, fn: (x: number) => void): void {
  const data = t.data as ArrayLike<number | bigint>;
  const base = r * slot.rowElems;
  switch (slot.kind) {
    case 'element':
      fn(Number(data[base + slot.index]!));
      return;
    case 'nchw': {
      const start = base + slot.index * slot.pixels;
      for (let p = 0; p < slot.pixels; p += slot.stride) fn(Number(data[start + p]!));
      return;
    }
    case 'nhwc': {
      const channels = slot.rowElems / slot.pixels;
      for (let p = 0; p < slot.pixels; p += slot.stride) fn(Number(data[base + p * channels + slot.index]!));
      return;
    }
    case 'argmax':
    case 'max': {
      let best = -Infinity;
      let at = 0;
      for (let i = 0; i < slot.rowElems; i++) {
        const v = Number(data[base + i]!);
        if (v > best) {
          best = v;
          at = i;
        }
      }
      fn(slot.kind === 'argmax' ? at : best);
      return;
    }
  }
}

/**
 * Feature names of rows sent as flat lists of numbers (a sample file): every input's row elements, in the
 * signature's order. Image inputs cannot be described by rows: profile those by capture or by upload.
 */
export function tabularFeatureNames(sig: ModelSignature): { names: string[]; rowLength: number; problem?: string } {
  const names: string[] = [];
  let rowLength = 0;
  for (const spec of sig.inputs) {
    if (spec.type === 'string') continue;
    const rest = spec.shape.slice(1);
    if (rest.some((d) => typeof d !== 'number' || d < 0))
      return { names, rowLength, problem: `input ${spec.name} has a symbolic row shape [${rest.join(', ')}]` };
    if (imageLayout([1, ...(rest as number[])]))
      return { names, rowLength, problem: `input ${spec.name} is an image; profile it by capture or upload a profile` };
    const k = rowElemsOf([1, ...(rest as number[])]);
    for (let i = 0; i < k && names.length < MAX_DRIFT_FEATURES; i++) names.push(`${spec.name}[${i}]`);
    rowLength += k;
  }
  return { names, rowLength };
}
