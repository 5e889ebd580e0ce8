/**
 * ModelRegistry: the models loaded in this worker (not the store on disk). Each entry is one model
 * version with its session and batcher, in state LOADING | READY | UNLOADING | UNAVAILABLE. Models load
 * on first use (or at start when their config says preload); beyond MAX_LOADED_MODELS the least recently
 * used idle entry is drained and unloaded. A new default version is loaded beside the old one, warmed,
 * switched to, and the old one drained, so no request in flight is lost.
 */
import { InferrerError, type ModelSignature, hasDynamicBatchAxis } from '@inferrer/core';
import type { ModelRecord, ModelStore, StacItem } from '@inferrer/model-store';
import { AdaptiveBatcher, type BatchObserver, type ExecutionProvider, OnnxSession, zeroFeeds } from '@inferrer/runtime';
import type { Logger } from '@inferrer/telemetry';
import type { ModelhostConfig } from './config.ts';

export type ModelState = 'LOADING' | 'READY' | 'UNLOADING' | 'UNAVAILABLE';

export interface LoadedModel {
  name: string;
  version: number;
  state: ModelState;
  signature: ModelSignature;
  session: OnnxSession;
  batcher: AdaptiveBatcher;
  lastUsed: number;
  loadedAt: number;
  /** The config it was loaded under (configKey). */
  configKey: string;
  /** The version's STAC MLM item and the model's labels: they drive image pre- and post-processing. */
  media: { stac?: StacItem; labels?: string[] };
}

export interface ModelSettings {
  maxBatchSize: number;
  maxQueueDelayMs: number;
  maxQueueSize: number;
  instances: number;
  executionProviders: ExecutionProvider[];
}

export interface RegistryHooks {
  observer(name: string, version: number): BatchObserver;
  onLoad?(name: string, version: number, seconds: number, ok: boolean): void;
  onUnload?(name: string, version: number, reason: 'evicted' | 'replaced' | 'deleted' | 'unloaded' | 'shutdown'): void;
}

const key = (name: string, version: number): string => `${name}@${version}`;
/** What a loaded session depends on in a model's config (drift thresholds are read per scrape, not by the session). */
const configKey = (record: ModelRecord): string => JSON.stringify({ ...record.config, drift: undefined });

/** The version a request without one goes to: a canary by its share of traffic, else the default. */
export function pickVersion(record: ModelRecord, random = Math.random()): number {
  let r = random * 100;
  for (const [v, share] of Object.entries(record.traffic ?? {})) {
    if (r < share) return Number(v);
    r -= share;
  }
  return record.default_version;
}

export class ModelRegistry {
  readonly #store: ModelStore;
  readonly #config: ModelhostConfig;
  readonly #log: Logger;
  readonly #hooks: RegistryHooks;
  readonly #loaded = new Map<string, LoadedModel>();
  readonly #loading = new Map<string, Promise<LoadedModel>>();
  /** Why the last warm-up load of a version failed (cleared when one succeeds). */
  readonly #failed = new Map<string, string>();
  /** Last record read from the store per model; the default version comes from here. */
  readonly #records = new Map<string, ModelRecord>();
  #closed = false;

  constructor(store: ModelStore, config: ModelhostConfig, logger: Logger, hooks: RegistryHooks) {
    this.#store = store;
    this.#config = config;
    this.#log = logger.child({ module: 'registry' });
    this.#hooks = hooks;
  }

  /** The loaded entry for a request, loading it if needed. */
  async get(name: string, version?: number): Promise<LoadedModel> {
    if (this.#closed) throw new InferrerError('SERVER_DRAINING', 'this worker is shutting down', {}, { retryAfter: 1 });
    const record = await this.#record(name, version);
    if (record.enabled === false) {
      throw new InferrerError('MODEL_NOT_READY', `model ${record.name} is unloaded; load it with POST /v2/repository/models/${record.name}/load`, { model: record.name }, { retryAfter: 5 });
    }
    const want = version ?? pickVersion(record);
    const hit = this.#loaded.get(key(record.name, want));
    if (hit && hit.state === 'READY') {
      hit.lastUsed = performance.now();
      return hit;
    }
    return this.#load(record, want);
  }

  /**
   * Starts loading (and warming) a version unless it is loaded or loading, and says its state now: READY,
   * LOADING, or UNAVAILABLE with the reason (unloaded, shutting down, the last load failed). Readiness
   * checks call it on every worker (through the metrics service), so a version is ready once it is warm
   * everywhere, and asking is what gets it there.
   */
  async warm(name: string, version: number): Promise<{ name: string; version: number; state: ModelState; reason?: string }> {
    if (this.#closed) return { name, version, state: 'UNAVAILABLE', reason: 'this worker is shutting down' };
    const record = await this.#record(name, version);
    if (!record.versions.some((v) => v.version === version)) {
      throw new InferrerError('VERSION_NOT_FOUND', `model ${record.name} version ${version} not found`, { model: record.name, version });
    }
    const at = { name: record.name, version };
    if (record.enabled === false) return { ...at, state: 'UNAVAILABLE', reason: 'unloaded' };
    const k = key(record.name, version);
    if (this.#loaded.get(k)?.state === 'READY') return { ...at, state: 'READY' };
    if (this.#loading.has(k)) return { ...at, state: 'LOADING' };
    const failed = this.#failed.get(k);
    this.#load(record, version).then(
      () => this.#failed.delete(k),
      (err: unknown) => {
        this.#failed.set(k, (err as Error).message);
        this.#log.warn('warm-up load failed', { model: record.name, version, err: (err as Error).message });
      },
    );
    return failed === undefined ? { ...at, state: 'LOADING' } : { ...at, state: 'UNAVAILABLE', reason: `the last load failed: ${failed}` };
  }

  /** The cached record, read again from the store when it is missing or does not know `version`. */
  async #record(name: string, version: number | undefined): Promise<ModelRecord> {
    let record = this.#records.get(name);
    if (!record || (version !== undefined && !record.versions.some((v) => v.version === version))) {
      record = await this.#store.get(name);
      this.#records.set(record.name, record);
    }
    return record;
  }

  /** Every entry, for /v1/models and metrics. */
  entries(): LoadedModel[] {
    return [...this.#loaded.values()];
  }

  /** The last record read from the store for a model (profiles, capture requests, drift thresholds). */
  record(name: string): ModelRecord | undefined {
    return this.#records.get(name);
  }

  /** How this worker runs a model: its config over this worker's defaults (for the model configuration extension). */
  settings(record: ModelRecord): ModelSettings {
    const cfg = record.config;
    const batching = cfg.batching ?? {};
    return {
      maxBatchSize: batching.max_batch_size ?? this.#config.maxBatchSize,
      maxQueueDelayMs: batching.max_queue_delay_ms ?? this.#config.maxQueueDelayMs,
      maxQueueSize: batching.max_queue_size ?? this.#config.maxQueueSize,
      instances: cfg.instances ?? this.#config.instances,
      executionProviders: cfg.execution_providers ?? this.#config.executionProviders,
    };
  }

  /** The record of a model as the store has it now (not cached: the watcher compares the cache with the store). */
  current(name: string): Promise<ModelRecord> {
    return this.#store.get(name);
  }

  /** Names of models whose record is cached (the watcher refreshes these). */
  knownModels(): string[] {
    return [...this.#records.keys()];
  }

  /**
   * Re-reads the store after a generation change: models that vanished are drained and unloaded, a new
   * default version is loaded beside the old one before the switch.
   */
  async refresh(): Promise<void> {
    for (const name of this.knownModels()) {
      let record: ModelRecord | undefined;
      try {
        record = await this.#store.get(name);
      } catch (err) {
        if ((err as InferrerError).code !== 'MODEL_NOT_FOUND') throw err;
      }
      const old = this.#records.get(name);
      if (!record || record.enabled === false) {
        if (record) this.#records.set(name, record);
        else this.#records.delete(name);
        for (const e of this.entries()) if (e.name === name) void this.#unload(e, record ? 'unloaded' : 'deleted');
        continue;
      }
      // Drift thresholds are read per scrape, not by the session: changing them reloads nothing.
      const configChanged = old === undefined || configKey(old) !== configKey(record);
      const loadedDefault = old ? this.#loaded.get(key(name, old.default_version)) : undefined;
      if (loadedDefault && (record.default_version !== old!.default_version || configChanged)) {
        // Load beside, warm, then switch the record; the old entry drains once nothing points at it.
        try {
          const k = key(name, record.default_version);
          const current = this.#loaded.get(k);
          // Loaded already under this config (warmed for a readiness check before this refresh): nothing to load.
          if (current?.configKey !== configKey(record)) {
            if (current && current !== loadedDefault) void this.#unload(current, 'replaced');
            else if (current) this.#loaded.delete(k);
            await this.#load(record, record.default_version, loadedDefault.version === record.default_version ? undefined : loadedDefault);
          }
        } catch (err) {
          this.#log.error('new version failed to load; keeping the old one', { model: name, version: record.default_version, err });
          continue;
        }
        this.#records.set(name, record);
        if (loadedDefault.version !== record.default_version || configChanged) void this.#unload(loadedDefault, 'replaced');
      } else {
        this.#records.set(name, record);
      }
      for (const e of this.entries()) {
        if (e.name === name && !record.versions.some((v) => v.version === e.version)) void this.#unload(e, 'deleted');
      }
      // Canary versions are loaded beside the default before they take traffic.
      for (const [v, share] of Object.entries(record.traffic ?? {})) {
        if (share > 0 && !this.#loaded.has(key(name, Number(v)))) {
          await this.#load(record, Number(v)).catch((err) => this.#log.error('canary version failed to load', { model: name, version: Number(v), err }));
        }
      }
    }
    await this.preload();
  }

  /** Loads every enabled model whose config says preload and that is not loaded yet. */
  async preload(): Promise<void> {
    for (const record of await this.#store.list()) {
      if (!record.config.preload || record.enabled === false || this.#loaded.has(key(record.name, record.default_version))) continue;
      this.#records.set(record.name, record);
      try {
        await this.#load(record, record.default_version);
      } catch (err) {
        this.#log.error('preload failed', { model: record.name, err });
      }
    }
  }

  /** Stops taking work and drains every entry. */
  async close(timeoutMs: number): Promise<void> {
    this.#closed = true;
    const all = this.entries().map((e) => this.#unload(e, 'shutdown'));
    await Promise.race([Promise.all(all), new Promise((r) => setTimeout(r, timeoutMs))]);
  }

  async #load(record: ModelRecord, version: number, beside?: LoadedModel): Promise<LoadedModel> {
    const k = key(record.name, version);
    const inflight = this.#loading.get(k);
    if (inflight) return inflight;
    const p = this.#doLoad(record, version, beside).finally(() => this.#loading.delete(k));
    this.#loading.set(k, p);
    return p;
  }

  async #doLoad(record: ModelRecord, version: number, beside?: LoadedModel): Promise<LoadedModel> {
    const started = performance.now();
    const { file, version: v } = await this.#store.resolve(record.name, version);
    const cfg = record.config;
    const settings = this.settings(record);
    const instances = settings.instances;
    const limitMb = this.#config.modelMaxMemoryMb;
    // What the upload's validation measured for one session; a version that would not fit is refused, not loaded.
    const needMb = v.validation ? Math.ceil((v.validation.memory_bytes * instances) / (1024 * 1024)) : 0;
    if (limitMb > 0 && needMb > limitMb) {
      this.#hooks.onLoad?.(record.name, version, 0, false);
      throw new InferrerError(
        'MODEL_LOAD_FAILED',
        `model ${record.name} version ${version} needs about ${needMb} MB to load (${instances} instance${instances === 1 ? '' : 's'}, measured at upload), more than this worker's limit of ${limitMb} MB (MODEL_MAX_MEMORY_MB)`,
        { model: record.name, version, need_mb: needMb, limit_mb: limitMb },
      );
    }
    let session: OnnxSession;
    try {
      session = await OnnxSession.load(file, {
        instances,
        intraOpThreads: cfg.intra_op_threads ?? this.#config.intraOpThreads,
        interOpThreads: cfg.inter_op_threads ?? this.#config.interOpThreads,
        graphOptimizationLevel: cfg.graph_optimization_level ?? this.#config.graphOptimizationLevel,
        executionProviders: settings.executionProviders,
      });
    } catch (err) {
      this.#hooks.onLoad?.(record.name, version, (performance.now() - started) / 1000, false);
      const e = err as InferrerError;
      if (e.code === 'PROVIDER_UNAVAILABLE') throw e;
      throw new InferrerError('MODEL_LOAD_FAILED', `model ${record.name} version ${version} could not be loaded: ${e.message}`, { model: record.name, version }, { retryAfter: 5, cause: err });
    }
    const batcher = new AdaptiveBatcher(
      session,
      {
        maxBatchSize: settings.maxBatchSize,
        maxQueueDelayMs: settings.maxQueueDelayMs,
        maxQueueSize: settings.maxQueueSize,
        batchable: hasDynamicBatchAxis(session.signature),
      },
      this.#hooks.observer(record.name, version),
    );
    const entry: LoadedModel = {
      name: record.name,
      version,
      state: 'LOADING',
      signature: v.inputs.length ? { inputs: v.inputs, outputs: v.outputs } : session.signature,
      session,
      batcher,
      lastUsed: performance.now(),
      loadedAt: Date.now(),
      configKey: configKey(record),
      media: { ...(v.stac ? { stac: v.stac } : {}), ...(record.labels ? { labels: record.labels } : {}) },
    };
    await this.#warm(entry);
    entry.state = 'READY';
    this.#loaded.set(key(record.name, version), entry);
    const seconds = (performance.now() - started) / 1000;
    this.#hooks.onLoad?.(record.name, version, seconds, true);
    this.#log.info('model loaded', { model: record.name, version, seconds: Number(seconds.toFixed(3)), instances: session.instances, batching: batcher.options, beside: beside?.version });
    this.#evict();
    return entry;
  }

  /** One run on zeros so the first real request does not pay for lazy initialisation. */
  async #warm(entry: LoadedModel): Promise<void> {
    const feeds = zeroFeeds(entry.signature);
    if (!feeds) return;
    try {
      await entry.session.run(feeds);
    } catch (err) {
      this.#log.warn('warm-up run failed; the model stays available', { model: entry.name, version: entry.version, err: (err as Error).message });
    }
  }

  #evict(): void {
    const excess = this.#loaded.size - this.#config.maxLoadedModels;
    if (excess <= 0) return;
    const idle = this.entries()
      .filter((e) => e.state === 'READY' && e.batcher.depth === 0 && e.batcher.inflight === 0)
      .sort((a, b) => a.lastUsed - b.lastUsed);
    for (const e of idle.slice(0, excess)) void this.#unload(e, 'evicted');
  }

  async #unload(entry: LoadedModel, reason: 'evicted' | 'replaced' | 'deleted' | 'unloaded' | 'shutdown'): Promise<void> {
    if (entry.state === 'UNLOADING') return;
    entry.state = 'UNLOADING';
    const k = key(entry.name, entry.version);
    if (this.#loaded.get(k) === entry) this.#loaded.delete(k);
    await entry.batcher.drained();
    await entry.session.dispose();
    this.#hooks.onUnload?.(entry.name, entry.version, reason);
    this.#log.info('model unloaded', { model: entry.name, version: entry.version, reason });
  }
}
