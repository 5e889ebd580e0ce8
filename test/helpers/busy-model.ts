/**
 * A model that takes a set time to run whatever its input, built in memory with onnx-proto: `x` float32
 * [batch, 4] → `y` = x (plus 0 × a chain of `steps` 768×768 MatMul + Tanh seeded from ReduceMean(x), about
 * 8 ms per step on one ONNX Runtime thread). The queueing tests use it to build a known backlog.
 */
import { FLOAT, encodeModel, onnx, valueInfo } from './onnx-graph.ts';

const SIDE = 768;

export function busyModel(steps: number): Buffer {
  const w = new Float32Array(SIDE * SIDE);
  for (let i = 0; i < w.length; i++) w[i] = ((i * 2654435761) % 1000) / 1000 / SIDE - 0.5 / SIDE;
  const init = [
    onnx.TensorProto.create({ name: 'W', dims: [SIDE, SIDE], dataType: FLOAT, rawData: new Uint8Array(w.buffer) }),
    onnx.TensorProto.create({ name: 'zero', dims: [], dataType: FLOAT, floatData: [0] }),
  ];
  const node = [
    onnx.NodeProto.create({
      opType: 'ReduceMean',
      input: ['x'],
      output: ['m'],
      attribute: [{ name: 'keepdims', type: onnx.AttributeProto.AttributeType.INT, i: 0 }],
    }),
    onnx.NodeProto.create({ opType: 'Mul', input: ['W', 'm'], output: ['t0'] }),
  ];
  for (let i = 0; i < steps; i++) {
    node.push(onnx.NodeProto.create({ opType: 'MatMul', input: [`t${i}`, 'W'], output: [`p${i}`] }));
    node.push(onnx.NodeProto.create({ opType: 'Tanh', input: [`p${i}`], output: [`t${i + 1}`] }));
  }
  node.push(
    onnx.NodeProto.create({
      opType: 'ReduceSum',
      input: [`t${steps}`],
      output: ['s'],
      attribute: [{ name: 'keepdims', type: onnx.AttributeProto.AttributeType.INT, i: 0 }],
    }),
    onnx.NodeProto.create({ opType: 'Mul', input: ['s', 'zero'], output: ['z'] }),
    onnx.NodeProto.create({ opType: 'Add', input: ['x', 'z'], output: ['y'] }),
  );
  const graph = onnx.GraphProto.create({
    name: 'busy',
    node,
    initializer: init,
    input: [valueInfo('x', ['batch', 4])],
    output: [valueInfo('y', ['batch', 4])],
  });
  return encodeModel(graph);
}
