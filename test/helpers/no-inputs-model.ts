/**
 * A valid ONNX model with no inputs, built in memory with onnx-proto: a graph of constants. `t` float32
 * [2, 2] = [[1.5, -2], [0.25, 8]], `i` int64 [3] = [7, -1, 9007199254740993], `g` bool [2, 2] = t > 0.5.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
const T = onnx.TensorProto.DataType;

export const NO_INPUTS_OUTPUTS = {
  t: { datatype: 'FP32', shape: [2, 2], data: [1.5, -2, 0.25, 8] },
  i: { datatype: 'INT64', shape: [3], data: [7n, -1n, 9007199254740993n] },
  g: { datatype: 'BOOL', shape: [2, 2], data: [true, false, false, true] },
};

function output(name: string, elemType: number, dims: number[]): InstanceType<typeof onnx.ValueInfoProto> {
  return onnx.ValueInfoProto.create({
    name,
    type: onnx.TypeProto.create({
      tensorType: onnx.TypeProto.Tensor.create({ elemType, shape: onnx.TensorShapeProto.create({ dim: dims.map((d) => ({ dimValue: d })) }) }),
    }),
  });
}

export function noInputsModel(): Buffer {
  const table = onnx.TensorProto.create({ name: 'table', dims: [2, 2], dataType: T.FLOAT, floatData: [1.5, -2, 0.25, 8] });
  const ids = onnx.TensorProto.create({ name: 'ids', dims: [3], dataType: T.INT64, int64Data: [7, -1, '9007199254740993'] as never });
  const half = onnx.TensorProto.create({ name: 'half', dims: [], dataType: T.FLOAT, floatData: [0.5] });
  const graph = onnx.GraphProto.create({
    name: 'no_inputs',
    node: [
      onnx.NodeProto.create({ opType: 'Constant', output: ['t'], attribute: [{ name: 'value', type: onnx.AttributeProto.AttributeType.TENSOR, t: table }] }),
      onnx.NodeProto.create({ opType: 'Constant', output: ['i'], attribute: [{ name: 'value', type: onnx.AttributeProto.AttributeType.TENSOR, t: ids }] }),
      onnx.NodeProto.create({ opType: 'Greater', input: ['t', 'half'], output: ['g'] }),
    ],
    initializer: [half],
    input: [],
    output: [output('t', T.FLOAT, [2, 2]), output('i', T.INT64, [3]), output('g', T.BOOL, [2, 2])],
  });
  const model = onnx.ModelProto.create({ irVersion: 8, producerName: 'inferrer-tests', opsetImport: [{ domain: '', version: 13 }], graph });
  return Buffer.from(onnx.ModelProto.encode(model).finish());
}
