/**
 * STAC items with the Machine Learning Model extension (https://github.com/stac-extensions/mlm): the
 * fields Inferrer reads, checked against the ONNX graph at upload, and turned into the plain
 * ImagePipelineSpec that drives image pre-processing and classification/detection post-processing.
 * Without an item, defaults come from the graph (an input shaped [batch, C, H, W] or [batch, H, W, C] with
 * C of 1 or 3) and the model's labels.
 */
import { z } from 'zod';
import {
  type DetectionOutputSpec,
  type Dim,
  type ImageInputSpec,
  type ImagePipelineSpec,
  InferrerError,
  type ModelSignature,
  type OutputTaskSpec,
  type ResizeKernel,
  type ResizeMode,
  type TensorSpec,
  isSymbolic,
} from '@inferrer/core';

const DataType = z.enum([
  'uint8',
  'uint16',
  'uint32',
  'uint64',
  'int8',
  'int16',
  'int32',
  'int64',
  'float16',
  'float32',
  'float64',
  'cint16',
  'cint32',
  'cfloat32',
  'cfloat64',
  'bool',
  'string',
]);
const Shape = z.array(z.number().int().min(-1)).min(1).max(8);
const Band = z.union([z.string().max(128), z.object({ name: z.string().max(128) }).loose()]);
const Stat = z
  .object({ mean: z.number().optional(), stddev: z.number().positive().optional(), minimum: z.number().optional(), maximum: z.number().optional() })
  .loose();
const ValueScaling = z
  .object({
    type: z.enum(['min-max', 'z-score', 'clip', 'clip-min', 'clip-max', 'offset', 'scale', 'processing']),
    minimum: z.number().optional(),
    maximum: z.number().optional(),
    mean: z.number().optional(),
    stddev: z.number().positive().optional(),
    value: z.number().optional(),
  })
  .loose();

export const MlmInputSchema = z
  .object({
    name: z.string().max(256),
    bands: z.array(Band).max(64).default([]),
    input: z.object({ shape: Shape, dim_order: z.array(z.string().max(32)).max(8), data_type: DataType }).loose(),
    description: z.string().max(4096).optional(),
    value_scaling: z.array(ValueScaling).max(64).nullable().optional(),
    norm_by_channel: z.boolean().nullable().optional(),
    norm_type: z.string().max(32).nullable().optional(),
    statistics: z.array(Stat).max(64).nullable().optional(),
    resize_type: z.string().max(64).nullable().optional(),
    pre_processing_function: z.unknown().optional(),
  })
  .loose();

const ClassObject = z.object({ value: z.union([z.number(), z.string()]), name: z.string().max(256), description: z.string().max(4096).optional() }).loose();

export const MlmOutputSchema = z
  .object({
    name: z.string().max(256),
    tasks: z.array(z.string().max(64)).min(1).max(16),
    result: z.object({ shape: Shape, dim_order: z.array(z.string().max(32)).max(8), data_type: DataType }).loose(),
    'classification:classes': z.array(ClassObject).max(100_000).optional(),
    post_processing_function: z.unknown().optional(),
    /** Inferrer's own: the scores are logits (softmax) or independent logits (sigmoid). */
    'inferrer:activation': z.enum(['none', 'softmax', 'sigmoid']).optional(),
    /** Inferrer's own: how to decode a detection output. */
    'inferrer:detection': z
      .object({
        format: z.enum(['yolov5', 'yolov8']).default('yolov5'),
        normalized: z.boolean().default(false),
        score_threshold: z.number().min(0).max(1).default(0.25),
        iou_threshold: z.number().min(0).max(1).default(0.45),
        max_detections: z.number().int().min(1).max(10_000).default(300),
      })
      .strict()
      .optional(),
  })
  .loose();

export const StacItemSchema = z
  .object({
    type: z.literal('Feature'),
    stac_version: z.string().max(32),
    stac_extensions: z.array(z.string().max(512)).max(64).default([]),
    id: z.string().min(1).max(256),
    properties: z
      .object({
        'mlm:name': z.string().min(1).max(256),
        'mlm:architecture': z.string().max(256).optional(),
        'mlm:tasks': z.array(z.string().max(64)).min(1).max(16),
        'mlm:framework': z.string().max(128).optional(),
        'mlm:input': z.array(MlmInputSchema).min(1).max(64),
        'mlm:output': z.array(MlmOutputSchema).min(1).max(64),
      })
      .loose(),
    assets: z
      .record(z.string(), z.object({ href: z.string().max(4096), type: z.string().max(256).optional(), roles: z.array(z.string()).optional() }).loose())
      .default({}),
  })
  .loose();

export type StacItem = z.infer<typeof StacItemSchema>;
export type MlmInput = z.infer<typeof MlmInputSchema>;
export type MlmOutput = z.infer<typeof MlmOutputSchema>;

function bad(message: string, details: Record<string, unknown> = {}): InferrerError {
  return new InferrerError('INVALID_STAC_ITEM', `the STAC item is invalid: ${message}`, details);
}

/** Parses a STAC item (the required MLM fields and their types); throws INVALID_STAC_ITEM naming every problem. */
export function parseStacItem(value: unknown): StacItem {
  const r = StacItemSchema.safeParse(value);
  if (!r.success) {
    const problems = r.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`);
    throw bad(problems.slice(0, 10).join('; '), { problems });
  }
  return r.data;
}

/** The ONNX tensor an MLM input/output describes: the one of that name, else the one at the same position. */
function pair<T extends { name: string }>(items: T[], tensors: TensorSpec[], what: string): [T, TensorSpec][] {
  if (items.length > tensors.length)
    throw bad(`it lists ${items.length} ${what}s but the model has ${tensors.length}`, { expected: tensors.length, got: items.length });
  return items.map((item, i) => [item, tensors.find((t) => t.name === item.name) ?? tensors[i]!]);
}

function checkShape(shape: number[], t: TensorSpec, where: string): void {
  if (shape.length !== t.shape.length)
    throw bad(`${where} has shape [${shape}] (rank ${shape.length}) but the ONNX tensor '${t.name}' has rank ${t.shape.length}`, {
      tensor: t.name,
      expected: t.shape,
      got: shape,
    });
  t.shape.forEach((d: Dim, i) => {
    const s = shape[i]!;
    if (s === -1 || isSymbolic(d)) return;
    if (s !== d)
      throw bad(`${where} has shape [${shape}] but the ONNX tensor '${t.name}' has [${t.shape.map((x) => (isSymbolic(x) ? -1 : x))}]`, {
        tensor: t.name,
        expected: t.shape,
        got: shape,
      });
  });
}

function checkType(type: string, t: TensorSpec, where: string): void {
  if (type !== t.type)
    throw bad(`${where} says data_type ${type} but the ONNX tensor '${t.name}' is ${t.type}`, { tensor: t.name, expected: t.type, got: type });
}

/** Checks the item against the graph: every input and output it lists exists with that rank, fixed dims and type. */
export function checkStacAgainstSignature(item: StacItem, sig: ModelSignature): void {
  const p = item.properties;
  for (const [input, t] of pair(p['mlm:input'], sig.inputs, 'input')) {
    const where = `mlm:input '${input.name}'`;
    checkShape(input.input.shape, t, where);
    checkType(input.input.data_type, t, where);
    if (input.input.dim_order.length !== input.input.shape.length)
      throw bad(`${where}: dim_order has ${input.input.dim_order.length} names for a shape of rank ${input.input.shape.length}`);
  }
  for (const [output, t] of pair(p['mlm:output'], sig.outputs, 'output')) {
    const where = `mlm:output '${output.name}'`;
    checkShape(output.result.shape, t, where);
    checkType(output.result.data_type, t, where);
    const classes = output['classification:classes'];
    if (classes && output.tasks.includes('classification') && t.type.startsWith('float')) {
      const last = t.shape[t.shape.length - 1];
      if (typeof last === 'number' && last >= 0 && last !== classes.length) {
        throw bad(`${where} lists ${classes.length} classes but the ONNX output '${t.name}' has ${last} scores per row`, {
          tensor: t.name,
          expected: last,
          got: classes.length,
        });
      }
    }
  }
  // The first image input must be usable for images when it looks like one.
  resolvePipeline(sig, item, undefined);
}

const RESIZE: Record<string, { mode: ResizeMode; kernel: ResizeKernel }> = {
  crop: { mode: 'crop', kernel: 'linear' },
  pad: { mode: 'pad', kernel: 'linear' },
  'interpolation-nearest': { mode: 'stretch', kernel: 'nearest' },
  'interpolation-linear': { mode: 'stretch', kernel: 'linear' },
  'interpolation-cubic': { mode: 'stretch', kernel: 'cubic' },
  'interpolation-area': { mode: 'stretch', kernel: 'linear' },
  'interpolation-lanczos4': { mode: 'stretch', kernel: 'lanczos3' },
  'interpolation-max': { mode: 'stretch', kernel: 'linear' },
};

const IMAGE_TYPES = new Set(['float32', 'float64', 'float16', 'uint8', 'int8', 'int32', 'int64']);

function bandName(b: string | { name: string }): string {
  return (typeof b === 'string' ? b : b.name).toLowerCase();
}

/** A rank-4 input with a channel axis of 1 or 3 at position 1 (NCHW) or 3 (NHWC) and fixed H, W. */
function graphImageInput(t: TensorSpec): { layout: 'NCHW' | 'NHWC'; channels: 1 | 3; height: number; width: number } | undefined {
  if (t.shape.length !== 4 || !IMAGE_TYPES.has(t.type)) return undefined;
  const [, a, b, c] = t.shape as Dim[];
  const fixed = (d: Dim | undefined): d is number => typeof d === 'number' && d > 0;
  if ((a === 1 || a === 3) && fixed(b) && fixed(c)) return { layout: 'NCHW', channels: a, height: b, width: c };
  if ((c === 1 || c === 3) && fixed(a) && fixed(b)) return { layout: 'NHWC', channels: c, height: a, width: b };
  return undefined;
}

function affine(input: MlmInput | undefined, channels: number): { scale: number[]; offset: number[] } {
  const scale = new Array<number>(channels).fill(1 / 255);
  const offset = new Array<number>(channels).fill(0);
  if (!input) return { scale, offset };
  scale.fill(1);
  const perBand = <T>(list: T[] | null | undefined, c: number): T | undefined => (list && list.length > 0 ? list[list.length === 1 ? 0 : c] : undefined);
  for (let c = 0; c < channels; c++) {
    let a = 1;
    let b = 0;
    const vs = perBand(input.value_scaling, c);
    if (vs) {
      switch (vs.type) {
        case 'min-max': {
          const lo = vs.minimum ?? 0;
          const hi = vs.maximum ?? 255;
          if (hi === lo) throw bad(`value_scaling min-max of mlm:input '${input.name}' has minimum = maximum`);
          a = 1 / (hi - lo);
          b = -lo / (hi - lo);
          break;
        }
        case 'z-score':
          a = 1 / (vs.stddev ?? 1);
          b = -(vs.mean ?? 0) / (vs.stddev ?? 1);
          break;
        case 'offset':
          b = vs.value ?? 0;
          break;
        case 'scale':
          a = vs.value ?? 1;
          break;
        default:
          throw bad(`value_scaling type '${vs.type}' of mlm:input '${input.name}' is not supported (min-max, z-score, offset, scale are)`, { got: vs.type });
      }
    }
    const norm = input.norm_type ?? null;
    const st = perBand(input.statistics, c);
    if (norm === 'z-score') {
      if (!st || st.mean === undefined || st.stddev === undefined)
        throw bad(`mlm:input '${input.name}' has norm_type z-score but no statistics with mean and stddev`);
      a /= st.stddev;
      b = (b - st.mean) / st.stddev;
    } else if (norm === 'min-max') {
      if (!st || st.minimum === undefined || st.maximum === undefined || st.maximum === st.minimum)
        throw bad(`mlm:input '${input.name}' has norm_type min-max but no statistics with minimum < maximum`);
      a /= st.maximum - st.minimum;
      b = (b - st.minimum) / (st.maximum - st.minimum);
    } else if (norm !== null) {
      throw bad(`norm_type '${norm}' of mlm:input '${input.name}' is not supported (min-max, z-score are)`, { got: norm });
    }
    scale[c] = a;
    offset[c] = b;
  }
  return { scale, offset };
}

function imageFromStac(input: MlmInput, t: TensorSpec): ImageInputSpec | undefined {
  const order = input.input.dim_order.map((d) => d.toLowerCase());
  const ci = order.findIndex((d) => d === 'channel' || d === 'channels' || d === 'bands');
  const hi = order.indexOf('height');
  const wi = order.indexOf('width');
  if (hi < 0 || wi < 0) return undefined;
  const shape = input.input.shape;
  const dim = (i: number): number => {
    const s = shape[i]!;
    const g = t.shape[i];
    return s > 0 ? s : typeof g === 'number' && g > 0 ? g : -1;
  };
  const height = dim(hi);
  const width = dim(wi);
  if (height <= 0 || width <= 0) throw bad(`mlm:input '${input.name}' needs a fixed height and width to resize images to`);
  const bands = input.bands.map(bandName);
  const channels = ci >= 0 ? dim(ci) : 1;
  if (channels !== 1 && channels !== 3) throw bad(`mlm:input '${input.name}' has ${channels} channels; images feed 1 (grey) or 3 (RGB/BGR)`, { got: channels });
  if (bands.length > 0 && bands.length !== channels)
    throw bad(`mlm:input '${input.name}' lists ${bands.length} bands for ${channels} channels`, { expected: channels, got: bands.length });
  const layout = ci < 0 || ci < hi ? 'NCHW' : 'NHWC';
  if (order.length !== 4 || order[0] !== 'batch')
    throw bad(`mlm:input '${input.name}': images need dim_order [batch, channel, height, width] or [batch, height, width, channel]`, {
      got: input.input.dim_order,
    });
  let colour: ImageInputSpec['order'] = channels === 1 ? 'gray' : 'rgb';
  if (channels === 3 && bands.length === 3) {
    const key = bands.map((b) => (b.startsWith('r') ? 'r' : b.startsWith('g') ? 'g' : b.startsWith('b') ? 'b' : '?')).join('');
    if (key === 'bgr') colour = 'bgr';
    else if (key !== 'rgb') colour = 'rgb';
  }
  const resize = RESIZE[input.resize_type ?? 'interpolation-linear'];
  if (!resize)
    throw bad(`resize_type '${input.resize_type}' of mlm:input '${input.name}' is not supported (${Object.keys(RESIZE).join(', ')})`, {
      got: input.resize_type,
    });
  return {
    input: t.name,
    layout,
    height,
    width,
    channels,
    order: colour,
    type: t.type,
    resize: resize.mode,
    kernel: resize.kernel,
    padValue: 114,
    ...affine(input, channels),
  };
}

function labelsOf(output: MlmOutput | undefined, fallback: string[] | undefined): string[] | undefined {
  const classes = output?.['classification:classes'];
  if (!classes || classes.length === 0) return fallback;
  const sorted = [...classes].sort((a, b) => Number(a.value) - Number(b.value));
  return sorted.map((c) => c.name);
}

function taskFromStac(item: StacItem, sig: ModelSignature, labels: string[] | undefined): OutputTaskSpec | undefined {
  const outs = pair(item.properties['mlm:output'], sig.outputs, 'output');
  const det = outs.find(([o]) => o.tasks.includes('object-detection') || o['inferrer:detection'] !== undefined);
  if (det) {
    const [o, t] = det;
    const d = o['inferrer:detection'] ?? { format: 'yolov5' as const, normalized: false, score_threshold: 0.25, iou_threshold: 0.45, max_detections: 300 };
    if (t.shape.length !== 3)
      throw bad(
        `mlm:output '${o.name}' is an object-detection output but '${t.name}' has rank ${t.shape.length}; YOLO outputs are [batch, boxes, 5 + classes] or [batch, 4 + classes, boxes]`,
      );
    const spec: DetectionOutputSpec = {
      kind: 'detection',
      output: t.name,
      format: d.format,
      normalized: d.normalized,
      scoreThreshold: d.score_threshold,
      iouThreshold: d.iou_threshold,
      maxDetections: d.max_detections,
      activation: o['inferrer:activation'] ?? 'none',
    };
    const l = labelsOf(o, labels);
    if (l) spec.labels = l;
    return spec;
  }
  const cls = outs.filter(([o]) => o.tasks.some((x) => x === 'classification' || x === 'scene-classification'));
  const pick = cls.find(([, t]) => t.type.startsWith('float')) ?? cls[0];
  if (!pick) return undefined;
  const [o, t] = pick;
  const l = labelsOf(o, labels);
  return { kind: 'classification', output: t.name, activation: o['inferrer:activation'] ?? 'none', ...(l ? { labels: l } : {}) };
}

/**
 * The image pipeline of a model version: from its STAC item when it has one, else from the graph and
 * labels (an image-shaped input scaled 0..1, stretched with a linear kernel; a float output with as many
 * scores as labels is a classification).
 */
export function resolvePipeline(sig: ModelSignature, item: StacItem | undefined, labels: string[] | undefined): ImagePipelineSpec {
  if (item) {
    const inputs = pair(item.properties['mlm:input'], sig.inputs, 'input');
    let image: ImageInputSpec | undefined;
    for (const [input, t] of inputs) {
      image = imageFromStac(input, t);
      if (image) break;
    }
    const task = taskFromStac(item, sig, labels);
    return { source: 'stac', ...(image ? { image } : {}), ...(task ? { task } : {}) };
  }
  let image: ImageInputSpec | undefined;
  if (sig.inputs.length === 1) {
    const t = sig.inputs[0]!;
    const g = graphImageInput(t);
    if (g)
      image = {
        input: t.name,
        ...g,
        order: g.channels === 1 ? 'gray' : 'rgb',
        type: t.type,
        resize: 'stretch',
        kernel: 'linear',
        padValue: 114,
        ...affine(undefined, g.channels),
      };
  }
  let task: OutputTaskSpec | undefined;
  const scores = sig.outputs.find((o) => o.type.startsWith('float') && o.shape.length === 2 && (labels === undefined || o.shape[1] === labels.length));
  if (scores && (labels !== undefined || typeof scores.shape[1] === 'number'))
    task = { kind: 'classification', output: scores.name, activation: 'none', ...(labels ? { labels } : {}) };
  return { source: 'graph', ...(image ? { image } : {}), ...(task ? { task } : {}) };
}
