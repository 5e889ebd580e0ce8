/**
 * FRACTAL v1 prediction bodies: `{"values": [2, 5, 1, 4]}` (one row), `{"values": [[…], […]]}` (rows), or
 * `{"values": {"a": …, "b": …}}` for models with several inputs. Answers carry the first output (or the
 * one asked for) as `values`, one entry per row, and every output under `outputs` when asked.
 */
import { elementCount, datatypeOfOrt } from '../datatypes.ts';
import { InferrerError } from '../errors.ts';
import { httpStatusBody } from '../http-status.ts';
import { type Dim, type ModelSignature, type NamedTensors, type Tensor, type TensorSpec, hasDynamicBatchAxis, isSymbolic } from '../tensor.ts';
import { DEFAULT_VALUE_LIMITS, type ValueLimits, nestedShape, toTypedData } from './values.ts';
import { float32ToJson, floatToJson, halfToFloat } from './json-number.ts';
import { parseInferenceJson, parseTensorJson } from './json-text.ts';
import { PackedArray, packModeOf, rowElementsOf } from './json-tensor.ts';

export interface V1Decoded {
  inputs: NamedTensors;
  /** Rows along the batch axis (1 for models without one). */
  rows: number;
  /** Whether the caller sent a single row without the outer list (answers then stay a list of one). */
  singleRow: boolean;
}

/** A v1 body as it came: JSON text, parsed the way inference clients write it (json-text.ts), then decoded. */
export function decodeV1Body(body: Buffer | string, sig: ModelSignature, limits: ValueLimits = DEFAULT_VALUE_LIMITS): V1Decoded {
  if (typeof body === 'string') return decodeV1Request(parseInferenceJson(body), sig, limits);
  // Large lists of numbers are parsed from the bytes straight into typed arrays (json-tensor.ts).
  const { value, arrays } = parseTensorJson(body, body.length, ['values', ...sig.inputs.map((s) => s.name)], packModeOf(sig), rowElementsOf(sig));
  if (arrays && value && typeof value === 'object' && !Array.isArray(value)) {
    const v = value as { values?: unknown };
    v.values = arrays.take(v.values);
    if (v.values && typeof v.values === 'object' && !Array.isArray(v.values) && !(v.values instanceof PackedArray)) {
      const given = v.values as Record<string, unknown>;
      for (const name of Object.keys(given)) given[name] = arrays.take(given[name]);
    }
  }
  return decodeV1Request(value, sig, limits);
}

export function decodeV1Request(body: unknown, sig: ModelSignature, limits: ValueLimits = DEFAULT_VALUE_LIMITS): V1Decoded {
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    throw new InferrerError('INVALID_REQUEST', 'the body must be a JSON object like {"values": [...]}');
  }
  const values = (body as { values?: unknown }).values;
  if (values === undefined) throw new InferrerError('INVALID_REQUEST', 'the body has no "values" field', { expected: '{"values": [...]}' });
  const inputs: NamedTensors = {};
  let rows = -1;
  let singleRow = false;
  if (values && typeof values === 'object' && !Array.isArray(values) && !(values instanceof PackedArray)) {
    const given = values as Record<string, unknown>;
    for (const name of Object.keys(given)) {
      if (!sig.inputs.some((s) => s.name === name)) {
        throw new InferrerError('INVALID_INPUT', `the model has no input '${name}' (inputs: ${sig.inputs.map((s) => s.name).join(', ')})`, {
          input: name,
          expected: sig.inputs.map((s) => s.name),
        });
      }
    }
    // Inputs of a model without a batch axis may differ in length ([n, 2] and [m, 2]): no rows to agree on.
    const batched = hasDynamicBatchAxis(sig);
    for (const spec of sig.inputs) {
      if (!(spec.name in given)) throw new InferrerError('INVALID_INPUT', `input '${spec.name}' is missing`, { input: spec.name });
      const t = decodeOne(given[spec.name], spec, limits);
      if (batched && rows >= 0 && t.rows !== rows) {
        throw new InferrerError('INVALID_INPUT', `input '${spec.name}' has ${t.rows} rows but the other inputs have ${rows}`, {
          input: spec.name,
          expected: rows,
          got: t.rows,
        });
      }
      rows = t.rows;
      singleRow = t.singleRow;
      inputs[spec.name] = t.tensor;
    }
  } else {
    if (sig.inputs.length !== 1) {
      throw new InferrerError(
        'INVALID_INPUT',
        `the model has ${sig.inputs.length} inputs: send "values" as an object keyed by ${sig.inputs.map((s) => `'${s.name}'`).join(', ')}`,
        {
          expected: sig.inputs.map((s) => s.name),
        },
      );
    }
    const spec = sig.inputs[0]!;
    const t = decodeOne(values, spec, limits);
    rows = t.rows;
    singleRow = t.singleRow;
    inputs[spec.name] = t.tensor;
  }
  return { inputs, rows, singleRow };
}

function fmtShape(shape: readonly Dim[]): string {
  return `[${shape.map((d) => (typeof d === 'number' && d < 0 ? '?' : String(d))).join(', ')}]`;
}

/** Fits one input's JSON value to its spec: a single row, a list of rows, or the full fixed shape. */
function decodeOne(value: unknown, spec: TensorSpec, limits: ValueLimits): { tensor: Tensor; rows: number; singleRow: boolean } {
  const name = spec.name;
  // Rows of a batched input, or the whole fixed shape: never more levels than the model's rank.
  const got = nestedShape(value, name, limits, Math.max(1, spec.shape.length));
  const batched = spec.shape.length > 0 && isSymbolic(spec.shape[0]!);
  const rowSpec = batched ? spec.shape.slice(1) : spec.shape;
  const rowFixed = rowSpec.every((d) => !isSymbolic(d));
  const rowCount = rowFixed ? elementCount(rowSpec as number[]) : -1;
  const total = elementCount(got);
  let dims: number[] | undefined;
  let singleRow = false;

  if (batched) {
    if (matches(got, rowSpec)) {
      dims = [1, ...got];
      singleRow = true;
    } else if (got.length === rowSpec.length + 1 && matches(got.slice(1), rowSpec)) {
      dims = got;
    } else if (rowFixed && got.length === 1 && got[0] === rowCount && rowSpec.length > 1) {
      dims = [1, ...(rowSpec as number[])];
      singleRow = true;
    } else if (rowFixed && got.length === 2 && got[1] === rowCount && rowSpec.length > 1) {
      dims = [got[0]!, ...(rowSpec as number[])];
    }
  } else if (rowFixed) {
    if (matches(got, rowSpec) || total === rowCount) dims = rowSpec as number[];
    else if (rowSpec[0] === 1 && matches(got, rowSpec.slice(1))) dims = rowSpec as number[];
    if (dims) singleRow = true;
  } else if (matches(got, rowSpec)) {
    dims = got;
    singleRow = true;
  }
  if (!dims) {
    const expected = batched ? `one row of shape ${fmtShape(rowSpec)} or a list of such rows` : `a tensor of shape ${fmtShape(rowSpec)}`;
    throw new InferrerError(
      'INVALID_INPUT',
      `input '${name}' expects ${expected} (model shape ${fmtShape(spec.shape)}); got values of shape ${fmtShape(got)}`,
      {
        input: name,
        expected: spec.shape,
        got,
      },
    );
  }
  if (batched && dims[0] === 0) throw new InferrerError('INVALID_INPUT', `input '${name}' has no rows`, { input: name });
  const data = toTypedData(value, spec.type, name, total, limits);
  return { tensor: { type: spec.type, dims, data }, rows: batched ? dims[0]! : 1, singleRow };
}

function matches(got: readonly number[], spec: readonly Dim[]): boolean {
  if (got.length !== spec.length) return false;
  for (let i = 0; i < got.length; i++) {
    const d = spec[i]!;
    if (!isSymbolic(d) && d !== got[i]) return false;
  }
  return true;
}

export interface V1EncodeOptions {
  model: string;
  version: number;
  /** Output to answer with as `values`; the first output when absent. */
  output?: string;
  /** Answer every output under `outputs` too. */
  all?: boolean;
  /** Extra top-level fields (e.g. modelhost id), already JSON-safe. */
  extra?: Record<string, unknown>;
}

/**
 * Writes the v1 answer as JSON text directly from the output tensors (no intermediate nested arrays).
 * Each row becomes a scalar when it holds one element, else a nested list shaped like the row.
 */
export function encodeV1Response(outputs: NamedTensors, order: readonly string[], opts: V1EncodeOptions): string {
  const main = opts.output ?? order[0];
  if (main === undefined || !Object.hasOwn(outputs, main)) {
    throw new InferrerError('INVALID_REQUEST', `the model has no output '${String(main)}' (outputs: ${order.join(', ')})`, {
      expected: order,
      got: main,
    });
  }
  checkJsonOutput(main, outputs[main]!);
  if (opts.all) for (const name of order) if (outputs[name]) checkJsonOutput(name, outputs[name]!);
  let out = `{"http_status":${JSON.stringify(httpStatusBody(200))},"model_name":${JSON.stringify(opts.model)},"model_version":${opts.version}`;
  if (opts.extra) for (const [k, v] of Object.entries(opts.extra)) out += `,${JSON.stringify(k)}:${JSON.stringify(v)}`;
  out += `,"values":${rowsToJson(outputs[main]!)}`;
  if (opts.all) {
    out += ',"outputs":{';
    let first = true;
    for (const name of order) {
      const t = outputs[name];
      if (!t) continue;
      out += `${first ? '' : ','}${JSON.stringify(name)}:${rowsToJson(t)}`;
      first = false;
    }
    out += '}';
  }
  return out + '}';
}

/**
 * The most elements of one output an answer writes as JSON. Past about 27 M floats (20 characters each) the
 * text is longer than a JavaScript string can be, and past 134 M elements not even the list of their texts
 * can be built: such an answer failed after seconds of work with 500 INTERNAL. Binary data has no such limit.
 */
const MAX_JSON_OUTPUT_ELEMENTS = 2 ** 24;

/** Refuses an output too large to write as JSON (before any of it is written). */
export function checkJsonOutput(name: string, t: Tensor): void {
  const n = t.data.length;
  if (n <= MAX_JSON_OUTPUT_ELEMENTS) return;
  throw new InferrerError(
    'OUTPUT_TOO_LARGE',
    `output '${name}' has ${n} elements (shape [${t.dims.join(', ')}]), more than an answer carries as JSON (${MAX_JSON_OUTPUT_ELEMENTS}); ask for it as binary data ("parameters": {"binary_data": true}), or send a smaller input`,
    { output: name, elements: n, limit: MAX_JSON_OUTPUT_ELEMENTS },
  );
}

/** A tensor as a list of rows (dim 0), each row a scalar or a nested list. */
export function rowsToJson(t: Tensor): string {
  if (t.dims.length === 0) return `[${elementToJson(t, 0)}]`;
  const rows = t.dims[0]!;
  const rowDims = t.dims.slice(1);
  const per = elementCount(rowDims);
  const parts: string[] = new Array(rows);
  for (let r = 0; r < rows; r++) {
    parts[r] = per === 1 ? elementToJson(t, r) : nestedToJson(t, rowDims, 0, r * per).text;
  }
  return `[${parts.join(',')}]`;
}

/** A whole tensor as nested JSON lists shaped by its dims (a bare value for a 0-d tensor). */
export function tensorToNestedJson(t: Tensor): string {
  if (t.dims.length === 0) return elementToJson(t, 0);
  return nestedToJson(t, t.dims, 0, 0).text;
}

function nestedToJson(t: Tensor, dims: readonly number[], depth: number, offset: number): { text: string; next: number } {
  const n = dims[depth]!;
  if (depth === dims.length - 1) {
    const parts: string[] = new Array(n);
    for (let i = 0; i < n; i++) parts[i] = elementToJson(t, offset + i);
    return { text: `[${parts.join(',')}]`, next: offset + n };
  }
  const parts: string[] = new Array(n);
  let at = offset;
  for (let i = 0; i < n; i++) {
    const r = nestedToJson(t, dims, depth + 1, at);
    parts[i] = r.text;
    at = r.next;
  }
  return { text: `[${parts.join(',')}]`, next: at };
}

/** Flat row-major data as one JSON list. */
export function flatToJson(t: Tensor): string {
  const n = t.data.length;
  const parts: string[] = new Array(n);
  for (let i = 0; i < n; i++) parts[i] = elementToJson(t, i);
  return `[${parts.join(',')}]`;
}

export function elementToJson(t: Tensor, i: number): string {
  const v = t.data[i];
  switch (t.type) {
    case 'string':
      return JSON.stringify(v);
    case 'bool':
      return v ? 'true' : 'false';
    case 'int64':
    case 'uint64':
      return String(v);
    case 'float16':
      return floatToJson(halfToFloat(v as number));
    case 'float32':
      return float32ToJson(v as number);
    case 'float64':
      return floatToJson(v as number);
    default:
      return String(v);
  }
}

/** The FRACTAL v1 envelope for an answer with no payload beyond `fields`. */
export function v1Envelope(status: number, fields: Record<string, unknown> = {}): Record<string, unknown> {
  return { http_status: httpStatusBody(status), ...fields };
}

export function v1IsKnownType(type: string): boolean {
  return datatypeOfOrt(type) !== undefined;
}
