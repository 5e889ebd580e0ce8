/**
 * Models whose first dim is symbolic but is not a batch axis, built in memory with onnx-proto (no Python,
 * nothing to commit). Requests to them must never be joined into one run along dim 0.
 *
 * - `centreModel`: `x` float32 [n] → `y` float32 [n] = x − mean(x); a vector, not n rows of one value.
 * - `transposeModel`: `x` float32 [n, k] → `y` float32 [k, n] = Transpose(x); the output's dim 0 is another symbol.
 * - `pairModel`: `a` float32 [n, 2], `b` float32 [m, 2] → `y` float32 [n, 2] = a + ReduceSum(b, axis 0); two
 *   inputs whose first dims differ (a request may send 1 row of `a` and 3 of `b`).
 */
import { FLOAT, encodeModel, onnx, valueInfo } from './onnx-graph.ts';

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

/**
 * `ids` int64 [batch] → `y` float32 [batch, 2]: rows of a 4 × 2 table (Gather). Its only input is a vector,
 * so the graph's dims cannot say that dim 0 is rows; `batching.batch_axis: "first"` says so.
 */
export function lookupModel(): Buffer {
  const graph = onnx.GraphProto.create({
    name: 'g',
    node: [onnx.NodeProto.create({ opType: 'Gather', input: ['table', 'ids'], output: ['y'] })],
    initializer: [onnx.TensorProto.create({ name: 'table', dims: [4, 2], dataType: FLOAT, floatData: [0, 1, 10, 11, 20, 21, 30, 31] })],
    input: [valueInfo('ids', ['batch'], INT64)],
    output: [valueInfo('y', ['batch', 2])],
  });
  return encodeModel(graph, 'axis');
}

/** `x` float32 [batch, 2] → `y` = −x: a batch axis by the graph's dims (or, with `dims` [3], a fixed dim 0). */
export function negateModel(dims: (number | string)[] = ['batch', 2]): Buffer {
  const graph = onnx.GraphProto.create({
    name: 'g',
    node: [onnx.NodeProto.create({ opType: 'Neg', input: ['x'], output: ['y'] })],
    input: [valueInfo('x', dims)],
    output: [valueInfo('y', dims)],
  });
  return encodeModel(graph, 'axis');
}
