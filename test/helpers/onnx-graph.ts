/**
 * The pieces the test models share, built in memory with onnx-proto (no Python, nothing to commit): a
 * tensor's declared type and shape, and a graph written as a model file (IR 8, opset 13).
 */
import onnxProto from 'onnx-proto';

export const { onnx } = onnxProto;
export const FLOAT = onnx.TensorProto.DataType.FLOAT;

/** A graph input or output: `dims` are sizes, or names of symbolic dims (ONNX dim_param). */
export function valueInfo(name: string, dims: (number | string)[], elemType: number = FLOAT): InstanceType<typeof onnx.ValueInfoProto> {
  return onnx.ValueInfoProto.create({
    name,
    type: onnx.TypeProto.create({
      tensorType: onnx.TypeProto.Tensor.create({
        elemType,
        shape: onnx.TensorShapeProto.create({ dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) }),
      }),
    }),
  });
}

/** The model file of `graph`, its producer named `producer`. */
export function encodeModel(graph: InstanceType<typeof onnx.GraphProto>, producer = 'inferrer-tests'): Buffer {
  const model = onnx.ModelProto.create({ irVersion: 8, producerName: producer, opsetImport: [{ domain: '', version: 13 }], graph });
  return Buffer.from(onnx.ModelProto.encode(model).finish());
}
