/**
 * The modelhost dataplane: lookup → ready/deadline → decode → infer (batched) → encode. Knows no HTTP;
 * protocol adapters hand it request bodies and take back encoded answers. One path serves both
 * protocols: only the decode and encode steps differ.
 */
import {
  DEFAULT_V2_LIMITS,
  type ImagePipelineSpec,
  InferrerError,
  type ModelSignature,
  type NamedTensors,
  type V2Decoded,
  type V2OutputRequest,
  decodeV1Body,
  decodeV2Request,
  encodeV1Response,
  encodeV2Response,
  hasDynamicBatchAxis,
  joinParts,
  parseModelName,
  statusOf,
  toInferrerError,
} from '@inferrer/core';
import { resolvePipeline } from '@inferrer/model-store';
import {
  CodecPool,
  DEFAULT_IMAGE_LIMITS,
  type ImageLimits,
  type ImageTransform,
  type InferResult,
  OFF_THREAD_BODY_BYTES,
  OFF_THREAD_JSON_BYTES,
  OFF_THREAD_JSON_ELEMENTS,
  type Priority,
  imagesToTensor,
} from '@inferrer/runtime';
import { type ImageAnswerOptions, type ReceivedImage, encodeImageAnswer } from './images.ts';
import type { DriftMonitor, Pending } from './drift.ts';
import type { ModelhostMetrics } from './metrics.ts';
import type { LoadedModel, ModelRegistry } from './registry.ts';
import type { ResponseCache } from './response-cache.ts';

/** When a request must be answered by, and whether it is online or a batch job's (batched after online ones). */
export interface Timing {
  deadline: number;
  priority?: Priority;
  /** Fires when the client goes away: a request still queued leaves the queue; the answer of one that ran is dropped. */
  signal?: AbortSignal | undefined;
}

export interface V1PredictOptions extends Timing {
  version?: number;
  /** Output to answer with as `values`. */
  output?: string;
  /** Also answer every output under `outputs`. */
  all?: boolean;
}

export interface BatchFacts {
  model: string;
  version: number;
  batchRequests: number;
  batchRows: number;
  queueMs: number;
  computeMs: number;
  /** Decoding the request: JSON or binary tensors, and images (decode, resize, normalise). */
  preprocessMs: number;
  /** How long the request waited for its model to load on this worker (0: it was loaded). */
  loadMs: number;
  /** For models with the response cache on: whether the answer came from it (batch facts are then 0). */
  cache?: 'hit' | 'miss';
}

export interface V1Answer extends BatchFacts {
  /** JSON text; UTF-8 bytes when a codec process wrote it (a large answer). */
  body: string | Buffer;
}

export interface V2Answer extends BatchFacts {
  /** JSON header (the whole body when `binary` is empty); UTF-8 bytes when a codec process wrote it. */
  json: string | Buffer;
  binary: Buffer[];
}

interface Decoded {
  inputs: NamedTensors;
  rows: number;
  /** Schedule policy (Open Inference Protocol requests): priority level 1 or 2, timeout in microseconds. */
  priority?: number;
  timeoutUs?: number;
}

/** A response cache lookup: hit or miss, and the time it took (hashing, finding, keeping the answer). */
interface CacheLookup {
  hit: boolean;
  ms: number;
}

/** Images decoded for one request: the tensor's transforms map boxes back onto each original. */
interface DecodedImages extends Decoded {
  pipeline: ImagePipelineSpec;
  transforms: ImageTransform[];
}

export class DataPlane {
  readonly #registry: ModelRegistry;
  readonly #metrics: ModelhostMetrics;
  readonly #imageLimits: ImageLimits;
  readonly #pipelines = new WeakMap<LoadedModel, ImagePipelineSpec>();
  readonly #drift: DriftMonitor | undefined;
  /** Large bodies are decoded, and large answers encoded, by these processes (never on the HTTP thread). */
  readonly #codecs: CodecPool;
  /** Answers of models whose config enables the response cache (none when RESPONSE_CACHE_BYTES is 0). */
  readonly #cache: ResponseCache | undefined;

  constructor(
    registry: ModelRegistry,
    metrics: ModelhostMetrics,
    imageLimits: ImageLimits = DEFAULT_IMAGE_LIMITS,
    drift?: DriftMonitor,
    codecs: CodecPool = new CodecPool(),
    cache?: ResponseCache,
  ) {
    this.#registry = registry;
    this.#metrics = metrics;
    this.#imageLimits = imageLimits;
    this.#drift = drift;
    this.#codecs = codecs;
    this.#cache = cache;
  }

  /** Stops the codec processes. */
  close(): Promise<void> {
    return this.#codecs.close();
  }

  /** How this model version takes images and reads its outputs (its STAC MLM item, else graph defaults). */
  pipeline(model: LoadedModel): ImagePipelineSpec {
    let p = this.#pipelines.get(model);
    if (!p) {
      p = resolvePipeline(model.signature, model.media.stac, model.media.labels);
      this.#pipelines.set(model, p);
    }
    return p;
  }

  /** Images (multipart files) in, labels or boxes out: decode → resize → normalise → infer → top-k / NMS. */
  predictImages(
    rawName: string,
    images: ReceivedImage[],
    opts: Omit<ImageAnswerOptions, 'model' | 'version'> & Timing & { version?: number },
  ): Promise<BatchFacts & { body: string }> {
    return this.#run<DecodedImages, { body: string }>(
      rawName,
      opts.version,
      opts,
      async (_sig, model) => {
        const pipeline = this.pipeline(model);
        const spec = pipeline.image;
        if (!spec)
          throw new InferrerError(
            'NOT_AN_IMAGE_MODEL',
            `model ${model.name} has no image input (give it a STAC MLM item, or an input shaped [batch, C, H, W] or [batch, H, W, C])`,
            { model: model.name },
          );
        if (model.signature.inputs.length !== 1)
          throw new InferrerError('NOT_AN_IMAGE_MODEL', `model ${model.name} has ${model.signature.inputs.length} inputs; images feed a model with one`, {
            model: model.name,
          });
        const { tensor, transforms } = await imagesToTensor(
          images.map((i) => i.bytes),
          spec,
          this.#imageLimits,
        );
        return { inputs: { [spec.input]: tensor }, rows: images.length, pipeline, transforms };
      },
      (model, decoded, outputs) => ({
        body: encodeImageAnswer(
          decoded.pipeline,
          outputs,
          model.signature.outputs.map((o) => o.name),
          images.map((im, i) => ({ filename: im.filename, transform: decoded.transforms[i]! })),
          {
            ...opts,
            model: model.name,
            version: model.version,
          },
        ),
      }),
    );
  }

  /**
   * FRACTAL v1: `{"values": …}` in (the body as it came), `{"http_status", "values", …}` out. Large bodies
   * are parsed, and large answers written, by a codec process.
   */
  predictV1(rawName: string, body: Buffer | Buffer[], opts: V1PredictOptions): Promise<V1Answer> {
    return this.#run(
      rawName,
      opts.version,
      opts,
      (sig) => (byteLength(body) < OFF_THREAD_JSON_BYTES ? decodeV1Body(whole(body), sig) : this.#codecs.decodeV1(body, sig)),
      async (model, _decoded, outputs) => {
        const order = model.signature.outputs.map((o) => o.name);
        const encodeOpts = { model: model.name, version: model.version, ...(opts.output ? { output: opts.output } : {}), all: opts.all ?? false };
        if (elements(outputs) < OFF_THREAD_JSON_ELEMENTS) return { body: encodeV1Response(outputs, order, encodeOpts) };
        return { body: await this.#codecs.encodeV1(outputs, order, encodeOpts) };
      },
    );
  }

  /** Open Inference Protocol infer: `body` is the whole request, JSON or JSON header + binary tensors. */
  inferV2(rawName: string, body: Buffer | Buffer[], headerLength: number | undefined, opts: Timing & { version?: number }): Promise<V2Answer> {
    return this.#run(
      rawName,
      opts.version,
      opts,
      async (sig, model) => {
        const image = this.pipeline(model).image;
        const images = image ? new Set([image.input]) : undefined;
        const size = byteLength(body);
        const decoded: V2Decoded =
          (headerLength ?? size) < OFF_THREAD_JSON_BYTES && size < OFF_THREAD_BODY_BYTES
            ? decodeV2Request(whole(body), headerLength, sig, DEFAULT_V2_LIMITS, images)
            : await this.#codecs.decodeV2(body, headerLength, sig, DEFAULT_V2_LIMITS, images);
        if (image && decoded.images?.[image.input]) {
          const { tensor } = await imagesToTensor(decoded.images[image.input]!, image, this.#imageLimits);
          decoded.inputs[image.input] = tensor;
          delete decoded.images;
        }
        return decoded;
      },
      async (model, decoded, outputs) => {
        const order = model.signature.outputs.map((o) => o.name);
        const encodeOpts = {
          model: model.name,
          version: model.version,
          ...(decoded.id !== undefined ? { id: decoded.id } : {}),
          ...(decoded.outputs ? { outputs: decoded.outputs } : {}),
          binaryOutput: decoded.binaryOutput,
          ...(decoded.outputs?.some((o) => o.classification) ? this.#classification(model, decoded.outputs) : {}),
        };
        // Only outputs written as JSON cost anything to encode; binary ones are views of the tensors.
        const asJson = (decoded.outputs ?? order.map((name) => ({ name, binary: decoded.binaryOutput }))).filter((o) => !o.binary);
        let count = 0;
        for (const o of asJson) count += outputs[o.name]?.data.length ?? 0;
        if (count < OFF_THREAD_JSON_ELEMENTS) return encodeV2Response(outputs, order, encodeOpts);
        return this.#codecs.encodeV2(outputs, order, encodeOpts);
      },
    );
  }

  /**
   * What classification needs to know of a model: whether dim 0 is the batch dim, and the labels of each
   * classified output: the classes of its classification task (STAC MLM item or graph defaults) for that
   * output, else the model's labels for an output with as many elements per row as there are labels.
   */
  #classification(model: LoadedModel, wanted: readonly V2OutputRequest[]): { batched: boolean; labels: Record<string, string[]> } {
    const batched = hasDynamicBatchAxis(model.signature);
    const task = this.pipeline(model).task;
    const labels: Record<string, string[]> = {};
    for (const o of wanted) {
      if (!o.classification) continue;
      if (task?.kind === 'classification' && task.output === o.name) {
        if (task.labels) labels[o.name] = task.labels;
        continue;
      }
      const spec = model.signature.outputs.find((s) => s.name === o.name);
      const perRow = spec?.shape.slice(batched ? 1 : 0).reduce<number>((n, d) => n * (typeof d === 'number' && d >= 0 ? d : Number.NaN), 1);
      if (model.media.labels && perRow === model.media.labels.length) labels[o.name] = model.media.labels;
    }
    return { batched, labels };
  }

  /** Metadata of a model version as this worker sees it (loads it if needed). */
  async metadata(rawName: string, version?: number): Promise<{ name: string; version: number; signature: ModelSignature; state: string }> {
    const m = await this.#registry.get(parseModelName(rawName), version);
    return { name: m.name, version: m.version, signature: m.signature, state: m.state };
  }

  /** The one inference path: counts and times every request by model, version and result code. */
  async #run<D extends Decoded, E>(
    rawName: string,
    version: number | undefined,
    timing: Timing,
    decode: (sig: ModelSignature, model: LoadedModel) => D | Promise<D>,
    encode: (model: LoadedModel, decoded: D, outputs: NamedTensors) => E | Promise<E>,
  ): Promise<E & BatchFacts> {
    const name = parseModelName(rawName);
    const started = performance.now();
    let seen: LoadedModel | undefined;
    let loadMs = 0;
    try {
      const { model, decoded, result, preprocessMs, drift, cache } = await this.#infer(name, version, timing, decode, (m, ms) => {
        seen = m;
        loadMs = ms;
      });
      if (drift) this.#drift!.outputs(model, drift, result.outputs);
      const encodeStarted = performance.now();
      const encoded = (await encode(model, decoded, result.outputs)) as E & BatchFacts;
      const encodeMs = performance.now() - encodeStarted;
      const v = String(model.version);
      const totalMs = performance.now() - started;
      this.#metrics.requestDuration.observe({ model: model.name, version: v }, totalMs / 1000);
      if (cache?.hit) this.#metrics.stats.cacheHit(model.name, model.version, totalMs, cache.ms);
      else
        this.#metrics.stats.success(model.name, model.version, {
          rows: decoded.rows,
          totalMs,
          queueMs: result.queueMs,
          inputMs: preprocessMs,
          inferMs: result.computeMs,
          outputMs: encodeMs,
        });
      if (cache) {
        (cache.hit ? this.#metrics.cacheHits : this.#metrics.cacheMisses).inc({ model: model.name, version: v });
        if (!cache.hit) this.#metrics.stats.cacheMiss(model.name, model.version, cache.ms);
        encoded.cache = cache.hit ? 'hit' : 'miss';
      }
      this.#metrics.requests.inc({ model: model.name, version: v, code: 'OK' });
      encoded.model = model.name;
      encoded.version = model.version;
      encoded.batchRequests = result.batchRequests;
      encoded.batchRows = result.batchRows;
      encoded.queueMs = result.queueMs;
      encoded.computeMs = result.computeMs;
      encoded.preprocessMs = preprocessMs;
      encoded.loadMs = loadMs;
      return encoded;
    } catch (err) {
      const code = (err as InferrerError).code ?? 'INTERNAL';
      const labels = seen ? { model: seen.name, version: String(seen.version) } : this.#metrics.refusedLabels(err);
      this.#metrics.requests.inc({ ...labels, code });
      if (code === 'REQUEST_CANCELLED')
        this.#metrics.cancelled.inc({ ...labels, stage: (err as InferrerError).details.stage === 'running' ? 'running' : 'queued' });
      if (seen) this.#metrics.stats.failure(seen.name, seen.version, performance.now() - started);
      if (statusOf(toInferrerError(err)) >= 500) this.#metrics.errors.inc({ ...labels, code });
      throw err;
    }
  }

  async #infer<D extends Decoded>(
    name: string,
    version: number | undefined,
    timing: Timing,
    decode: (sig: ModelSignature, model: LoadedModel) => D | Promise<D>,
    seen: (m: LoadedModel, loadMs: number) => void,
  ): Promise<{ model: LoadedModel; decoded: D; result: InferResult; preprocessMs: number; drift: Pending | undefined; cache: CacheLookup | undefined }> {
    const taken = performance.now();
    let { deadline, priority } = timing;
    const { signal } = timing;
    // A model being swapped out can refuse a request between lookup and enqueue; look it up once more.
    for (let attempt = 0; ; attempt++) {
      const { model, loadMs } = await this.#registry.acquire(name, version, deadline);
      try {
        seen(model, loadMs);
        if (performance.now() >= deadline) {
          this.#metrics.timeouts.inc({ model: model.name, version: String(model.version) });
          throw new InferrerError('DEADLINE_EXCEEDED', 'the request passed its deadline before it could run', { model: name });
        }
        if (signal?.aborted) throw new InferrerError('REQUEST_CANCELLED', 'the client went away before the request ran', { stage: 'queued' });
        const decodeStarted = performance.now();
        const decoded = await decode(model.signature, model);
        const preprocessMs = performance.now() - decodeStarted;
        // Schedule policy: a timeout shortens the deadline (counted from when this worker took the request),
        // priority level 2 waits behind level 1 as batch-job requests do.
        if (decoded.timeoutUs) deadline = Math.min(deadline, taken + decoded.timeoutUs / 1000);
        if (decoded.priority === 2) priority = 'batch';
        // Inputs are counted before the run: the batcher hands their buffers to the session's thread.
        const drift = this.#drift?.inputs(model, decoded.inputs, decoded.rows);
        // So is the cache key. A request of a cache-enabled model is a hit or a miss (inputs too large to
        // hash are misses that are not kept).
        const lookupStarted = performance.now();
        const cache = this.#cache && this.#registry.record(model.name)?.config.response_cache?.enable === true ? this.#cache : undefined;
        const key = cache?.key(model, decoded.inputs);
        const cached = key === undefined ? undefined : cache!.get(key);
        const lookupMs = performance.now() - lookupStarted;
        if (cached)
          return {
            model,
            decoded,
            result: { outputs: cached, batchRequests: 0, batchRows: 0, queueMs: 0, computeMs: 0 },
            preprocessMs,
            drift,
            cache: { hit: true, ms: lookupMs },
          };
        try {
          const result = await model.batcher.infer(decoded.inputs, decoded.rows, deadline, priority, signal);
          // It ran, but nobody waits for the answer: drop it (and do not encode it).
          if (signal?.aborted)
            throw new InferrerError('REQUEST_CANCELLED', 'the client went away while the request ran; its answer was dropped', { stage: 'running' });
          if (!cache) return { model, decoded, result, preprocessMs, drift, cache: undefined };
          const keepStarted = performance.now();
          if (key !== undefined) cache.set(key, model, result.outputs);
          return { model, decoded, result, preprocessMs, drift, cache: { hit: false, ms: lookupMs + performance.now() - keepStarted } };
        } catch (err) {
          if ((err as InferrerError).code === 'MODEL_NOT_READY' && attempt === 0) continue;
          throw err;
        }
      } finally {
        this.#registry.release(model);
      }
    }
  }
}

/** Bytes in a body read whole or in parts. */
function byteLength(body: Buffer | readonly Buffer[]): number {
  if (Buffer.isBuffer(body)) return body.length;
  let n = 0;
  for (const p of body) n += p.length;
  return n;
}

/** A body read in parts as one Buffer (only small ones are joined on this thread). */
function whole(body: Buffer | readonly Buffer[]): Buffer {
  return Buffer.isBuffer(body) ? body : joinParts(body);
}

/** Elements in all of `tensors`. */
function elements(tensors: NamedTensors): number {
  let n = 0;
  for (const name in tensors) n += tensors[name]!.data.length;
  return n;
}
