/** YOLO decoding, NMS and box rescaling against known boxes. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DetectionOutputSpec, Tensor } from '@inferrer/core';
import { type Candidate, detect, iou, nms, plan, yoloCandidates } from '../../src/index.ts';

const SPEC: DetectionOutputSpec = {
  kind: 'detection',
  output: 'output0',
  format: 'yolov5',
  normalized: false,
  scoreThreshold: 0.5,
  iouThreshold: 0.45,
  maxDetections: 100,
  activation: 'none',
  labels: ['square', 'circle'],
};

/** YOLOv5 rows: cx, cy, w, h, objectness, class scores. */
function v5(rows: number[][]): Tensor {
  return { type: 'float32', dims: [1, rows.length, rows[0]!.length], data: new Float32Array(rows.flat()) };
}

describe('nms', () => {
  test('iou of known boxes', () => {
    assert.equal(iou([0, 0, 10, 10], [0, 0, 10, 10]), 1);
    assert.equal(iou([0, 0, 10, 10], [10, 10, 20, 20]), 0);
    assert.equal(iou([0, 0, 10, 10], [5, 0, 15, 10]), 50 / 150);
  });

  test('drops lower-scored overlaps of the same class, keeps other classes and distant boxes, best first', () => {
    const c: Candidate[] = [
      { index: 0, score: 0.8, box: [1, 1, 11, 11] },
      { index: 0, score: 0.9, box: [0, 0, 10, 10] },
      { index: 1, score: 0.7, box: [0, 0, 10, 10] },
      { index: 0, score: 0.6, box: [30, 30, 40, 40] },
      { index: 0, score: 0.5, box: [5, 0, 15, 10] }, // IoU 1/3 with the best: kept at 0.45
    ];
    assert.deepEqual(
      nms(c, 0.45).map((k) => k.score),
      [0.9, 0.7, 0.6, 0.5],
    );
    assert.deepEqual(
      nms(c, 0.3).map((k) => k.score),
      [0.9, 0.7, 0.6],
    );
    assert.deepEqual(
      nms(c, 0.45, 2).map((k) => k.score),
      [0.9, 0.7],
    );
  });
});

describe('YOLO decoding', () => {
  const rows = [
    [20, 20, 10, 10, 0.9, 0.95, 0.05], // square at [15, 15, 25, 25], score 0.855
    [21, 20, 10, 10, 0.8, 0.9, 0.1], // its duplicate, suppressed
    [40, 30, 8, 12, 0.99, 0.1, 0.9], // circle at [36, 24, 44, 36], score 0.891
    [50, 50, 4, 4, 0.3, 0.9, 0.1], // below the threshold (0.27)
  ];

  test('yolov5 rows: objectness × class score, threshold, centre/size to corners', () => {
    const c = yoloCandidates(v5(rows), 0, SPEC, { width: 64, height: 64 });
    assert.equal(c.length, 3);
    assert.deepEqual(c[0]!.box, [15, 15, 25, 25]);
    assert.ok(Math.abs(c[0]!.score - 0.855) < 1e-6);
  });

  test('yolov8 layout (transposed, no objectness) decodes to the same boxes', () => {
    const v8rows = rows.map((r) => [r[0]!, r[1]!, r[2]!, r[3]!, r[4]! * r[5]!, r[4]! * r[6]!]);
    const t: Tensor = { type: 'float32', dims: [1, 6, 4], data: new Float32Array(6 * 4) };
    v8rows.forEach((r, b) => r.forEach((v, f) => ((t.data as Float32Array)[f * 4 + b] = v)));
    const a = detect(v5(rows), SPEC, [plan(64, 64, { width: 64, height: 64, resize: 'stretch' }).transform], { width: 64, height: 64 });
    const b = detect(t, { ...SPEC, format: 'yolov8' }, [plan(64, 64, { width: 64, height: 64, resize: 'stretch' }).transform], { width: 64, height: 64 });
    assert.deepEqual(
      b[0]!.map((d) => [d.label, d.box]),
      a[0]!.map((d) => [d.label, d.box]),
    );
    b[0]!.forEach((d, i) => assert.ok(Math.abs(d.score - a[0]![i]!.score) < 1e-6));
    assert.deepEqual(
      a[0]!.map((d) => [d.label, d.box]),
      [
        ['circle', [36, 24, 44, 36]],
        ['square', [15, 15, 25, 25]],
      ],
    );
  });

  test('boxes are scaled back to the original image through the letterbox, and normalised boxes scale by the input size', () => {
    // 192×128 letterboxed into 64×64: 64×43 (x scale 1/3, y scale 43/128), 10 px of padding on top.
    const tr = plan(192, 128, { width: 64, height: 64, resize: 'pad' }).transform;
    const [dets] = detect(v5(rows), SPEC, [tr], { width: 64, height: 64 });
    assert.deepEqual(
      dets!.map((d) => d.box),
      [
        [108, 41.7, 132, 77.4],
        [45, 14.9, 75, 44.7],
      ],
    );
    const norm = v5(rows.map((r) => [r[0]! / 64, r[1]! / 64, r[2]! / 64, r[3]! / 64, r[4]!, r[5]!, r[6]!]));
    const [n] = detect(norm, { ...SPEC, normalized: true }, [tr], { width: 64, height: 64 });
    assert.deepEqual(n, dets);
  });

  test('sigmoid activation turns logits into scores; boxes clip to the image', () => {
    const logit = (p: number) => Math.log(p / (1 - p));
    const [d] = detect(
      v5([[2, 2, 10, 10, logit(0.9), logit(0.9), logit(0.1)]]),
      { ...SPEC, activation: 'sigmoid' },
      [plan(64, 64, { width: 64, height: 64, resize: 'stretch' }).transform],
      { width: 64, height: 64 },
    );
    assert.equal(d!.length, 1);
    assert.ok(Math.abs(d![0]!.score - 0.81) < 1e-6);
    assert.deepEqual(d![0]!.box, [0, 0, 7, 7]);
  });
});
