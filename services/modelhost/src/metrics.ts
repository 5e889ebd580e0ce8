/**
 * The modelhost's Prometheus metrics; labels are model and version names from the store, never request data.
 * A model's series live as long as the model: those of a deleted model or version, and of an unloaded
 * model (except its MODEL_NOT_READY refusals), are removed before a scrape (`render`) once the store's
 * models change, and every PRUNE_EVERY_MS for requests that were still in flight then.
 */
import { type InferrerError, InferenceStats } from '@inferrer/core';
import { BATCH_SIZE_BUCKETS, LATENCY_BUCKETS_SECONDS, client, createRegistry } from '@inferrer/telemetry';
import type { BatchObserver } from '@inferrer/runtime';
import type { ModelRegistry, RegistryHooks } from './registry.ts';
import { type ModelCounter, type ModelHistogram, ModelSeries } from './model-series.ts';
import type { ResponseCache } from './response-cache.ts';

const SERVICE = 'modelhost';

/** Series of a deleted model counted by a request that was in flight at the deletion go within this time. */
const PRUNE_EVERY_MS = 30_000;

export class ModelhostMetrics {
  readonly registry: client.Registry;
  readonly requests: ModelCounter<'model' | 'version' | 'code'>;
  readonly requestDuration: ModelHistogram<'model' | 'version'>;
  readonly queueDuration: ModelHistogram<'model' | 'version'>;
  readonly computeDuration: ModelHistogram<'model' | 'version'>;
  readonly batchSize: ModelHistogram<'model' | 'version'>;
  readonly timeouts: ModelCounter<'model' | 'version'>;
  readonly errors: ModelCounter<'model' | 'version' | 'code'>;
  readonly sessionsEvicted: ModelCounter<'model'>;
  readonly loadDuration: ModelHistogram<'model'>;
  readonly loadFailures: ModelCounter<'model'>;
  readonly unloads: ModelCounter<'model' | 'reason'>;
  readonly driftRows: ModelCounter<'model' | 'version'>;
  readonly lookups: client.Counter<'result'>;
  readonly loadWait: client.Histogram;
  readonly cancelled: ModelCounter<'model' | 'version' | 'stage'>;
  readonly cacheHits: ModelCounter<'model' | 'version'>;
  readonly cacheMisses: ModelCounter<'model' | 'version'>;
  readonly cacheEvictions: ModelCounter<'model' | 'version'>;
  /** Counts and times in the statistics extension's shape (GET /v1/stats; summed by the metrics service). */
  readonly stats = new InferenceStats();

  readonly #models: () => ModelRegistry | undefined;
  /** Metrics with a model label whose label sets follow the models' lives. */
  readonly #perModel: (ModelCounter<string> | ModelHistogram<string>)[];
  readonly #series = new ModelSeries({ service: SERVICE });
  /** The models and versions the last prune kept, and when it ran. */
  #prunedFor = '';
  #prunedAt = 0;

  constructor(models: () => ModelRegistry | undefined) {
    this.#models = models;
    const r = (this.registry = createRegistry(SERVICE));
    const series = this.#series;
    const mv = ['model', 'version'] as const;
    this.requests = series.counter({
      name: 'modelhost_requests_total',
      help: 'Inference requests by model, version and result code',
      labelNames: [...mv, 'code'],
    });
    this.requestDuration = series.histogram({
      name: 'modelhost_request_duration_seconds',
      help: 'Time from request to answer inside the modelhost',
      labelNames: mv,
      buckets: LATENCY_BUCKETS_SECONDS,
    });
    this.queueDuration = series.histogram({
      name: 'modelhost_queue_duration_seconds',
      help: 'Time a request waited in the batcher queue',
      labelNames: mv,
      buckets: LATENCY_BUCKETS_SECONDS,
    });
    this.computeDuration = series.histogram({
      name: 'modelhost_compute_duration_seconds',
      help: 'ONNX Runtime run time per batch',
      labelNames: mv,
      buckets: LATENCY_BUCKETS_SECONDS,
    });
    this.batchSize = series.histogram({
      name: 'modelhost_batch_size',
      help: 'Rows per executed batch',
      labelNames: mv,
      buckets: BATCH_SIZE_BUCKETS,
    });
    this.timeouts = series.counter({ name: 'modelhost_timeouts_total', help: 'Requests that passed their deadline', labelNames: mv });
    this.errors = series.counter({
      name: 'modelhost_errors_total',
      help: 'Inference requests that failed on the server side (5xx: queue full, not ready, timeout, runtime failure), by error code',
      labelNames: [...mv, 'code'],
    });
    this.sessionsEvicted = series.counter({
      name: 'modelhost_sessions_evicted_total',
      help: 'Model versions unloaded to make room for another (memory budget, MAX_LOADED_MODELS; least recently used idle first)',
      labelNames: ['model'],
    });
    this.lookups = new client.Counter({
      name: 'modelhost_model_lookups_total',
      help: 'Inference requests by whether they found their model loaded (hit) or waited for it to load (load)',
      labelNames: ['result'],
      registers: [r],
    });
    this.loadWait = new client.Histogram({
      name: 'modelhost_model_load_wait_seconds',
      help: 'How long requests that found their model not loaded waited for the load (cold starts)',
      buckets: LATENCY_BUCKETS_SECONDS,
      registers: [r],
    });
    this.loadDuration = series.histogram({
      name: 'modelhost_model_load_duration_seconds',
      help: 'Time to load and warm a model version',
      labelNames: ['model'],
      buckets: LATENCY_BUCKETS_SECONDS,
    });
    this.loadFailures = series.counter({
      name: 'modelhost_model_load_failures_total',
      help: 'Model loads that failed',
      labelNames: ['model'],
    });
    this.unloads = series.counter({
      name: 'modelhost_model_unloads_total',
      help: 'Model versions unloaded, by reason (evicted, replaced, deleted, shutdown)',
      labelNames: ['model', 'reason'],
    });
    this.driftRows = series.counter({
      name: 'modelhost_drift_rows_total',
      help: 'Rows counted into drift statistics (versions with a reference profile); per-feature counts are at GET /v1/drift',
      labelNames: mv,
    });
    this.cancelled = series.counter({
      name: 'modelhost_requests_cancelled_total',
      help: 'Requests whose client went away before the answer: stage "queued" left the queue (or the model load, or decoding) and never ran; "running" ran and the answer was dropped',
      labelNames: [...mv, 'stage'],
    });
    this.cacheHits = series.counter({
      name: 'modelhost_response_cache_hits_total',
      help: 'Requests answered from the response cache (models with response_cache enabled)',
      labelNames: mv,
    });
    this.cacheMisses = series.counter({
      name: 'modelhost_response_cache_misses_total',
      help: 'Requests of models with response_cache enabled that were not in the cache and ran',
      labelNames: mv,
    });
    this.cacheEvictions = series.counter({
      name: 'modelhost_response_cache_evictions_total',
      help: 'Response cache entries pushed out to stay within RESPONSE_CACHE_BYTES (least recently used first)',
      labelNames: mv,
    });
    this.#perModel = [
      this.requests,
      this.requestDuration,
      this.queueDuration,
      this.computeDuration,
      this.batchSize,
      this.timeouts,
      this.errors,
      this.sessionsEvicted,
      this.loadDuration,
      this.loadFailures,
      this.unloads,
      this.driftRows,
      this.cancelled,
      this.cacheHits,
      this.cacheMisses,
      this.cacheEvictions,
    ];
    new client.Gauge({
      name: 'modelhost_queue_depth',
      help: 'Requests waiting in the batcher queue',
      labelNames: mv,
      registers: [r],
      collect() {
        this.reset();
        for (const e of models()?.entries() ?? []) this.set({ model: e.name, version: String(e.version) }, e.batcher.depth);
      },
    });
    new client.Gauge({
      name: 'modelhost_queue_capacity',
      help: 'Requests the batcher queue holds before it answers 503 (max_queue_size)',
      labelNames: mv,
      registers: [r],
      collect() {
        this.reset();
        for (const e of models()?.entries() ?? []) this.set({ model: e.name, version: String(e.version) }, e.batcher.options.maxQueueSize);
      },
    });
    new client.Gauge({
      name: 'modelhost_model_resident_bytes',
      help: 'Memory a loaded model version counts against the budget (what its load measured, at least what its validation measured)',
      labelNames: mv,
      registers: [r],
      collect() {
        this.reset();
        for (const e of models()?.entries() ?? []) this.set({ model: e.name, version: String(e.version) }, e.costBytes);
      },
    });
    new client.Gauge({
      name: 'modelhost_model_memory_budget_bytes',
      help: 'Memory the loaded models may take together (MODEL_MEMORY_BYTES)',
      registers: [r],
      collect() {
        const m = models()?.memory();
        if (m) this.set(m.budget_bytes);
      },
    });
    new client.Gauge({
      name: 'modelhost_model_memory_resident_bytes',
      help: "What the loaded models hold in real memory as the budget's watch sees it: resident memory outside V8's heap, less the least the worker held beside its models",
      registers: [r],
      collect() {
        const m = models()?.memory();
        if (m) this.set(m.resident_bytes);
      },
    });
    new client.Gauge({
      name: 'modelhost_model_memory_used_bytes',
      help: 'Memory the loaded models (and those still unloading) count against the budget',
      registers: [r],
      collect() {
        const m = models()?.memory();
        if (m) this.set(m.used_bytes);
      },
    });
    new client.Gauge({
      name: 'modelhost_loaded_models',
      help: 'Model versions loaded in this worker',
      registers: [r],
      collect() {
        this.set(models()?.entries().length ?? 0);
      },
    });
  }

  /** Gauges of the response cache's size and bound, and its evictions by model version. */
  watchCache(cache: ResponseCache): void {
    const r = this.registry;
    cache.onEvict = (model, version) => this.cacheEvictions.inc({ model, version: String(version) });
    new client.Gauge({
      name: 'modelhost_response_cache_bytes',
      help: 'Bytes held by the response cache (output tensors and per-entry overhead)',
      registers: [r],
      collect() {
        this.set(cache.bytes);
      },
    });
    new client.Gauge({
      name: 'modelhost_response_cache_entries',
      help: 'Answers held by the response cache',
      registers: [r],
      collect() {
        this.set(cache.entries);
      },
    });
    new client.Gauge({ name: 'modelhost_response_cache_capacity_bytes', help: 'The response cache bound (RESPONSE_CACHE_BYTES)', registers: [r] }).set(
      cache.maxBytes,
    );
  }

  /**
   * Labels for a request refused before a model version was picked: the model's name when the store has
   * it (MODEL_NOT_READY, VERSION_NOT_FOUND, MODEL_LOAD_FAILED), else "" (unknown names stay unbounded).
   */
  refusedLabels(err: unknown): { model: string; version: string } {
    const details = (err as Partial<InferrerError> | null)?.details ?? {};
    const record = typeof details.model === 'string' ? this.#models()?.record(details.model) : undefined;
    if (!record) return { model: '', version: '' };
    const version = typeof details.version === 'number' && record.versions.some((v) => v.version === details.version) ? String(details.version) : '';
    return { model: record.name, version };
  }

  /** The exposition text, after removing the series of models and versions that are gone. */
  async render(): Promise<string> {
    const models = this.#models();
    if (models) {
      const known = models
        .knownModels()
        .map((name) => {
          const r = models.record(name);
          return r ? `${r.name}${r.enabled === false ? '!' : ''}@${r.versions.map((v) => v.version).join(',')}` : '';
        })
        .join(' ');
      // Reading every series costs about as much as the scrape: only when the store's models changed.
      if (known !== this.#prunedFor || performance.now() - this.#prunedAt > PRUNE_EVERY_MS) {
        this.#prune();
        this.#prunedFor = known;
        this.#prunedAt = performance.now();
      }
    }
    // The worker's own metrics from prom-client, then the per-model families (model-series.ts says why).
    return `${await this.registry.metrics()}\n${await this.#series.render()}\n`;
  }

  #prune(): void {
    const models = this.#models();
    if (!models) return;
    for (const metric of this.#perModel) {
      for (const labels of metric.labelSets()) {
        const model = labels.model;
        if (typeof model !== 'string' || model === '') continue;
        const record = models.record(model);
        const version = labels.version === undefined || labels.version === '' ? undefined : Number(labels.version);
        const keep =
          record !== undefined &&
          (version === undefined || record.versions.some((v) => v.version === version)) &&
          (record.enabled !== false || labels.code === 'MODEL_NOT_READY');
        if (!keep) metric.remove(labels);
      }
    }
  }

  hooks(): RegistryHooks {
    return {
      observer: (model, v): BatchObserver => {
        const labels = { model, version: String(v) };
        return {
          onBatch: (_requests, rows, computeMs) => {
            this.batchSize.observe(labels, rows);
            this.stats.batch(model, v, rows, computeMs);
            this.computeDuration.observe(labels, computeMs / 1000);
          },
          onQueued: (ms) => this.queueDuration.observe(labels, ms / 1000),
          onTimeout: () => this.timeouts.inc(labels),
        };
      },
      onLoad: (model, _v, seconds, ok) => {
        if (ok) this.loadDuration.observe({ model }, seconds);
        else this.loadFailures.inc({ model });
      },
      onLookup: (hit, waitSeconds) => {
        this.lookups.inc({ result: hit ? 'hit' : 'load' });
        if (!hit) this.loadWait.observe(waitSeconds);
      },
      onUnload: (model, _v, reason) => {
        this.unloads.inc({ model, reason });
        if (reason === 'evicted') this.sessionsEvicted.inc({ model });
      },
    };
  }
}
