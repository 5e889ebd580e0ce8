/**
 * Builds a ResNet-50 (torchvision v1.5 topology, batch norm folded into the convolutions) as an ONNX file
 * with random weights from a fixed seed, so the bench needs no download and no Python. Input `input`
 * float32 [batch, 3, 224, 224] with a symbolic batch axis, output `logits` [batch, 1000].
 *
 * Weights are He-uniform scaled and the last convolution of each residual branch is damped, so activations
 * stay finite and away from denormals through all 50 layers (denormals or NaNs would distort the timings).
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/** Bump when the graph or the weights change, so a stale cached file is rebuilt. */
export const RESNET50_RECIPE = 'resnet50-v1.5-bnfolded-seed42-r1';
const SEED = 42;
const STAGES: readonly { blocks: number; width: number; stride: number }[] = [
  { blocks: 3, width: 64, stride: 1 },
  { blocks: 4, width: 128, stride: 2 },
  { blocks: 6, width: 256, stride: 2 },
  { blocks: 3, width: 512, stride: 2 },
];

export interface BuiltModel {
  file: string;
  parameters: number;
  bytes: number;
  /** Whether this run built it (false: taken from the cache). */
  built: boolean;
  buildSeconds: number;
}

/** mulberry32: small, fast, and the same numbers on every machine. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class GraphBuilder {
  readonly nodes: InstanceType<typeof onnx.NodeProto>[] = [];
  readonly initializers: InstanceType<typeof onnx.TensorProto>[] = [];
  parameters = 0;
  #n = 0;
  readonly #rand = rng(SEED);

  name(prefix: string): string {
    return `${prefix}_${this.#n++}`;
  }

  /** A float32 initializer with values uniform in [-limit, limit]. */
  weight(prefix: string, dims: number[], limit: number): string {
    const count = dims.reduce((a, b) => a * b, 1);
    const data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = (this.#rand() * 2 - 1) * limit;
    const name = this.name(prefix);
    this.initializers.push(onnx.TensorProto.create({ name, dims, dataType: onnx.TensorProto.DataType.FLOAT, rawData: new Uint8Array(data.buffer) }));
    this.parameters += count;
    return name;
  }

  node(opType: string, inputs: string[], attrs: Record<string, number | number[]> = {}): string {
    const out = this.name(opType.toLowerCase());
    const attribute = Object.entries(attrs).map(([name, v]) =>
      Array.isArray(v)
        ? onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INTS, ints: v })
        : onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INT, i: v }),
    );
    this.nodes.push(onnx.NodeProto.create({ opType, input: inputs, output: [out], name: out, attribute }));
    return out;
  }

  /** Convolution with a bias (a batch norm folded in); `damp` scales the weights down (residual branch ends). */
  conv(x: string, cin: number, cout: number, k: number, stride: number, damp = 1): string {
    const fanIn = cin * k * k;
    const w = this.weight('conv_w', [cout, cin, k, k], damp * Math.sqrt(6 / fanIn));
    const b = this.weight('conv_b', [cout], 0.01);
    const pad = (k - 1) >> 1;
    return this.node('Conv', [x, w, b], { kernel_shape: [k, k], strides: [stride, stride], pads: [pad, pad, pad, pad], dilations: [1, 1], group: 1 });
  }

  relu(x: string): string {
    return this.node('Relu', [x]);
  }
}

function bottleneck(g: GraphBuilder, x: string, cin: number, width: number, stride: number): string {
  const cout = width * 4;
  let y = g.relu(g.conv(x, cin, width, 1, 1));
  y = g.relu(g.conv(y, width, width, 3, stride));
  y = g.conv(y, width, cout, 1, 1, 0.3);
  const shortcut = stride !== 1 || cin !== cout ? g.conv(x, cin, cout, 1, stride) : x;
  return g.relu(g.node('Add', [y, shortcut]));
}

/** Encodes the whole model; returns the bytes and the parameter count. */
export function buildResnet50(): { bytes: Uint8Array; parameters: number } {
  const g = new GraphBuilder();
  let x = g.relu(g.conv('input', 3, 64, 7, 2));
  x = g.node('MaxPool', [x], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] });
  let channels = 64;
  for (const stage of STAGES) {
    for (let i = 0; i < stage.blocks; i++) {
      x = bottleneck(g, x, channels, stage.width, i === 0 ? stage.stride : 1);
      channels = stage.width * 4;
    }
  }
  x = g.node('GlobalAveragePool', [x]);
  x = g.node('Flatten', [x], { axis: 1 });
  const fcW = g.weight('fc_w', [1000, channels], Math.sqrt(6 / channels));
  const fcB = g.weight('fc_b', [1000], 0.01);
  g.nodes.push(
    onnx.NodeProto.create({
      opType: 'Gemm',
      input: [x, fcW, fcB],
      output: ['logits'],
      name: 'fc',
      attribute: [onnx.AttributeProto.create({ name: 'transB', type: onnx.AttributeProto.AttributeType.INT, i: 1 })],
    }),
  );

  const tensorType = (dims: (number | string)[]) =>
    onnx.TypeProto.create({
      tensorType: onnx.TypeProto.Tensor.create({
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: onnx.TensorShapeProto.create({ dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) }),
      }),
    });
  const model = onnx.ModelProto.create({
    irVersion: 7,
    producerName: 'inferrer-bench',
    producerVersion: RESNET50_RECIPE,
    opsetImport: [{ domain: '', version: 13 }],
    graph: onnx.GraphProto.create({
      name: 'resnet50',
      node: g.nodes,
      initializer: g.initializers,
      input: [onnx.ValueInfoProto.create({ name: 'input', type: tensorType(['batch', 3, 224, 224]) })],
      output: [onnx.ValueInfoProto.create({ name: 'logits', type: tensorType(['batch', 1000]) })],
    }),
  });
  return { bytes: onnx.ModelProto.encode(model).finish(), parameters: g.parameters };
}

/** The cached model under `cacheDir`, built (and written atomically) when missing. */
export async function ensureResnet50(cacheDir: string): Promise<BuiltModel> {
  const tag = createHash('sha256').update(RESNET50_RECIPE).digest('hex').slice(0, 10);
  const file = path.join(cacheDir, `resnet50-${tag}.onnx`);
  const meta = `${file}.json`;
  try {
    const facts = JSON.parse(await readFile(meta, 'utf8')) as { parameters: number; bytes: number };
    const s = await stat(file);
    if (s.size === facts.bytes) return { file, parameters: facts.parameters, bytes: s.size, built: false, buildSeconds: 0 };
  } catch {
    // not cached yet
  }
  const started = performance.now();
  await mkdir(cacheDir, { recursive: true });
  const { bytes, parameters } = buildResnet50();
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, bytes);
  await rename(tmp, file);
  await writeFile(meta, JSON.stringify({ recipe: RESNET50_RECIPE, parameters, bytes: bytes.length }));
  return { file, parameters, bytes: bytes.length, built: true, buildSeconds: (performance.now() - started) / 1000 };
}
