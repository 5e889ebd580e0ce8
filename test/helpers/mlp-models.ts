/**
 * Small distinct MLPs built in memory with onnx-proto (no Python, nothing to commit): input `x` [batch, in],
 * `layers` Gemm layers with ReLU between them, output `y` [batch, out]. Weights come from a seeded
 * generator, so a seed names one model and two seeds give two different models of the same shape.
 * The many-models e2e suite and bench fill a store with them.
 */
import { FLOAT, encodeModel, onnx, valueInfo } from './onnx-graph.ts';

export interface MlpShape {
  inputs: number;
  hidden: number;
  layers: number;
  outputs: number;
}

/** Three sizes: ~20 KB, ~0.3 MB and ~1.1 MB of weights. */
export const MLP_SIZES: readonly MlpShape[] = [
  { inputs: 16, hidden: 64, layers: 2, outputs: 4 },
  { inputs: 32, hidden: 256, layers: 3, outputs: 8 },
  { inputs: 64, hidden: 512, layers: 3, outputs: 8 },
];

/** mulberry32: a small seeded generator, enough for distinct weights. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function weights(name: string, dims: number[], next: () => number): InstanceType<typeof onnx.TensorProto> {
  const n = dims.reduce((a, b) => a * b, 1);
  const scale = 1 / Math.sqrt(dims[0]!);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = (next() * 2 - 1) * scale;
  return onnx.TensorProto.create({ name, dims, dataType: FLOAT, rawData: new Uint8Array(data.buffer) });
}

/** The ONNX bytes of one MLP. */
export function mlpModel(shape: MlpShape, seed: number): Buffer {
  const next = random(seed);
  const node: InstanceType<typeof onnx.NodeProto>[] = [];
  const initializer: InstanceType<typeof onnx.TensorProto>[] = [];
  let input = 'x';
  let width = shape.inputs;
  for (let l = 0; l < shape.layers; l++) {
    const last = l === shape.layers - 1;
    const out = last ? shape.outputs : shape.hidden;
    initializer.push(weights(`w${l}`, [width, out], next), weights(`b${l}`, [out], next));
    const gemm = last ? 'y' : `h${l}`;
    node.push(onnx.NodeProto.create({ opType: 'Gemm', input: [input, `w${l}`, `b${l}`], output: [gemm] }));
    if (!last) {
      node.push(onnx.NodeProto.create({ opType: 'Relu', input: [gemm], output: [`r${l}`] }));
      input = `r${l}`;
    }
    width = out;
  }
  const graph = onnx.GraphProto.create({
    name: 'mlp',
    node,
    initializer,
    input: [valueInfo('x', ['batch', shape.inputs])],
    output: [valueInfo('y', ['batch', shape.outputs])],
  });
  return encodeModel(graph, 'inferrer-mlp');
}
