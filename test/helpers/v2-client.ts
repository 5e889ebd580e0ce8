/** A small Open Inference Protocol client for tests: JSON and binary-extension requests, lossless answers. */
import { isSafeNumber, parse as parseLossless } from 'lossless-json';

export interface V2Tensor {
  name: string;
  datatype: string;
  shape: number[];
  /** Flat row-major values (bigint for 64-bit ints, strings for BYTES). */
  data: unknown[];
}

export interface V2Result {
  status: number;
  headers: Headers;
  body: any;
  /** Output name → raw bytes, for binary outputs. */
  binary: Map<string, Buffer>;
}

const SIZES: Record<string, number> = { BOOL: 1, UINT8: 1, INT8: 1, UINT16: 2, INT16: 2, FP16: 2, UINT32: 4, INT32: 4, FP32: 4, UINT64: 8, INT64: 8, FP64: 8 };

export function parseNumberLossless(s: string): number | bigint {
  if (isSafeNumber(s)) return Number(s);
  if (/^-?\d+$/.test(s)) return BigInt(s);
  return Number(s);
}

/** JSON text of one value as a Python/Triton client would write it (bare NaN and Infinity, exact big ints). */
export function jsonValue(v: unknown): string {
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number' && !Number.isFinite(v)) return Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity';
  if (typeof v === 'number' && Object.is(v, -0)) return '-0.0';
  return JSON.stringify(v);
}

/** Encodes tensor values as the binary extension carries them. */
export function toBytes(t: V2Tensor): Buffer {
  if (t.datatype === 'BYTES') {
    return Buffer.concat(
      t.data.flatMap((s) => {
        const b = Buffer.from(String(s));
        const len = Buffer.alloc(4);
        len.writeUInt32LE(b.length);
        return [len, b];
      }),
    );
  }
  const size = SIZES[t.datatype]!;
  const buf = Buffer.alloc(size * t.data.length);
  t.data.forEach((v, i) => {
    const o = i * size;
    switch (t.datatype) {
      case 'BOOL':
      case 'UINT8':
        buf.writeUInt8(Number(v), o);
        break;
      case 'INT8':
        buf.writeInt8(Number(v), o);
        break;
      case 'UINT16':
      case 'FP16':
        buf.writeUInt16LE(Number(v), o);
        break;
      case 'INT16':
        buf.writeInt16LE(Number(v), o);
        break;
      case 'UINT32':
        buf.writeUInt32LE(Number(v), o);
        break;
      case 'INT32':
        buf.writeInt32LE(Number(v), o);
        break;
      case 'FP32':
        buf.writeFloatLE(Number(v), o);
        break;
      case 'FP64':
        buf.writeDoubleLE(Number(v), o);
        break;
      case 'UINT64':
        buf.writeBigUInt64LE(BigInt(v as bigint), o);
        break;
      case 'INT64':
        buf.writeBigInt64LE(BigInt(v as bigint), o);
        break;
    }
  });
  return buf;
}

export interface InferOptions {
  binaryInputs?: boolean;
  binaryOutputs?: boolean;
  outputs?: { name: string; binary?: boolean }[];
  id?: string;
  /** FP16 data in JSON: numbers (the v2 way). Binary FP16 carries raw bits from `fp16Bits`. */
  fp16Json?: (t: V2Tensor) => unknown[];
}

export async function infer(
  base: string,
  model: string,
  inputs: V2Tensor[],
  opts: InferOptions = {},
  extraHeaders: Record<string, string> = {},
): Promise<V2Result> {
  const chunks: Buffer[] = [];
  const parts = inputs.map((t) => {
    const head = `{"name":${JSON.stringify(t.name)},"datatype":"${t.datatype}","shape":[${t.shape.join(',')}]`;
    if (opts.binaryInputs) {
      const b = toBytes(t);
      chunks.push(b);
      return `${head},"parameters":{"binary_data_size":${b.length}}}`;
    }
    const values = t.datatype === 'FP16' && opts.fp16Json ? opts.fp16Json(t) : t.data;
    return `${head},"data":[${values.map(jsonValue).join(',')}]}`;
  });
  let json = `{"inputs":[${parts.join(',')}]`;
  if (opts.id) json += `,"id":${JSON.stringify(opts.id)}`;
  if (opts.binaryOutputs) json += ',"parameters":{"binary_data_output":true}';
  if (opts.outputs)
    json += `,"outputs":${JSON.stringify(opts.outputs.map((o) => ({ name: o.name, ...(o.binary !== undefined ? { parameters: { binary_data: o.binary } } : {}) })))}`;
  json += '}';
  const header = Buffer.from(json);
  const headers: Record<string, string> = { 'content-type': opts.binaryInputs ? 'application/octet-stream' : 'application/json' };
  if (opts.binaryInputs) headers['inference-header-content-length'] = String(header.length);
  const res = await fetch(`${base}/v2/models/${model}/infer`, {
    method: 'POST',
    headers: { ...headers, ...extraHeaders },
    body: Buffer.concat([header, ...chunks]),
  });
  const raw = Buffer.from(await res.arrayBuffer());
  const hl = res.headers.get('inference-header-content-length');
  const jsonEnd = hl === null ? raw.length : Number(hl);
  const body = parseLossless(raw.toString('utf8', 0, jsonEnd), undefined, parseNumberLossless) as any;
  const binary = new Map<string, Buffer>();
  let at = jsonEnd;
  for (const o of body?.outputs ?? []) {
    const size = o.parameters?.binary_data_size;
    if (size === undefined) continue;
    binary.set(o.name, raw.subarray(at, at + Number(size)));
    at += Number(size);
  }
  return { status: res.status, headers: res.headers, body, binary };
}
