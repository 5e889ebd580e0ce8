/**
 * How a model takes images and what its outputs mean: the plain form of a STAC MLM item (or of the defaults
 * derived from the ONNX graph), resolved once per model version. The model store builds it
 * (packages/model-store/src/stac-mlm.ts); the runtime's pre- and post-processing read it.
 */
import type { OrtType } from './datatypes.ts';

/** stretch: resize to H×W ignoring aspect; pad: fit inside and pad (letterbox); crop: cover and centre-crop. */
export type ResizeMode = 'stretch' | 'pad' | 'crop';
export type ResizeKernel = 'nearest' | 'linear' | 'cubic' | 'lanczos3';

export interface ImageInputSpec {
  /** The ONNX input the images feed. */
  input: string;
  layout: 'NCHW' | 'NHWC';
  height: number;
  width: number;
  /** Channels the model takes, in order: 1 = grey, 3 = RGB or BGR. */
  channels: 1 | 3;
  order: 'gray' | 'rgb' | 'bgr';
  type: OrtType;
  resize: ResizeMode;
  kernel: ResizeKernel;
  /** Pixel value (0..255) of the padding for `pad`. */
  padValue: number;
  /** Per channel (model order): value = pixel (0..255) × scale[c] + offset[c]. */
  scale: number[];
  offset: number[];
}

export type OutputActivation = 'none' | 'softmax' | 'sigmoid';

export interface ClassificationOutputSpec {
  kind: 'classification';
  output: string;
  /** Class names by output index; absent: the index is the label. */
  labels?: string[];
  /** What to apply to the raw output to get scores (softmax when the model answers logits). */
  activation: OutputActivation;
}

export interface DetectionOutputSpec {
  kind: 'detection';
  output: string;
  /**
   * yolov5: [batch, boxes, 5 + classes] rows of cx, cy, w, h, objectness, class scores.
   * yolov8: [batch, 4 + classes, boxes], no objectness.
   */
  format: 'yolov5' | 'yolov8';
  labels?: string[];
  /** Box coordinates are in model-input pixels, or normalised to 0..1 of the input. */
  normalized: boolean;
  scoreThreshold: number;
  iouThreshold: number;
  maxDetections: number;
  /** Whether the class scores still need a sigmoid. */
  activation: OutputActivation;
}

export type OutputTaskSpec = ClassificationOutputSpec | DetectionOutputSpec;

export interface ImagePipelineSpec {
  /** Absent when the model has no image input. */
  image?: ImageInputSpec;
  /** The output read for the answer's labels or boxes; absent: raw tensors only. */
  task?: OutputTaskSpec;
  /** Where the spec came from, for the model description. */
  source: 'stac' | 'graph';
}
