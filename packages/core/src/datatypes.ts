/**
 * Tensor datatypes: the Open Inference Protocol (v2) names, the ONNX Runtime type strings, and the typed
 * arrays that hold them. One table so every codec agrees.
 */

export type V2Datatype = 'BOOL' | 'UINT8' | 'UINT16' | 'UINT32' | 'UINT64' | 'INT8' | 'INT16' | 'INT32' | 'INT64' | 'FP16' | 'FP32' | 'FP64' | 'BYTES';

export type OrtType = 'bool' | 'uint8' | 'uint16' | 'uint32' | 'uint64' | 'int8' | 'int16' | 'int32' | 'int64' | 'float16' | 'float32' | 'float64' | 'string';

export type NumericArray =
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigUint64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Float32Array
  | Float64Array;

export type TensorData = NumericArray | string[];

type ArrayCtor = {
  new (length: number): NumericArray;
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): NumericArray;
  readonly BYTES_PER_ELEMENT: number;
};

export interface DatatypeInfo {
  v2: V2Datatype;
  ort: OrtType;
  /** Bytes per element; 0 for BYTES (variable length). */
  size: number;
  /** Typed array class; BOOL is Uint8Array, FP16 is Uint16Array (raw bits). */
  array?: ArrayCtor;
  /** Values are bigint (INT64/UINT64). */
  bigint: boolean;
  /** Integer range for validation of JSON numbers. */
  min?: number | bigint;
  max?: number | bigint;
  float: boolean;
}

const table: DatatypeInfo[] = [
  { v2: 'BOOL', ort: 'bool', size: 1, array: Uint8Array, bigint: false, float: false, min: 0, max: 1 },
  { v2: 'UINT8', ort: 'uint8', size: 1, array: Uint8Array, bigint: false, float: false, min: 0, max: 255 },
  { v2: 'UINT16', ort: 'uint16', size: 2, array: Uint16Array, bigint: false, float: false, min: 0, max: 65535 },
  { v2: 'UINT32', ort: 'uint32', size: 4, array: Uint32Array, bigint: false, float: false, min: 0, max: 4294967295 },
  { v2: 'UINT64', ort: 'uint64', size: 8, array: BigUint64Array as unknown as ArrayCtor, bigint: true, float: false, min: 0n, max: 18446744073709551615n },
  { v2: 'INT8', ort: 'int8', size: 1, array: Int8Array, bigint: false, float: false, min: -128, max: 127 },
  { v2: 'INT16', ort: 'int16', size: 2, array: Int16Array, bigint: false, float: false, min: -32768, max: 32767 },
  { v2: 'INT32', ort: 'int32', size: 4, array: Int32Array, bigint: false, float: false, min: -2147483648, max: 2147483647 },
  {
    v2: 'INT64',
    ort: 'int64',
    size: 8,
    array: BigInt64Array as unknown as ArrayCtor,
    bigint: true,
    float: false,
    min: -9223372036854775808n,
    max: 9223372036854775807n,
  },
  { v2: 'FP16', ort: 'float16', size: 2, array: Uint16Array, bigint: false, float: true },
  { v2: 'FP32', ort: 'float32', size: 4, array: Float32Array, bigint: false, float: true },
  { v2: 'FP64', ort: 'float64', size: 8, array: Float64Array, bigint: false, float: true },
  { v2: 'BYTES', ort: 'string', size: 0, bigint: false, float: false },
];

const byV2 = new Map(table.map((t) => [t.v2, t]));
const byOrt = new Map(table.map((t) => [t.ort, t]));

export const V2_DATATYPES: readonly V2Datatype[] = table.map((t) => t.v2);

export function datatypeOfV2(name: string): DatatypeInfo | undefined {
  return byV2.get(name as V2Datatype);
}

export function datatypeOfOrt(name: string): DatatypeInfo | undefined {
  return byOrt.get(name as OrtType);
}

export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
