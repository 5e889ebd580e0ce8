/**
 * The messages between a modelhost and its codec processes (codec-pool.ts, codec-process.ts). Large byte
 * ranges (body parts, tensor data, answer text) travel as blobs: first the sizes, then parts of at most
 * PART_BYTES, each copied into place by the receiver as it arrives, then the message that refers to them
 * by index. No side ever serializes or copies tens of megabytes in one go.
 */
import type {
  ModelSignature,
  NamedTensors,
  OrtType,
  Tensor,
  V1Decoded,
  V1EncodeOptions,
  V2Decoded,
  V2EncodeOptions,
  V2Limits,
  ValueLimits,
  WireError,
} from '@inferrer/core';

/** Bytes per part message. */
export const PART_BYTES = 1024 * 1024;

/** Where a blob stands in for a typed array or a Buffer. */
export interface BlobRef {
  blob: number;
  kind:
    | 'Buffer'
    | 'Uint8Array'
    | 'Int8Array'
    | 'Uint16Array'
    | 'Int16Array'
    | 'Uint32Array'
    | 'Int32Array'
    | 'BigUint64Array'
    | 'BigInt64Array'
    | 'Float32Array'
    | 'Float64Array';
}

/** A tensor whose data may be a blob. */
export interface WireTensor {
  type: OrtType;
  dims: number[];
  data: Tensor['data'] | BlobRef;
}
export type WireTensors = Record<string, WireTensor>;

export type Job =
  | { op: 'decodeV1'; sig: ModelSignature; limits?: ValueLimits | undefined }
  | { op: 'decodeV2'; headerLength: number | undefined; sig: ModelSignature; limits?: V2Limits | undefined; imageInputs?: string[] | undefined }
  | { op: 'encodeV1'; outputs: WireTensors; order: readonly string[]; opts: V1EncodeOptions }
  | { op: 'encodeV2'; outputs: WireTensors; order: readonly string[]; opts: V2EncodeOptions };

export type Result =
  | { op: 'decodeV1'; decoded: Omit<V1Decoded, 'inputs'> & { inputs: WireTensors } }
  | { op: 'decodeV2'; decoded: Omit<V2Decoded, 'inputs' | 'images'> & { inputs: WireTensors; images?: Record<string, BlobRef[]> } }
  | { op: 'encodeV1'; text: BlobRef }
  | { op: 'encodeV2'; json: BlobRef; binary: BlobRef[] }
  | { op: 'error'; error: WireError; cause?: string };

/** One message on the channel, either way: blob sizes, a part of a blob, or the job / result itself. */
export type Message = { id: number } & (
  | { op: 'blobs'; sizes: number[] }
  | { op: 'part'; blob: number; at: number; data: Uint8Array }
  | { op: 'job'; job: Job }
  | { op: 'result'; result: Result }
);

const KINDS = {
  Uint8Array,
  Int8Array,
  Uint16Array,
  Int16Array,
  Uint32Array,
  Int32Array,
  BigUint64Array,
  BigInt64Array,
  Float32Array,
  Float64Array,
} as const;

/** Blobs to send, collected while a message is packed (a blob may be several views, sent as one). */
export class Outgoing {
  readonly blobs: ArrayBufferView[][] = [];

  ref(view: ArrayBufferView): BlobRef {
    this.blobs.push([view]);
    const kind = Buffer.isBuffer(view) ? 'Buffer' : (view.constructor.name as BlobRef['kind']);
    return { blob: this.blobs.length - 1, kind };
  }

  /** One blob of several byte ranges, end to end (a body read in parts). */
  joined(views: readonly ArrayBufferView[]): BlobRef {
    this.blobs.push([...views]);
    return { blob: this.blobs.length - 1, kind: 'Buffer' };
  }

  tensors(tensors: NamedTensors): WireTensors {
    const out: WireTensors = {};
    for (const name in tensors) {
      const t = tensors[name]!;
      out[name] = { type: t.type, dims: t.dims, data: ArrayBuffer.isView(t.data) ? this.ref(t.data) : t.data };
    }
    return out;
  }

  /** Sends the blobs as sizes then parts, each part once the channel has taken the last. */
  async send(id: number, post: (m: Message) => Promise<void>): Promise<void> {
    await post({ id, op: 'blobs', sizes: this.blobs.map((views) => views.reduce((n, v) => n + v.byteLength, 0)) });
    for (let b = 0; b < this.blobs.length; b++) {
      let at = 0;
      for (const v of this.blobs[b]!) {
        const bytes = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
        for (let i = 0; i < bytes.length; i += PART_BYTES) {
          const data = bytes.subarray(i, i + PART_BYTES);
          await post({ id, op: 'part', blob: b, at, data });
          at += data.length;
        }
      }
    }
  }
}

/** Blobs being received for one message: allocated from their sizes, filled part by part. */
export class Incoming {
  readonly #blobs: ArrayBuffer[] = [];

  sizes(sizes: number[]): void {
    for (const n of sizes) this.#blobs.push(new ArrayBuffer(n));
  }

  part(blob: number, at: number, data: Uint8Array): void {
    new Uint8Array(this.#blobs[blob]!, at, data.byteLength).set(data);
  }

  view(ref: BlobRef): ArrayBufferView {
    const buf = this.#blobs[ref.blob]!;
    if (ref.kind === 'Buffer') return Buffer.from(buf);
    const Ctor = KINDS[ref.kind];
    return new Ctor(buf);
  }

  buffer(ref: BlobRef): Buffer {
    return Buffer.from(this.#blobs[ref.blob]!);
  }

  tensors(tensors: WireTensors): NamedTensors {
    const out: NamedTensors = {};
    for (const name in tensors) {
      const t = tensors[name]!;
      const data = isRef(t.data) ? this.view(t.data) : t.data;
      out[name] = { type: t.type, dims: t.dims, data } as Tensor;
    }
    return out;
  }
}

function isRef(d: unknown): d is BlobRef {
  return typeof d === 'object' && d !== null && !Array.isArray(d) && !ArrayBuffer.isView(d) && typeof (d as BlobRef).blob === 'number';
}
