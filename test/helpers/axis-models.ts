/**
 * Models whose first dim is symbolic but is not a batch axis, built in memory with onnx-proto (no Python,
 * nothing to commit). Requests to them must never be joined into one run along dim 0.
 *
 * - `centreModel`: `x` float32 [n] → `y` float32 [n] = x − mean(x); a vector, not n rows of one value.
 * - `transposeModel`: `x` float32 [n, k] → `y` float32 [k, n] = Transpose(x); the output's dim 0 is another symbol.
 * - `pairModel`: `a` float32 [n, 2], `b` float32 [m, 2] → `y` float32 [n, 2] = a + ReduceSum(b, axis 0); two
 *   inputs whose first dims differ (a request may send 1 row of `a` and 3 of `b`).
 */
import { encodeModel, onnx, valueInfo } from './onnx-graph.ts';

const INT64 = onnx.TensorProto.DataType.INT64;

export function centreModel(): Buffer {
  const graph = onnx.GraphProto.create({
    name: 'g',
    node: [
      onnx.NodeProto.create({
        opType: 'ReduceMean',
        input: ['x'],
        output: ['m'],
        attribute: [{ name: 'axes', type: onnx.AttributeProto.AttributeType.INTS, ints: [0] }],
      }),
      onnx.NodeProto.create({ opType: 'Sub', input: ['x', 'm'], output: ['y'] }),
    ],
    input: [valueInfo('x', ['n'])],
    output: [valueInfo('y', ['n'])],
  });
  return encodeModel(graph, 'axis');
}

export function transposeModel(): Buffer {
  const graph = onnx.GraphProto.create({
    name: 'g',
    node: [onnx.NodeProto.create({ opType: 'Transpose', input: ['x'], output: ['y'] })],
    input: [valueInfo('x', ['n', 'k'])],
    output: [valueInfo('y', ['k', 'n'])],
  });
  return encodeModel(graph, 'axis');
}

export function pairModel(): Buffer {
  const graph = onnx.GraphProto.create({
    name: 'g',
    node: [
      onnx.NodeProto.create({ opType: 'ReduceSum', input: ['b', 'axes'], output: ['s'] }),
      onnx.NodeProto.create({ opType: 'Add', input: ['a', 's'], output: ['y'] }),
    ],
    initializer: [onnx.TensorProto.create({ name: 'axes', dims: [1], dataType: INT64, int64Data: [0] })],
    input: [valueInfo('a', ['n', 2]), valueInfo('b', ['m', 2])],
    output: [valueInfo('y', ['n', 2])],
  });
  return encodeModel(graph, 'axis');
}
