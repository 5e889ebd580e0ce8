/**
 * ModelInfer over the HTTP path: a gRPC ModelInferRequest becomes the Open Inference Protocol body with
 * binary tensor data that a modelhost already takes (a JSON header, then each input's raw bytes), and the
 * modelhost's answer (every output asked for as binary data) becomes a ModelInferResponse with
 * `raw_output_contents`. So a gRPC request takes exactly the path an HTTP binary request takes (grouping,
 * balancer, batcher), and only the modelhost decodes tensors.
 *
 * Inputs come as `raw_input_contents` (one per input, little-endian, BYTES elements length-prefixed: the
 * binary extension's layout) or as typed `contents` lists, which are laid out the same way here, checked
 * against the datatype's range and the shape's element count.
 */
import { InferrerError, datatypeOfV2, elementCount } from '@inferrer/core';

/** One InferParameter as proto-loader hands it over (int64 as a decimal string). */
export interface GrpcParameter {
  parameter_choice?: 'bool_param' | 'int64_param' | 'string_param' | 'double_param' | 'uint64_param';
  bool_param?: boolean;
  int64_param?: string;
  string_param?: string;
  double_param?: number;
  uint64_param?: string;
}

export interface GrpcContents {
  bool_contents?: boolean[];
  int_contents?: number[];
  int64_contents?: string[];
  uint_contents?: number[];
  uint64_contents?: string[];
  fp32_contents?: number[];
  fp64_contents?: number[];
  bytes_contents?: Buffer[];
}

export interface GrpcInferRequest {
  model_name: string;
  model_version: string;
  id: string;
  parameters: Record<string, GrpcParameter>;
  inputs: { name: string; datatype: string; shape: string[]; parameters: Record<string, GrpcParameter>; contents: GrpcContents | null }[];
  outputs: { name: string; parameters: Record<string, GrpcParameter> }[];
  raw_input_contents: Buffer[];
}

export interface GrpcInferResponse {
  model_name: string;
  model_version: string;
  id: string;
  parameters: Record<string, GrpcParameter>;
  outputs: { name: string; datatype: string; shape: number[]; parameters: Record<string, GrpcParameter> }[];
  raw_output_contents: Buffer[];
}

type ContentField = keyof GrpcContents;

/** Where each datatype's values go in `contents` (FP16 has no list: it travels raw). */
const FIELD_OF: Record<string, ContentField | undefined> = {
  BOOL: 'bool_contents',
  UINT8: 'uint_contents',
  UINT16: 'uint_contents',
  UINT32: 'uint_contents',
  UINT64: 'uint64_contents',
  INT8: 'int_contents',
  INT16: 'int_contents',
  INT32: 'int_contents',
  INT64: 'int64_contents',
  FP32: 'fp32_contents',
  FP64: 'fp64_contents',
  BYTES: 'bytes_contents',
};
const FIELDS: readonly ContentField[] = [
  'bool_contents',
  'int_contents',
  'int64_contents',
  'uint_contents',
  'uint64_contents',
  'fp32_contents',
  'fp64_contents',
  'bytes_contents',
];

const bad = (message: string, details: Record<string, unknown>): InferrerError => new InferrerError('INVALID_INPUT', message, details);

/** A parameter's value as the JSON body carries it (64-bit integers as numbers: priorities, timeouts, counts). */
export function parameterValue(p: GrpcParameter): boolean | number | string | undefined {
  switch (p.parameter_choice) {
    case 'bool_param':
      return p.bool_param;
    case 'int64_param':
      return Number(p.int64_param);
    case 'uint64_param':
      return Number(p.uint64_param);
    case 'double_param':
      return p.double_param;
    case 'string_param':
      return p.string_param;
    default:
      return undefined;
  }
}

function parameters(map: Record<string, GrpcParameter> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, p] of Object.entries(map ?? {})) {
    const v = parameterValue(p);
    if (v !== undefined) out[k] = v;
  }
  return out;
}

/**
 * The modelhost's request body for a ModelInferRequest: the JSON header and the inputs' bytes, as parts
 * (a large tensor is not copied again; the dataplane joins small bodies itself).
 */
export function inferBody(req: GrpcInferRequest): { parts: Buffer[]; length: number; headerLength: number } {
  const raw = req.raw_input_contents ?? [];
  if (raw.length > 0 && raw.length !== req.inputs.length) {
    throw new InferrerError('INVALID_REQUEST', `raw_input_contents has ${raw.length} entries for ${req.inputs.length} inputs; send one per input, in order`, {
      expected: req.inputs.length,
      got: raw.length,
    });
  }
  const chunks: Buffer[] = [];
  const inputs = req.inputs.map((input, i) => {
    noSharedMemory(`input '${input.name}'`, input.parameters, 'send its data in raw_input_contents or contents');
    const shape = input.shape.map((d) => Number(d));
    let bytes: Buffer;
    if (raw.length > 0) {
      if (input.contents && FIELDS.some((f) => (input.contents![f]?.length ?? 0) > 0)) {
        throw bad(`input '${input.name}' has contents while the request uses raw_input_contents; send every input one way`, { input: input.name });
      }
      bytes = raw[i]!;
      rawSizeCheck(input.name, input.datatype, shape, bytes.length);
    } else {
      bytes = contentBytes(input.name, input.datatype, shape, input.contents);
    }
    chunks.push(bytes);
    return { name: input.name, datatype: input.datatype, shape, parameters: { binary_data_size: bytes.length } };
  });
  const outputs = req.outputs.map((o) => {
    noSharedMemory(`output '${o.name}'`, o.parameters, 'ask for it without one to get it in raw_output_contents');
    const p = parameters(o.parameters);
    return { name: o.name, parameters: { ...(p.classification !== undefined ? { classification: p.classification } : {}), binary_data: true } };
  });
  const params = parameters(req.parameters);
  delete params.binary_data_output;
  const header = { ...(req.id ? { id: req.id } : {}), inputs, ...(outputs.length > 0 ? { outputs } : {}), parameters: { ...params, binary_data_output: true } };
  const json = Buffer.from(JSON.stringify(header));
  let length = json.length;
  for (const c of chunks) length += c.length;
  return { parts: [json, ...chunks], length, headerLength: json.length };
}

/**
 * A fixed-size datatype's raw entry holds exactly its shape's elements, said in the gRPC request's own terms
 * (the modelhost would name the binary extension's `binary_data_size`, which a gRPC client never sent).
 */
function rawSizeCheck(name: string, datatype: string, shape: number[], got: number): void {
  const info = datatypeOfV2(datatype);
  if (!info || info.size === 0 || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) return;
  const count = elementCount(shape);
  const expected = count * info.size;
  if (got !== expected) {
    throw bad(
      `input '${name}' has shape [${shape.join(', ')}] (${count} ${datatype} elements, ${expected} bytes) but its raw_input_contents entry holds ${got} bytes`,
      { input: name, expected, got },
    );
  }
}

/**
 * Triton's clients name a registered shared memory region in a tensor's parameters; the Inferrer has none
 * (its register calls answer UNIMPLEMENTED), so such a tensor is refused rather than its region ignored.
 */
function noSharedMemory(what: string, params: Record<string, GrpcParameter> | undefined, instead: string): void {
  const region = params?.shared_memory_region;
  if (!region) return;
  const name = String(parameterValue(region) ?? '').slice(0, 64);
  throw bad(`${what} names shared memory region ${JSON.stringify(name)}, but the Inferrer has no shared memory: ${instead}`, {
    tensor: what,
    parameter: 'shared_memory_region',
  });
}

/** Typed `contents` laid out as the binary extension carries them. */
function contentBytes(name: string, datatype: string, shape: number[], contents: GrpcContents | null): Buffer {
  const field = FIELD_OF[datatype];
  const given = FIELDS.filter((f) => (contents?.[f]?.length ?? 0) > 0);
  if (!field) {
    if (given.length > 0 || datatype !== 'FP16') {
      throw bad(
        `input '${name}' has datatype ${JSON.stringify(datatype.slice(0, 32))}, which has no contents list${datatype === 'FP16' ? '; send FP16 as raw_input_contents' : ''}`,
        { input: name },
      );
    }
  }
  const other = given.find((f) => f !== field);
  if (other)
    throw bad(`input '${name}' is ${datatype}: its values go in ${field ?? 'raw_input_contents'}, not ${other}`, { input: name, expected: field, got: other });
  const values = (field ? contents?.[field] : undefined) ?? [];
  const valid = shape.every((d) => Number.isSafeInteger(d) && d >= 0);
  const count = valid ? elementCount(shape) : Number.NaN;
  if (valid && values.length !== count) {
    throw bad(`input '${name}' has shape [${shape.join(', ')}] (${count} elements) but its contents hold ${values.length}`, {
      input: name,
      expected: count,
      got: values.length,
    });
  }
  if (datatype === 'BYTES') {
    const parts: Buffer[] = [];
    for (const b of values as Buffer[]) {
      const len = Buffer.allocUnsafe(4);
      len.writeUInt32LE(b.length, 0);
      parts.push(len, b);
    }
    return Buffer.concat(parts);
  }
  const info = datatypeOfV2(datatype);
  if (!info?.array) return Buffer.alloc(0);
  const arr = new info.array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (info.bigint) {
      const n = BigInt(v as string);
      if (n < (info.min as bigint) || n > (info.max as bigint))
        throw bad(`input '${name}' element ${i}: ${n} does not fit ${datatype}`, { input: name, index: i });
      (arr as BigInt64Array)[i] = n;
    } else if (info.float) {
      (arr as Float32Array)[i] = v as number;
    } else {
      const n = typeof v === 'boolean' ? (v ? 1 : 0) : (v as number);
      if (n < (info.min as number) || n > (info.max as number))
        throw bad(`input '${name}' element ${i}: ${n} does not fit ${datatype}`, { input: name, index: i });
      (arr as Int32Array)[i] = n;
    }
  }
  return Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength);
}

/** A modelhost's answer (JSON header, then every output's bytes) as a ModelInferResponse. */
export function inferResponse(answer: Buffer, headerLength: string | undefined): GrpcInferResponse {
  const end = headerLength === undefined ? answer.length : Number(headerLength);
  const head = JSON.parse(answer.toString('utf8', 0, end)) as {
    model_name: string;
    model_version: string;
    id?: string;
    outputs?: { name: string; datatype: string; shape: number[]; parameters?: { binary_data_size?: number } }[];
  };
  const outputs: GrpcInferResponse['outputs'] = [];
  const raw: Buffer[] = [];
  let at = end;
  for (const o of head.outputs ?? []) {
    const size = o.parameters?.binary_data_size;
    if (typeof size !== 'number') throw new InferrerError('INTERNAL', `a modelhost answered output ${o.name} without binary data`);
    raw.push(answer.subarray(at, at + size));
    at += size;
    outputs.push({ name: o.name, datatype: o.datatype, shape: o.shape, parameters: {} });
  }
  return { model_name: head.model_name, model_version: String(head.model_version), id: head.id ?? '', parameters: {}, outputs, raw_output_contents: raw };
}
