/**
 * Models that are cheap to send and costly to open, built in memory with onnx-proto (no Python, no files
 * to commit). Both are valid ONNX that ONNX Runtime accepts; what they cost is the point.
 *
 * - `constantOfShapeModel`: ~200 bytes. ConstantOfShape of an initializer shape [side, side] added to the
 *   input; constant folding at session creation materialises side² floats (8192² = 64 M floats, 256 MiB,
 *   about 500 MB of peak memory with the copies the optimiser makes).
 * - `identityChainModel`: a chain of `n` Identity nodes (300 000: 8.8 MB); parsing and optimising the graph
 *   takes tens of seconds and hundreds of MB.
 * - `shapeFromInputModel`: cheap to open, costly to run: ConstantOfShape (of `value`) of the INT64 input
 *   `shape` (any length), so the request chooses the size of the float output `y` ([40000, 40000]: 6.4 GB).
 * - `tileModel`: Tile of `x` [batch, 1] to `y` [batch, `width`]: an output whose size the declared shape
 *   gives from the request's rows (1000 rows of 100 000: 400 MB from a 4 KB input).
 * - `tripCountLoopModel`: a Loop that adds 1 to `x` [1] `trips` times (an INT64 scalar the request sends):
 *   10^12 trips run for days.
 */
import { FLOAT, encodeModel, onnx, valueInfo } from './onnx-graph.ts';

export function constantOfShapeModel(side = 8192): Buffer {
  const shape = onnx.TensorProto.create({ name: 's', dims: [2], dataType: onnx.TensorProto.DataType.INT64, int64Data: [side, side] });
  const graph = onnx.GraphProto.create({
    name: 'g',
    node: [
      onnx.NodeProto.create({ opType: 'ConstantOfShape', input: ['s'], output: ['c'] }),
      onnx.NodeProto.create({ opType: 'Add', input: ['c', 'x'], output: ['y'] }),
    ],
    initializer: [shape],
    input: [valueInfo('x', [1])],
    output: [valueInfo('y', [side, side])],
  });
  return encodeModel(graph, 'costly');
}

export function identityChainModel(n = 300_000): Buffer {
  const node = new Array(n);
  for (let i = 0; i < n; i++)
    node[i] = onnx.NodeProto.create({ opType: 'Identity', input: [i === 0 ? 'x' : `t${i - 1}`], output: [i === n - 1 ? 'y' : `t${i}`] });
  const graph = onnx.GraphProto.create({ name: 'g', node, input: [valueInfo('x', ['batch', 4])], output: [valueInfo('y', ['batch', 4])] });
  return encodeModel(graph, 'costly');
}

export function shapeFromInputModel(value = 0): Buffer {
  const fill = onnx.TensorProto.create({ name: 'value', dims: [1], dataType: FLOAT, floatData: [value] });
  const graph = onnx.GraphProto.create({
    name: 'g',
    node: [
      onnx.NodeProto.create({
        opType: 'ConstantOfShape',
        input: ['shape'],
        output: ['y'],
        attribute: [{ name: 'value', type: onnx.AttributeProto.AttributeType.TENSOR, t: fill }],
      }),
    ],
    input: [valueInfo('shape', ['rank'], onnx.TensorProto.DataType.INT64)],
    output: [valueInfo('y', ['d0', 'd1'])],
  });
  return encodeModel(graph, 'costly');
}

export function tileModel(width = 100_000): Buffer {
  const repeats = onnx.TensorProto.create({ name: 'repeats', dims: [2], dataType: onnx.TensorProto.DataType.INT64, int64Data: [1, width] });
  const graph = onnx.GraphProto.create({
    name: 'g',
    node: [onnx.NodeProto.create({ opType: 'Tile', input: ['x', 'repeats'], output: ['y'] })],
    initializer: [repeats],
    input: [valueInfo('x', ['batch', 1])],
    output: [valueInfo('y', ['batch', width])],
  });
  return encodeModel(graph, 'costly');
}

export function tripCountLoopModel(): Buffer {
  const BOOL = onnx.TensorProto.DataType.BOOL;
  const body = onnx.GraphProto.create({
    name: 'body',
    node: [
      onnx.NodeProto.create({ opType: 'Identity', input: ['cond_in'], output: ['cond_out'] }),
      onnx.NodeProto.create({ opType: 'Add', input: ['v_in', 'one'], output: ['v_out'] }),
    ],
    initializer: [onnx.TensorProto.create({ name: 'one', dims: [1], dataType: FLOAT, floatData: [1] })],
    input: [valueInfo('i', [], onnx.TensorProto.DataType.INT64), valueInfo('cond_in', [], BOOL), valueInfo('v_in', [1])],
    output: [valueInfo('cond_out', [], BOOL), valueInfo('v_out', [1])],
  });
  const graph = onnx.GraphProto.create({
    name: 'g',
    node: [
      onnx.NodeProto.create({
        opType: 'Loop',
        input: ['trips', 'go', 'x'],
        output: ['y'],
        attribute: [{ name: 'body', type: onnx.AttributeProto.AttributeType.GRAPH, g: body }],
      }),
    ],
    initializer: [onnx.TensorProto.create({ name: 'go', dims: [], dataType: BOOL, int32Data: [1] })],
    input: [valueInfo('trips', [], onnx.TensorProto.DataType.INT64), valueInfo('x', [1])],
    output: [valueInfo('y', [1])],
  });
  return encodeModel(graph, 'costly');
}

/**
 * Models ONNX Runtime refuses with messages that name files: an operator that does not exist (refused when
 * the session is created: "Load model from <file> failed: …") and a Reshape to [-1, 2] that fails at run
 * time for an odd number of elements (the message names the runtime's source file).
 */
export function unknownOperatorModel(): Buffer {
  const graph = onnx.GraphProto.create({
    name: 'g',
    node: [onnx.NodeProto.create({ opType: 'NoSuchOperator', input: ['x'], output: ['y'] })],
    input: [valueInfo('x', ['batch', 4])],
    output: [valueInfo('y', ['batch', 4])],
  });
  return encodeModel(graph, 'costly');
}

export function oddReshapeModel(): Buffer {
  const shape = onnx.TensorProto.create({ name: 's', dims: [2], dataType: onnx.TensorProto.DataType.INT64, int64Data: [-1, 2] });
  const graph = onnx.GraphProto.create({
    name: 'g',
    node: [onnx.NodeProto.create({ opType: 'Reshape', input: ['x', 's'], output: ['y'] })],
    initializer: [shape],
    input: [valueInfo('x', ['batch', 'n'])],
    output: [valueInfo('y', ['m', 2])],
  });
  return encodeModel(graph, 'costly');
}
