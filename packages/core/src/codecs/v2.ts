/**
 * The Open Inference Protocol (KServe v2) tensors: JSON bodies, and the binary tensor data extension
 * (`Inference-Header-Content-Length`: a JSON header followed by raw little-endian tensor bytes, BYTES
 * elements each prefixed by a 4-byte little-endian length). Decoding checks every input against the
 * model signature and names the input, what was expected and what came.
 */
import { type DatatypeInfo, type NumericArray, type V2Datatype, datatypeOfOrt, datatypeOfV2, elementCount } from '../datatypes.ts';
import { InferrerError } from '../errors.ts';
import { type ModelSignature, type NamedTensors, type Tensor, type TensorSpec, hasDynamicBatchAxis, isSymbolic } from '../tensor.ts';
import { classifiable, classify } from './classification.ts';
import { parseTensorJson } from './json-text.ts';
import { PackedArray, packModeOf, rowElementsOf } from './json-tensor.ts';
import { checkJsonOutput, elementToJson } from './v1.ts';
import { DEFAULT_VALUE_LIMITS, type ValueLimits, checkTextBytes, nestedShape, toTypedData } from './values.ts';

export interface V2OutputRequest {
  name: string;
  binary: boolean;
  /** Classification extension: answer the top `classification` elements as BYTES "value:index[:label]". */
  classification?: number;
}

export interface V2Decoded {
  id?: string;
  inputs: NamedTensors;
  /** Rows along the batch axis (1 for models without one). */
  rows: number;
  /** The outputs asked for, or undefined for all of them. */
  outputs?: V2OutputRequest[];
  /** Request-level `binary_data_output`. */
  binaryOutput: boolean;
  /** Encoded images sent as BYTES for an image input (see `imageInputs`), one Buffer per element. */
  images?: Record<string, Buffer[]>;
  /** Schedule policy: the request's priority level (1 first, 2 after level 1; 0 or absent: the default, 1). */
  priority?: number;
  /** Schedule policy: the request's timeout in microseconds (0 or absent: the server's). */
  timeoutUs?: number;
}

/** Priority levels of the schedule policy extension (the batcher serves level 1 before level 2). */
export const V2_PRIORITY_LEVELS = 2;

export interface V2Limits extends ValueLimits {
  maxInputs: number;
}

export const DEFAULT_V2_LIMITS: V2Limits = { ...DEFAULT_VALUE_LIMITS, maxInputs: 256 };

/** The v2 datatype name of an ONNX Runtime type. */
export function v2Datatype(ortType: string): V2Datatype {
  const info = datatypeOfOrt(ortType);
  if (!info) throw new InferrerError('INTERNAL', `no v2 datatype for ${ortType}`);
  return info.v2;
}

/** Shapes as v2 metadata shows them: -1 for symbolic dims. */
export function v2Shape(shape: readonly (number | string)[]): number[] {
  return shape.map((d) => (isSymbolic(d) ? -1 : (d as number)));
}

export function v2TensorMetadata(spec: TensorSpec): { name: string; datatype: V2Datatype; shape: number[] } {
  return { name: spec.name, datatype: v2Datatype(spec.type), shape: v2Shape(spec.shape) };
}

function bad(message: string, details: Record<string, unknown> = {}): InferrerError {
  return new InferrerError('INVALID_INPUT', message, details);
}

function fmt(shape: readonly (number | string)[]): string {
  return `[${v2Shape(shape).join(', ')}]`;
}

/**
 * Decodes a v2 infer request. `body` is the whole HTTP body; `headerLength` is the value of
 * Inference-Header-Content-Length when the binary extension is used.
 */
export function decodeV2Request(
  body: Buffer,
  headerLength: number | undefined,
  sig: ModelSignature,
  limits: V2Limits = DEFAULT_V2_LIMITS,
  /** Inputs that also take encoded images as BYTES (base64 strings in JSON, raw bytes in binary data). */
  imageInputs?: ReadonlySet<string>,
): V2Decoded {
  let jsonEnd = body.length;
  if (headerLength !== undefined) {
    if (!Number.isSafeInteger(headerLength) || headerLength < 0 || headerLength > body.length) {
      throw new InferrerError('INVALID_REQUEST', `Inference-Header-Content-Length is ${headerLength} but the body has ${body.length} bytes`, {
        got: headerLength,
        bodyBytes: body.length,
      });
    }
    jsonEnd = headerLength;
  }
  // Large "data" lists of numbers are parsed from the bytes straight into typed arrays (json-tensor.ts).
  const { value, arrays } = parseTensorJson(body, jsonEnd, ['data'], packModeOf(sig), rowElementsOf(sig));
  const req = value as Record<string, unknown>;
  if (!req || typeof req !== 'object' || Array.isArray(req)) throw new InferrerError('INVALID_REQUEST', 'the request must be a JSON object with "inputs"');
  if (!Array.isArray(req.inputs)) throw new InferrerError('INVALID_REQUEST', 'the request has no "inputs" list');
  if (req.inputs.length > limits.maxInputs)
    throw new InferrerError('INVALID_REQUEST', `the request has ${req.inputs.length} inputs, more than the limit of ${limits.maxInputs}`);
  if (req.id !== undefined && typeof req.id !== 'string') throw new InferrerError('INVALID_REQUEST', '"id" must be a string');
  const params = (req.parameters ?? {}) as Record<string, unknown>;
  if (typeof params !== 'object' || Array.isArray(params)) throw new InferrerError('INVALID_REQUEST', '"parameters" must be an object');

  const specs = new Map(sig.inputs.map((s) => [s.name, s]));
  const inputs: NamedTensors = {};
  const images: Record<string, Buffer[]> = {};
  let offset = jsonEnd;
  for (const raw of req.inputs as unknown[]) {
    const input = raw as Record<string, unknown>;
    if (!input || typeof input !== 'object') throw new InferrerError('INVALID_REQUEST', 'each input must be an object {name, shape, datatype, data}');
    const name = input.name;
    if (typeof name !== 'string') throw new InferrerError('INVALID_REQUEST', 'an input has no "name"');
    const spec = specs.get(name);
    if (!spec)
      throw bad(`the model has no input '${name.slice(0, 128)}' (inputs: ${sig.inputs.map((s) => s.name).join(', ')})`, {
        input: name.slice(0, 128),
        expected: sig.inputs.map((s) => s.name),
      });
    if (name in inputs || name in images) throw bad(`input '${name}' is given twice`, { input: name });
    if (input.datatype === 'BYTES' && spec.type !== 'string' && imageInputs?.has(name)) {
      const p = (input.parameters ?? {}) as Record<string, unknown>;
      const size = p.binary_data_size;
      if (size !== undefined) {
        if (headerLength === undefined || typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0 || offset + size > body.length) {
          throw bad(`input '${name}': binary_data_size ${String(size)} does not fit the body`, { input: name });
        }
        images[name] = splitBytes(body.subarray(offset, offset + size), name, limits);
        offset += size;
      } else {
        images[name] = base64Elements(input.data, name);
      }
      const n = images[name]!.length;
      if (n === 0) throw bad(`input '${name}' carries no images`, { input: name });
      if (Array.isArray(input.shape) && elementCount(input.shape as number[]) !== n) {
        throw bad(`input '${name}' has shape [${String(input.shape)}] but carries ${n} images`, {
          input: name,
          expected: elementCount(input.shape as number[]),
          got: n,
        });
      }
      continue;
    }
    const info = checkDatatype(input.datatype, spec);
    const shape = checkShape(input.shape, spec);
    const count = elementCount(shape);
    if (count > limits.maxElements)
      throw bad(`input '${name}' has ${count} elements, more than the limit of ${limits.maxElements}`, { input: name, limit: limits.maxElements, got: count });
    const p = (input.parameters ?? {}) as Record<string, unknown>;
    const binarySize = p.binary_data_size;
    let data: Tensor['data'];
    if (binarySize !== undefined) {
      if (headerLength === undefined)
        throw new InferrerError('INVALID_REQUEST', `input '${name}' has binary_data_size but the request has no Inference-Header-Content-Length header`, {
          input: name,
        });
      if (typeof binarySize !== 'number' || !Number.isSafeInteger(binarySize) || binarySize < 0)
        throw bad(`input '${name}': binary_data_size must be a non-negative integer`, { input: name });
      if (input.data !== undefined) throw bad(`input '${name}' has both "data" and binary_data_size`, { input: name });
      if (offset + binarySize > body.length) {
        throw bad(`input '${name}' says binary_data_size ${binarySize} but only ${body.length - offset} bytes are left in the body`, {
          input: name,
          expected: binarySize,
          got: body.length - offset,
        });
      }
      data = fromBinary(body.subarray(offset, offset + binarySize), info, count, name, limits);
      offset += binarySize;
    } else {
      if (input.data === undefined) throw bad(`input '${name}' has no "data" (and no binary_data_size)`, { input: name });
      data = fromJson(arrays ? arrays.take(input.data) : input.data, info, shape, name, limits);
    }
    inputs[name] = { type: spec.type, dims: shape, data };
  }
  if (offset !== body.length) {
    throw new InferrerError('INVALID_REQUEST', `the body has ${body.length - offset} bytes of binary data that no input claims`, { got: body.length - offset });
  }
  for (const spec of sig.inputs) if (!(spec.name in inputs) && !(spec.name in images)) throw bad(`input '${spec.name}' is missing`, { input: spec.name });

  const batched = hasDynamicBatchAxis(sig);
  let rows = 1;
  if (batched) {
    rows = -1;
    const counts: [string, number][] = [
      ...Object.entries(inputs).map(([n, t]): [string, number] => [n, t.dims[0]!]),
      ...Object.entries(images).map(([n, b]): [string, number] => [n, b.length]),
    ];
    for (const [name, r] of counts) {
      if (rows >= 0 && r !== rows)
        throw bad(`input '${name}' has ${r} rows along the batch axis but the other inputs have ${rows}`, { input: name, expected: rows, got: r });
      rows = r;
    }
  }

  let outputs: V2OutputRequest[] | undefined;
  const binaryOutput = params.binary_data_output === true;
  const { priority, timeout } = params;
  if (priority !== undefined && (typeof priority !== 'number' || !Number.isSafeInteger(priority) || priority < 0 || priority > V2_PRIORITY_LEVELS)) {
    throw new InferrerError(
      'INVALID_REQUEST',
      `"parameters.priority" must be 0 (the default level), 1 or ${V2_PRIORITY_LEVELS}; got ${shownParameter(priority)}`,
      { parameter: 'priority', expected: [0, V2_PRIORITY_LEVELS] },
    );
  }
  if (timeout !== undefined && (typeof timeout !== 'number' || !Number.isSafeInteger(timeout) || timeout < 0)) {
    throw new InferrerError('INVALID_REQUEST', `"parameters.timeout" must be a whole number of microseconds; got ${shownParameter(timeout)}`, {
      parameter: 'timeout',
    });
  }
  if (req.outputs !== undefined) {
    if (!Array.isArray(req.outputs)) throw new InferrerError('INVALID_REQUEST', '"outputs" must be a list');
    const known = new Set(sig.outputs.map((o) => o.name));
    const asked = new Set<string>();
    outputs = (req.outputs as Record<string, unknown>[]).map((o) => {
      if (!o || typeof o.name !== 'string') throw new InferrerError('INVALID_REQUEST', 'each requested output needs a "name"');
      if (!known.has(o.name))
        throw bad(`the model has no output '${o.name.slice(0, 128)}' (outputs: ${[...known].join(', ')})`, {
          output: o.name.slice(0, 128),
          expected: [...known],
        });
      if (asked.has(o.name)) throw new InferrerError('INVALID_REQUEST', `output '${o.name}' is asked for more than once in "outputs"`, { output: o.name });
      asked.add(o.name);
      const op = (o.parameters ?? {}) as Record<string, unknown>;
      const binary = op.binary_data === true || (op.binary_data === undefined && binaryOutput);
      const k = op.classification;
      if (k === undefined || k === 0) return { name: o.name, binary };
      if (typeof k !== 'number' || !Number.isSafeInteger(k) || k < 0) {
        throw new InferrerError('INVALID_REQUEST', `output '${o.name}': "classification" must be a positive integer (the number of classes to answer)`, {
          output: o.name,
        });
      }
      const spec = sig.outputs.find((s) => s.name === o.name)!;
      if (!classifiable(spec.type)) {
        throw new InferrerError('INVALID_REQUEST', `output '${o.name}' is ${v2Datatype(spec.type)}; classification needs a numeric output`, {
          output: o.name,
          got: v2Datatype(spec.type),
        });
      }
      return { name: o.name, binary, classification: k };
    });
  }
  const hasImages = Object.keys(images).length > 0;
  return {
    ...(req.id !== undefined ? { id: req.id as string } : {}),
    inputs,
    rows,
    ...(outputs ? { outputs } : {}),
    binaryOutput,
    ...(hasImages ? { images } : {}),
    ...(priority ? { priority } : {}),
    ...(timeout ? { timeoutUs: timeout } : {}),
  };
}

/** A request parameter's value for an error message: short, and whole integers beyond 2^53 (parsed as bigint) too. */
function shownParameter(v: unknown): string {
  return (JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)) ?? String(v)).slice(0, 32);
}

/** Binary BYTES elements (4-byte little-endian length, then the bytes) as Buffers, without a UTF-8 decode. */
function splitBytes(bytes: Buffer, name: string, limits: ValueLimits): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (at + 4 > bytes.length) throw bad(`input '${name}': BYTES element ${out.length} has a truncated length prefix`, { input: name });
    const len = bytes.readUInt32LE(at);
    at += 4;
    if (at + len > bytes.length) throw bad(`input '${name}': BYTES element ${out.length} says ${len} bytes but fewer are left`, { input: name });
    out.push(bytes.subarray(at, at + len));
    at += len;
    if (out.length > limits.maxElements) throw bad(`input '${name}' has too many elements`, { input: name });
  }
  return out;
}

/** JSON BYTES elements carrying images: base64 strings, or {"b64": "…"} objects (TensorFlow Serving's form). */
function base64Elements(data: unknown, name: string): Buffer[] {
  const flat = (Array.isArray(data) ? data : [data]).flat(8) as unknown[];
  return flat.map((e, i) => {
    const s =
      typeof e === 'string' ? e : e && typeof e === 'object' && typeof (e as { b64?: unknown }).b64 === 'string' ? (e as { b64: string }).b64 : undefined;
    if (s === undefined || !/^[A-Za-z0-9+/=_\-\s]*$/.test(s))
      throw bad(`input '${name}' element ${i}: an image sent as JSON BYTES must be a base64 string`, { input: name, index: i });
    return Buffer.from(s, 'base64');
  });
}

function checkDatatype(datatype: unknown, spec: TensorSpec): DatatypeInfo {
  const want = datatypeOfOrt(spec.type)!;
  if (typeof datatype !== 'string' || !datatypeOfV2(datatype)) {
    throw bad(`input '${spec.name}' has datatype ${JSON.stringify(String(datatype).slice(0, 32))}, which is not a v2 datatype; the model expects ${want.v2}`, {
      input: spec.name,
      expected: want.v2,
      got: String(datatype).slice(0, 32),
    });
  }
  if (datatype !== want.v2)
    throw bad(`input '${spec.name}' has datatype ${datatype} but the model expects ${want.v2}`, { input: spec.name, expected: want.v2, got: datatype });
  return want;
}

function checkShape(shape: unknown, spec: TensorSpec): number[] {
  if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
    throw bad(`input '${spec.name}': "shape" must be a list of non-negative integers`, { input: spec.name, expected: v2Shape(spec.shape) });
  }
  const ok = shape.length === spec.shape.length && spec.shape.every((d, i) => isSymbolic(d) || d === shape[i]);
  if (!ok)
    throw bad(`input '${spec.name}' has shape ${fmt(shape)} but the model expects ${fmt(spec.shape)}`, {
      input: spec.name,
      expected: v2Shape(spec.shape),
      got: shape,
    });
  return shape as number[];
}

function fromJson(data: unknown, info: DatatypeInfo, shape: number[], name: string, limits: ValueLimits): Tensor['data'] {
  const count = elementCount(shape);
  const value = Array.isArray(data) || data instanceof PackedArray ? data : [data];
  // Flat, or nested as the shape says: never more levels than its rank.
  const got = nestedShape(value, name, limits, Math.max(1, shape.length));
  const n = elementCount(got);
  if (n !== count) throw bad(`input '${name}' has shape ${fmt(shape)} (${count} elements) but its data holds ${n}`, { input: name, expected: count, got: n });
  return toTypedData(value, info.ort, name, count, limits);
}

function fromBinary(bytes: Buffer, info: DatatypeInfo, count: number, name: string, limits: ValueLimits): Tensor['data'] {
  if (info.v2 === 'BYTES') {
    const parts = splitBytes(bytes, name, limits);
    parts.forEach((b, i) => {
      if (b.length > limits.maxStringBytes) throw bad(`input '${name}' element ${i} is longer than ${limits.maxStringBytes} bytes`, { input: name });
      checkTextBytes(b, name, i);
    });
    if (parts.length !== count)
      throw bad(`input '${name}' has ${count} elements by its shape but its binary data holds ${parts.length}`, {
        input: name,
        expected: count,
        got: parts.length,
      });
    return parts.map((b) => b.toString('utf8'));
  }
  const expected = count * info.size;
  if (bytes.length !== expected) {
    throw bad(`input '${name}' needs ${expected} bytes of ${info.v2} (${count} elements) but binary_data_size is ${bytes.length}`, {
      input: name,
      expected,
      got: bytes.length,
    });
  }
  // One copy into an aligned array that owns its buffer (it can then move to the runtime thread).
  const arr = new info.array!(count);
  new Uint8Array(arr.buffer, 0, expected).set(bytes);
  if (info.v2 === 'BOOL')
    for (let i = 0; i < count; i++)
      if (arr[i]! > 1) throw bad(`input '${name}' element ${i}: BOOL bytes must be 0 or 1, got ${arr[i]}`, { input: name, index: i });
  return arr;
}

export interface V2EncodeOptions {
  model: string;
  version: number;
  id?: string;
  outputs?: V2OutputRequest[];
  binaryOutput: boolean;
  /** Classification: whether dim 0 is the batch dim (top-k per row), and class labels by output name. */
  batched?: boolean;
  labels?: Record<string, string[]>;
}

export interface V2Encoded {
  /** The JSON header (the whole body when there is no binary part). */
  json: string;
  /** Binary tensor data following the header, in output order; empty when all outputs are JSON. */
  binary: Buffer[];
}

export function encodeV2Response(outputs: NamedTensors, order: readonly string[], opts: V2EncodeOptions): V2Encoded {
  const wanted: readonly V2OutputRequest[] = opts.outputs ?? order.map((name) => ({ name, binary: opts.binaryOutput }));
  const binary: Buffer[] = [];
  const parts: string[] = [];
  for (const want of wanted) if (!want.binary && !want.classification && outputs[want.name]) checkJsonOutput(want.name, outputs[want.name]!);
  for (const want of wanted) {
    const raw = outputs[want.name];
    if (!raw) continue;
    const t = want.classification ? classify(raw, want.name, want.classification, opts.batched ?? false, opts.labels?.[want.name]) : raw;
    const head = `{"name":${JSON.stringify(want.name)},"datatype":"${v2Datatype(t.type)}","shape":[${t.dims.join(',')}]`;
    if (want.binary) {
      const bytes = toBinary(t);
      binary.push(bytes);
      parts.push(`${head},"parameters":{"binary_data_size":${bytes.length}}}`);
    } else {
      parts.push(`${head},"data":${flatJson(t)}}`);
    }
  }
  const id = opts.id !== undefined ? `,"id":${JSON.stringify(opts.id)}` : '';
  return { json: `{"model_name":${JSON.stringify(opts.model)},"model_version":"${opts.version}"${id},"outputs":[${parts.join(',')}]}`, binary };
}

function flatJson(t: Tensor): string {
  const n = t.data.length;
  const parts: string[] = new Array(n);
  for (let i = 0; i < n; i++) parts[i] = elementToJson(t, i);
  return `[${parts.join(',')}]`;
}

function toBinary(t: Tensor): Buffer {
  if (t.type === 'string') {
    const strings = t.data as string[];
    const chunks: Buffer[] = [];
    for (const s of strings) {
      const b = Buffer.from(s, 'utf8');
      const len = Buffer.allocUnsafe(4);
      len.writeUInt32LE(b.length, 0);
      chunks.push(len, b);
    }
    return Buffer.concat(chunks);
  }
  const a = t.data as NumericArray;
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}
