/**
 * The modelhost's route table (internal: only the load balancer and the metrics service talk to it).
 *
 *   POST /v1/models/:name/predict          FRACTAL v1 body → v1 answer (query: version, output, outputs=all)
 *   POST /v1/models/:name/predict-images   multipart images → labels or boxes (query: version, top_k, raw,
 *                                          score_threshold, iou_threshold)
 *   POST /v2/models/:model[/versions/:version]/infer   Open Inference Protocol, JSON or binary tensors
 *   POST /v1/models/:name/group            several of the above as frames (group.ts)
 *   GET  /v1/models, /v1/models/:name      models loaded here (state, memory) and the budget; metadata as this worker sees it
 *   GET  /v1/models/:name/settings         batching and instances of a model on this worker (model configuration)
 *   GET  /v1/stats                         inference statistics per model version (statistics extension)
 *   POST /v1/models/:name/versions/:v/warm load and warm a version here if needed; its state now (readiness)
 *   GET  /v1/test/echo?data=…              which worker answered (for /api/test/sendtomodelhost)
 *   GET  /v1/drift                         cumulative drift statistics and profile captures (for the metrics service)
 *   GET  /v1/drift/profile/:name/:version  the reference profile those statistics are counted against
 *   GET  /health/live, /health/ready, /metrics
 */
import { InferrerError, parseModelName, parseVersion } from '@inferrer/core';
import { inlineRuntime } from '@inferrer/runtime';
import type { Logger } from '@inferrer/telemetry';
import type { ModelhostConfig } from '../config.ts';
import type { BatchFacts, DataPlane } from '../dataplane.ts';
import type { DriftMonitor } from '../drift.ts';
import { receiveImages } from '../images.ts';
import type { ModelhostMetrics } from '../metrics.ts';
import { nativeResidentReader } from '../process-memory.ts';
import { planView } from '../execution.ts';
import type { ModelRegistry } from '../registry.ts';
import type { Answered, Ctx, ExpressRoute, InferenceRoute, Item, StreamRoute } from './route.ts';

export interface RouteDeps {
  config: ModelhostConfig;
  logger: Logger;
  dataplane: DataPlane;
  registry: ModelRegistry;
  metrics: ModelhostMetrics;
  drift?: DriftMonitor | undefined;
  ready: () => boolean;
  draining: () => boolean;
  /** Undefined when the registry has read the store at a generation already, else when it has (StoreWatcher.catchUp). */
  catchUp?: (generation: number) => Promise<void> | undefined;
}

export function inferenceRoutes({ config, dataplane }: RouteDeps): (InferenceRoute | StreamRoute)[] {
  const inferV2 = async (item: Item, params: Record<string, string>, ctx: Ctx): Promise<Answered> => {
    const header = item.headers['inference-header-content-length'];
    const answer = await dataplane.inferV2(params.model!, item.body, header === undefined ? undefined : Number(header), {
      ...versionOf(params.version),
      deadline: ctx.deadline,
      priority: ctx.priority,
      signal: ctx.signal,
    });
    if (answer.binary.length === 0)
      return {
        reply: { status: 200, headers: batchHeaders(answer, 'application/json'), body: typeof answer.json === 'string' ? answer.json : [answer.json] },
        facts: answer,
      };
    const json = typeof answer.json === 'string' ? Buffer.from(answer.json) : answer.json;
    const headers = batchHeaders(answer, 'application/octet-stream');
    headers['inference-header-content-length'] = String(json.length);
    return { reply: { status: 200, headers, body: [json, ...answer.binary] }, facts: answer };
  };
  return [
    {
      kind: 'inference',
      method: 'POST',
      path: '/v1/models/:name/predict',
      summary: 'FRACTAL v1 body → v1 answer',
      async run(item, params, { q, deadline, priority, signal }) {
        const output = q.get('output') ?? undefined;
        const answer = await dataplane.predictV1(params.name!, item.body, {
          ...versionOf(q.get('version')),
          ...(output ? { output } : {}),
          all: q.get('outputs') === 'all',
          deadline,
          priority,
          signal,
        });
        return {
          reply: { status: 200, headers: batchHeaders(answer, 'application/json'), body: typeof answer.body === 'string' ? answer.body : [answer.body] },
          facts: answer,
        };
      },
    },
    { kind: 'inference', method: 'POST', path: '/v2/models/:model/infer', summary: 'Open Inference Protocol infer', run: inferV2 },
    {
      kind: 'inference',
      method: 'POST',
      path: '/v2/models/:model/versions/:version/infer',
      summary: 'Open Inference Protocol infer, one version',
      run: inferV2,
    },
    {
      kind: 'stream',
      method: 'POST',
      path: '/v1/models/:name/predict-images',
      summary: 'multipart images → values, labels or boxes',
      async run(req, params, { q, length, reqId, deadline, priority, signal }) {
        if (length !== undefined && length > config.maxBodyBytes)
          throw new InferrerError('BODY_TOO_LARGE', `the request body is larger than the limit of ${config.maxBodyBytes} bytes`, {
            limit: config.maxBodyBytes,
            got: length,
          });
        const images = await receiveImages(req, { maxFiles: config.maxImagesPerRequest, maxBytes: config.maxBodyBytes });
        const answer = await dataplane.predictImages(params.name!, images, {
          ...versionOf(q.get('version')),
          uid: reqId,
          topK: queryInt(q, 'top_k', 5, 1, 1000),
          raw: q.get('raw') === 'true' || q.get('raw') === '1',
          ...(q.has('output') ? { output: q.get('output')! } : {}),
          all: q.get('outputs') === 'all',
          ...(q.has('score_threshold') ? { scoreThreshold: queryFraction(q, 'score_threshold') } : {}),
          ...(q.has('iou_threshold') ? { iouThreshold: queryFraction(q, 'iou_threshold') } : {}),
          deadline,
          priority,
          signal,
        });
        return { reply: { status: 200, headers: batchHeaders(answer, 'application/json'), body: answer.body }, facts: answer };
      },
    },
  ];
}

export function infoRoutes({ config, dataplane, registry, metrics, drift, ready, draining }: RouteDeps): ExpressRoute[] {
  const get = { kind: 'express', method: 'GET' } as const;
  return [
    { ...get, path: '/health/live', summary: 'liveness', handle: (_req, res) => void res.json({ live: true, modelhost: config.id }) },
    {
      ...get,
      path: '/health/ready',
      summary: 'readiness: started, preloaded models warm, not draining',
      handle: (_req, res) => {
        const ok = ready();
        res.status(ok ? 200 : 503).json({ ready: ok, draining: draining(), modelhost: config.id });
      },
    },
    {
      ...get,
      path: '/metrics',
      summary: 'Prometheus metrics of this worker',
      handle: async (_req, res) => void res.set('content-type', metrics.registry.contentType).send(await metrics.render()),
    },
    {
      ...get,
      path: '/v1/test/echo',
      summary: 'which worker answered (for /api/test/sendtomodelhost)',
      handle: (req, res) => {
        const data = typeof req.query.data === 'string' ? req.query.data.slice(0, 256) : null;
        res.json({ data, modelhost: config.id });
      },
    },
    {
      ...get,
      path: '/v1/drift',
      summary: 'cumulative drift statistics and profile captures (for the metrics service)',
      handle: (_req, res) =>
        void res
          .set('cache-control', 'no-store')
          .json(drift?.view() ?? { modelhost: config.id, time: new Date().toISOString(), disabled: true, trackers: [], captures: [] }),
    },
    {
      ...get,
      path: '/v1/drift/profile/:name/:version',
      summary: 'the reference profile drift statistics are counted against',
      handle: (req, res) => {
        const v = registry.record(req.params.name!)?.versions.find((x) => String(x.version) === req.params.version);
        if (!v?.profile) throw new InferrerError('PROFILE_NOT_FOUND', `model ${req.params.name} version ${req.params.version} has no drift profile here`);
        res.json(v.profile);
      },
    },
    {
      ...get,
      path: '/v1/models',
      summary: 'models loaded here, their state and memory, and the memory budget',
      handle: (_req, res) => {
        const now = performance.now();
        res.json({
          modelhost: config.id,
          memory: { ...registry.memory(), ...processMemory() },
          /** ONNX Runtime sessions that models with `shared_graph` share (one per structure). */
          shared_graph_sessions: inlineRuntime.templates,
          models: registry.entries().map((e) => ({
            name: e.name,
            version: e.version,
            state: e.state,
            queue_depth: e.batcher.depth,
            instances: e.session.instances,
            batching: e.batcher.options,
            resident_bytes: e.costBytes,
            ...(e.session.shared ? { shared_graph: true } : {}),
            idle_seconds: Number(((now - e.lastUsed) / 1000).toFixed(3)),
            ...(e.pinned ? { pinned: true } : {}),
            ...(e.preload ? { preload: true } : {}),
          })),
        });
      },
    },
    {
      ...get,
      path: '/v1/stats',
      summary: 'inference statistics per model version, in the statistics extension shape (summed by the metrics service)',
      handle: (_req, res) => void res.set('cache-control', 'no-store').json({ modelhost: config.id, models: metrics.stats.view() }),
    },
    {
      ...get,
      path: '/v1/models/:name/settings',
      summary:
        "how this worker runs a model: its config over this worker's settings, and the execution plan of its default version when loaded here (without loading it)",
      handle: async (req, res) => {
        const record = await registry.current(req.params.name!);
        const s = registry.settings(record);
        const loaded = registry.entries().find((e) => e.name === record.name && e.version === record.default_version && e.state === 'READY');
        const plan = loaded?.plan;
        res.json({
          name: record.name,
          max_batch_size: plan?.maxBatchSize ?? s.maxBatchSize ?? config.batchSizeCap,
          max_queue_delay_ms: s.maxQueueDelayMs,
          max_queue_size: s.maxQueueSize,
          instances: plan?.instances ?? s.instances ?? 1,
          execution_providers: s.executionProviders,
          response_cache: { enable: s.responseCache },
          execution: plan
            ? { modelhost: config.id, version: record.default_version, ...planView(plan), shared_graph: loaded!.session.shared }
            : { modelhost: config.id, reason: 'chosen when the model loads on this worker (not loaded here yet)' },
        });
      },
    },
    {
      kind: 'express',
      method: 'POST',
      path: '/v1/models/:name/versions/:version/warm',
      summary: 'load and warm a version unless it is loaded or loading; answers its state now (READY, LOADING, UNAVAILABLE)',
      handle: async (req, res) =>
        void res
          .set('cache-control', 'no-store')
          .json({ modelhost: config.id, ...(await registry.warm(parseModelName(req.params.name), parseVersion(req.params.version))) }),
    },
    {
      ...get,
      path: '/v1/models/:name',
      summary: 'metadata as this worker sees it',
      handle: async (req, res) => {
        const version = req.query.version === undefined ? undefined : parseVersion(req.query.version);
        res.json(await dataplane.metadata(req.params.name!, version));
      },
    },
  ];
}

/** An answer from the response cache ran in no batch: it says `X-Inferrer-Cache: hit` instead. */
function batchHeaders(a: BatchFacts, contentType: string): Record<string, string> {
  const h: Record<string, string> = { 'content-type': contentType };
  if (a.cache !== 'hit') h['x-inferrer-batch'] = `requests=${a.batchRequests};rows=${a.batchRows}`;
  if (a.cache) h['x-inferrer-cache'] = a.cache;
  h['x-inferrer-model-version'] = String(a.version);
  h['server-timing'] = serverTiming(a);
  return h;
}

const versionOf = (raw: string | null | undefined): { version?: number } => (raw === null || raw === undefined ? {} : { version: parseVersion(raw) });

/**
 * Where the time went on this worker: waiting for the model to load (only when the request did), decoding
 * the request (JSON, binary tensors, images), queueing, running.
 */
function serverTiming(a: { loadMs: number; preprocessMs: number; queueMs: number; computeMs: number }): string {
  const t = `preprocess;dur=${a.preprocessMs.toFixed(2)}, queue;dur=${a.queueMs.toFixed(2)}, compute;dur=${a.computeMs.toFixed(2)}`;
  return a.loadMs > 0 ? `load;dur=${a.loadMs.toFixed(2)}, ${t}` : t;
}

function queryInt(q: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
  const v = q.get(name);
  if (v === null) return fallback;
  const n = Number(v);
  if (!/^\d{1,6}$/.test(v) || n < min || n > max)
    throw new InferrerError('INVALID_REQUEST', `query parameter ${name} must be an integer from ${min} to ${max}`, { parameter: name, got: v.slice(0, 32) });
  return n;
}

function queryFraction(q: URLSearchParams, name: string): number {
  const v = q.get(name) ?? '';
  const n = Number(v);
  if (v === '' || !Number.isFinite(n) || n < 0 || n > 1)
    throw new InferrerError('INVALID_REQUEST', `query parameter ${name} must be a number from 0 to 1`, { parameter: name, got: v.slice(0, 32) });
  return n;
}

/**
 * The worker's resident memory and, of it, V8's heap (JavaScript's, not its models'); the rest, native memory
 * (process-memory.ts nativeResidentReader); and the bytes of JavaScript's buffers, outside V8's heap
 * (requests' and answers' bytes, garbage among them until V8 collects it; Node leaves resizable buffers out,
 * which is where shared models keep their weights).
 */
function processMemory(): { process_resident_bytes: number; process_heap_bytes: number; process_native_bytes: number; process_buffer_bytes: number } {
  const m = process.memoryUsage();
  return {
    process_resident_bytes: m.rss,
    process_heap_bytes: m.heapTotal,
    // What the budget's watch reads (resident less the heap's size, read from /proc/self/statm).
    process_native_bytes: nativeResidentReader()(),
    process_buffer_bytes: m.arrayBuffers,
  };
}
