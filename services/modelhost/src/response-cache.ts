/**
 * The response cache (Triton's response cache): answers of deterministic models, kept by each modelhost in
 * one least-recently-used cache bounded in bytes (RESPONSE_CACHE_BYTES), for the models whose config says
 * `response_cache: {enable: true}`. A request whose inputs were answered before is answered from here
 * without running the model.
 *
 * The key is a SHA-256 of the model version's identity (name, version, and the SHA-256 of its ONNX file,
 * so a model deleted and uploaded again under the same version number never answers from the old one's
 * entries) and of the decoded input tensors (name, type, dims, bytes). Keying the decoded tensors rather
 * than the request body means a v1 body, a v2 JSON body and a v2 binary body carrying the same tensor
 * share one entry, and the answer is encoded for each request as it asks (JSON or binary outputs, output
 * selection, classification): an entry holds the output tensors, copied out of the batch they ran in.
 * An entry counts its output bytes plus ENTRY_OVERHEAD_BYTES; one larger than the whole bound is not kept.
 *
 * Inputs larger than MAX_CACHED_INPUT_BYTES are not looked up (nor kept): hashing them would hold the HTTP
 * thread for milliseconds (about 2.5 ms per MB measured here).
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { NamedTensors, Tensor } from '@inferrer/core';

/** Requests whose inputs add up to more than this go straight to the model. */
export const MAX_CACHED_INPUT_BYTES = 4 * 1024 * 1024;

/** What an entry costs beyond its output bytes (key, objects, the LRU's slots), counted against the bound. */
export const ENTRY_OVERHEAD_BYTES = 512;

/** The model version an entry belongs to. */
export interface CachedVersion {
  name: string;
  version: number;
  /** SHA-256 of the version's ONNX file (from the store). */
  sha256: string;
}

interface Entry {
  model: string;
  version: number;
  outputs: NamedTensors;
  bytes: number;
}

export class ResponseCache {
  /** The bound, bytes. */
  readonly maxBytes: number;
  readonly #lru: LRUCache<string, Entry>;
  /** Called for each entry pushed out to make room. */
  onEvict: ((model: string, version: number) => void) | undefined;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
    this.#lru = new LRUCache<string, Entry>({
      maxSize: maxBytes,
      sizeCalculation: (e) => e.bytes,
      dispose: (e, _key, reason) => {
        if (reason === 'evict') this.onEvict?.(e.model, e.version);
      },
    });
  }

  /** The key of these inputs to this version; undefined when they are too large to be cached. */
  key(model: CachedVersion, inputs: NamedTensors): string | undefined {
    const names = Object.keys(inputs).sort();
    let bytes = 0;
    for (const name of names) bytes += tensorBytes(inputs[name]!);
    if (bytes > MAX_CACHED_INPUT_BYTES) return undefined;
    const h = createHash('sha256');
    h.update(JSON.stringify([model.name, model.version, model.sha256]));
    for (const name of names) {
      const t = inputs[name]!;
      // JSON framing keeps the parts apart: no two different inputs hash the same bytes.
      h.update(`\n${JSON.stringify([name, t.type, t.dims])}\n`);
      if (Array.isArray(t.data)) h.update(JSON.stringify(t.data));
      else h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    }
    return h.digest('base64');
  }

  /** The outputs kept under `key` (shared: callers only read them). */
  get(key: string): NamedTensors | undefined {
    return this.#lru.get(key)?.outputs;
  }

  /** Keeps a copy of `outputs` (they may be views of a whole batch's buffers); false when they do not fit. */
  set(key: string, model: CachedVersion, outputs: NamedTensors): boolean {
    const copy: NamedTensors = {};
    let bytes = ENTRY_OVERHEAD_BYTES + key.length;
    for (const name in outputs) {
      const t = outputs[name]!;
      copy[name] = { type: t.type, dims: [...t.dims], data: Array.isArray(t.data) ? [...t.data] : t.data.slice() } as Tensor;
      bytes += tensorBytes(t) + name.length + 64;
    }
    if (bytes > this.maxBytes) return false;
    this.#lru.set(key, { model: model.name, version: model.version, outputs: copy, bytes });
    return true;
  }

  /** Drops every entry of one model version (deleted from the store); how many went. */
  purge(model: string, version: number): number {
    let n = 0;
    for (const [key, e] of this.#lru.entries()) {
      if (e.model === model && e.version === version && this.#lru.delete(key)) n++;
    }
    return n;
  }

  /** Bytes held now (output bytes and overheads). */
  get bytes(): number {
    return this.#lru.calculatedSize;
  }

  get entries(): number {
    return this.#lru.size;
  }
}

function tensorBytes(t: Tensor): number {
  if (!Array.isArray(t.data)) return t.data.byteLength;
  let n = 0;
  for (const s of t.data as string[]) n += 16 + s.length * 2;
  return n;
}
