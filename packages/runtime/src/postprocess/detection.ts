/**
 * YOLO-style detection answers: decode rows (cx, cy, w, h, [objectness,] class scores), keep those over the
 * score threshold, non-maximum suppression per class, and boxes mapped back onto the original image.
 */
import { type DetectionOutputSpec, InferrerError, type Tensor } from '@inferrer/core';
import { type ImageTransform, toOriginal } from '../preprocess/image.ts';
import { activate, rowValues } from './classification.ts';

export interface Detection {
  label: string;
  index: number;
  score: number;
  /** x1, y1, x2, y2 in pixels of the original image. */
  box: [number, number, number, number];
}

export interface Candidate {
  index: number;
  score: number;
  box: [number, number, number, number];
}

export function iou(a: readonly number[], b: readonly number[]): number {
  const ix = Math.max(0, Math.min(a[2]!, b[2]!) - Math.max(a[0]!, b[0]!));
  const iy = Math.max(0, Math.min(a[3]!, b[3]!) - Math.max(a[1]!, b[1]!));
  const inter = ix * iy;
  const union = (a[2]! - a[0]!) * (a[3]! - a[1]!) + (b[2]! - b[0]!) * (b[3]! - b[1]!) - inter;
  return union > 0 ? inter / union : 0;
}

/** Greedy NMS per class: best first, dropping any box of the same class overlapping a kept one by more than `threshold`. */
export function nms(candidates: readonly Candidate[], threshold: number, max = Infinity): Candidate[] {
  const sorted = [...candidates].sort((a, b) => b.score - a.score);
  const kept: Candidate[] = [];
  for (const c of sorted) {
    if (kept.length >= max) break;
    if (kept.every((k) => k.index !== c.index || iou(k.box, c.box) <= threshold)) kept.push(c);
  }
  return kept;
}

/** Candidates of one image (row `n` of the batch) above the threshold, boxes in model-input pixels. */
export function yoloCandidates(t: Tensor, n: number, spec: DetectionOutputSpec, inputSize: { width: number; height: number }): Candidate[] {
  if (t.dims.length !== 3 || t.type === 'string' || t.type === 'bool')
    throw new InferrerError('INVALID_REQUEST', `output '${spec.output}' [${t.dims}] is not a YOLO detection output`, { output: spec.output });
  const [, d1, d2] = t.dims as [number, number, number];
  const per = d1 * d2;
  const all = rowValues(t, n, per);
  const v8 = spec.format === 'yolov8';
  const boxes = v8 ? d2 : d1;
  const features = v8 ? d1 : d2;
  const classes = features - (v8 ? 4 : 5);
  if (classes < 1)
    throw new InferrerError('INVALID_REQUEST', `output '${spec.output}' has ${features} features per box; ${spec.format} needs at least ${v8 ? 5 : 6}`, {
      output: spec.output,
    });
  const at = (b: number, f: number): number => (v8 ? all[f * boxes + b]! : all[b * features + f]!);
  const sx = spec.normalized ? inputSize.width : 1;
  const sy = spec.normalized ? inputSize.height : 1;
  const out: Candidate[] = [];
  for (let b = 0; b < boxes; b++) {
    const obj = v8 ? 1 : activate([at(b, 4)], spec.activation === 'sigmoid' ? 'sigmoid' : 'none')[0]!;
    if (obj < spec.scoreThreshold) continue;
    const first = v8 ? 4 : 5;
    const scores: number[] = new Array(classes);
    for (let c = 0; c < classes; c++) scores[c] = at(b, first + c);
    const s = spec.activation === 'sigmoid' ? activate(scores, 'sigmoid') : scores;
    let best = 0;
    for (let c = 1; c < classes; c++) if (s[c]! > s[best]!) best = c;
    const score = s[best]! * obj;
    if (score < spec.scoreThreshold) continue;
    const cx = at(b, 0) * sx;
    const cy = at(b, 1) * sy;
    const w = at(b, 2) * sx;
    const h = at(b, 3) * sy;
    out.push({ index: best, score, box: [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2] });
  }
  return out;
}

/** Every image's detections: thresholded, suppressed, mapped back to the original pixels (rounded to 0.1 px). */
export function detect(
  t: Tensor,
  spec: DetectionOutputSpec,
  transforms: readonly ImageTransform[],
  inputSize: { width: number; height: number },
): Detection[][] {
  return transforms.map((tr, n) =>
    nms(yoloCandidates(t, n, spec, inputSize), spec.iouThreshold, spec.maxDetections).map((c) => ({
      label: spec.labels?.[c.index] ?? String(c.index),
      index: c.index,
      score: c.score,
      box: toOriginal(c.box, tr).map((v) => Math.round(v * 10) / 10) as [number, number, number, number],
    })),
  );
}
