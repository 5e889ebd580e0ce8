/**
 * ModelRegistry: the models loaded in this worker (not the store on disk). Each entry is one model
 * version with its session and batcher, in state LOADING | READY | UNLOADING | UNAVAILABLE. Models load
 * on first use (or at start when their config says preload or pinned), one load at a time, within the
 * worker's memory budget (memory-budget.ts): each load measures what it cost, and makes room first by
 * unloading idle models, the least asked for per byte first (never one a request holds, never a pinned
 * one), as long as either what the models count or what the process holds in real memory beyond its own
 * is over the budget. A model
 * that alone needs more than the budget is refused. A request holds its model (a lease, `acquire` …
 * `release`) from lookup to answer. A new default version is loaded beside the old one, warmed, switched
 * to, and the old one drained, so no request in flight is lost.
 */
import { InferrerError, type ModelSignature, hasDynamicBatchAxis, withBatchAxis } from '@inferrer/core';
import type { ModelRecord, ModelStore, StacItem, VersionRecord } from '@inferrer/model-store';
import {
  AdaptiveBatcher,
  type BatchObserver,
  type ExecutionPlan,
  type ExecutionProvider,
  type OnnxSession,
  type SessionThreads,
  loadPlanned,
  zeroFeeds,
} from '@inferrer/runtime';
import type { Logger } from '@inferrer/telemetry';
import type { ModelhostConfig } from './config.ts';
import { maxSlots, planKey, planRequest, workerCpus } from './execution.ts';
import { MemoryBudget } from './memory-budget.ts';
import { nativeResidentReader } from './process-memory.ts';

export type ModelState = 'LOADING' | 'READY' | 'UNLOADING' | 'UNAVAILABLE';

export interface LoadedModel {
  name: string;
  version: number;
  state: ModelState;
  signature: ModelSignature;
  session: OnnxSession;
  batcher: AdaptiveBatcher;
  /** Slots × threads and batch size it runs with, and why (execution.ts). */
  plan: ExecutionPlan;
  lastUsed: number;
  loadedAt: number;
  /** The config it was loaded under (configKey). */
  configKey: string;
  /** SHA-256 of the version's ONNX file (response cache keys carry it). */
  sha256: string;
  /** The version's STAC MLM item and the model's labels: they drive image pre- and post-processing. */
  media: { stac?: StacItem; labels?: string[] };
  /** Memory counted against the budget: what the load measured, at least what validation measured. */
  costBytes: number;
  /** Requests holding it now (acquire … release): it is not unloaded to make room while any does. */
  leases: number;
  /** Never unloaded to make room (config.pinned). */
  pinned: boolean;
  /** Unloaded to make room only after every model without preload (config.preload). */
  preload: boolean;
}

/** The registry's part of the worker: its memory budget, shared runtime threads, and how it reads its size. */
export interface RegistryOptions {
  budgetBytes: number;
  /** Runtime threads the sessions share; absent: a thread of their own per execution slot. */
  threads?: SessionThreads | undefined;
  /** Bytes this process may still take under PROCESS_MEMORY_BYTES; absent: no ceiling (process-memory.ts). */
  memoryRoom?: (() => number) | undefined;
  /**
   * Resident memory of this process now, outside the main thread's JavaScript heap (a load's cost is how
   * much it grew; the budget holds it to its own plus the budget).
   */
  rss?: () => number;
}

export interface ModelSettings {
  /** Undefined: chosen at load (the loaded version's plan says what). */
  maxBatchSize: number | undefined;
  maxQueueDelayMs: number;
  maxQueueSize: number;
  /** Undefined: chosen at load. */
  instances: number | undefined;
  executionProviders: ExecutionProvider[];
  /** The model's config enables the response cache and this worker has one (RESPONSE_CACHE_BYTES > 0). */
  responseCache: boolean;
}

export interface RegistryHooks {
  observer(name: string, version: number): BatchObserver;
  onLoad?(name: string, version: number, seconds: number, ok: boolean): void;
  onUnload?(name: string, version: number, reason: 'evicted' | 'replaced' | 'deleted' | 'unloaded' | 'shutdown'): void;
  /** A request found its model loaded (true), or waited for it to load (false, `waitSeconds`). */
  onLookup?(hit: boolean, waitSeconds: number): void;
}

const key = (name: string, version: number): string => `${name}@${version}`;
/** Runtime threads one model's sessions may start on a worker: this many per CPU, and at least MIN_THREADS_CAP. */
const THREADS_PER_CPU = 8;
const MIN_THREADS_CAP = 64;
/** Plans kept for models loaded again (a few KB each). */
const MAX_PLANS = 4096;
/**
 * The budget's watch says so when the models hold this much more than the budget in resident memory (a load
 * takes its model over the budget until the next one trims: a tenth above is everyday churn).
 */
const OVER_BUDGET_WARNING = 1.1;
const OVER_BUDGET_WARNING_MS = 30_000;
/**
 * What a loaded session depends on in a model's config (drift thresholds are read per scrape, and the
 * response cache switch per request, not by the session: changing them reloads nothing).
 */
const configKey = (record: ModelRecord): string => JSON.stringify({ ...record.config, drift: undefined, response_cache: undefined });

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
  readonly #budget: MemoryBudget;
  readonly #threads: SessionThreads | undefined;
  readonly #memoryRoom: (() => number) | undefined;
  readonly #rss: () => number;
  /** Loads run one after the other: each measures its own cost, and two never compete for room. */
  #loadQueue: Promise<unknown> = Promise.resolve();
  /** Entries unloading now and the bytes they still hold. */
  readonly #unloading = new Map<LoadedModel, Promise<void>>();
  /**
   * Plans measured at earlier loads, by what they depend on (execution.ts planKey) with the model's
   * structure for its file: a model loaded again, or another of the same structure (a thousand MLPs of three
   * shapes), reuses the plan instead of spending a quarter of a second of CPU measuring it again.
   */
  readonly #plans = new Map<string, ExecutionPlan>();
  /** A load waiting for a request to let go of a model so that one can be unloaded. */
  #roomWaiters: (() => void)[] = [];
  #closed = false;
  /** When the budget's watch last said it found the models holding more than the budget (performance.now()). */
  #overSaidAt = Number.NEGATIVE_INFINITY;

  constructor(store: ModelStore, config: ModelhostConfig, logger: Logger, hooks: RegistryHooks, opts: RegistryOptions) {
    this.#store = store;
    this.#config = config;
    this.#log = logger.child({ module: 'registry' });
    this.#hooks = hooks;
    this.#budget = new MemoryBudget(opts.budgetBytes);
    this.#threads = opts.threads;
    this.#memoryRoom = opts.memoryRoom;
    this.#rss = opts.rss ?? nativeResidentReader();
  }

  /**
   * The budget for models, what the loaded ones (and those still unloading) count against it, and what
   * they hold in real memory as the budget's watch sees it (`resident_bytes`: the worker's resident memory
   * outside V8's heap, less the least it held beside its models).
   */
  memory(): { budget_bytes: number; used_bytes: number; resident_bytes: number } {
    let used = MemoryBudget.used(this.#loaded.values());
    for (const e of this.#unloading.keys()) used += e.costBytes;
    return { budget_bytes: this.#budget.limitBytes, used_bytes: used, resident_bytes: Math.max(0, this.#budget.resident(this.#rss(), used)) };
  }

  /**
   * The loaded entry for a request, loading it first if needed (within `deadline`, a performance.now()
   * time), held for the request until `release`. `loadMs` is how long the request waited for a load (0 when
   * it found the model loaded).
   */
  async acquire(name: string, version: number | undefined, deadline?: number): Promise<{ model: LoadedModel; loadMs: number }> {
    const started = performance.now();
    // A model loaded for this request can be unloaded again before the request takes it, when every other
    // model is busy: it is loaded once more, a few times at most.
    for (let attempt = 0; ; attempt++) {
      if (this.#closed) throw new InferrerError('SERVER_DRAINING', 'this worker is shutting down', {}, { retryAfter: 1 });
      const record = await this.#record(name, version);
      if (record.enabled === false) {
        throw new InferrerError(
          'MODEL_NOT_READY',
          `model ${record.name} is unloaded; load it with POST /v2/repository/models/${record.name}/load`,
          { model: record.name },
          { retryAfter: 5 },
        );
      }
      const want = version ?? pickVersion(record);
      if (attempt === 0) this.#budget.touch(record.name, want, this.#loaded.size);
      const hit = this.#loaded.get(key(record.name, want));
      if (hit && hit.state === 'READY') {
        hit.lastUsed = performance.now();
        hit.leases++;
        const loadMs = attempt === 0 ? 0 : hit.lastUsed - started;
        this.#hooks.onLookup?.(attempt === 0, loadMs / 1000);
        return { model: hit, loadMs };
      }
      if (attempt === 3)
        throw new InferrerError(
          'MODEL_NOT_READY',
          `model ${record.name} version ${want} was unloaded again to make room before it could run; every model on this worker is busy`,
          { model: record.name, version: want },
          { retryAfter: 1 },
        );
      const loaded = await this.#untilDeadline(this.#load(record, want), deadline, record.name, want);
      if (loaded.state === 'READY') {
        // Taken before any other load can look for room (those wait for the store's I/O first).
        loaded.lastUsed = performance.now();
        loaded.leases++;
        const loadMs = loaded.lastUsed - started;
        this.#hooks.onLookup?.(false, loadMs / 1000);
        return { model: loaded, loadMs };
      }
    }
  }

  /** Lets go of a model a request held. */
  release(model: LoadedModel): void {
    model.leases = Math.max(0, model.leases - 1);
    if (model.leases === 0 && this.#roomWaiters.length > 0) {
      const waiters = this.#roomWaiters;
      this.#roomWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** The loaded entry (loading it if needed), not held: for metadata. */
  async get(name: string, version?: number): Promise<LoadedModel> {
    const { model } = await this.acquire(name, version);
    this.release(model);
    return model;
  }

  /** `p`, or DEADLINE_EXCEEDED once `deadline` passes (the load goes on for the requests after this one). */
  #untilDeadline<T>(p: Promise<T>, deadline: number | undefined, name: string, version: number): Promise<T> {
    if (deadline === undefined) return p;
    const left = deadline - performance.now();
    if (left <= 0) return Promise.reject(deadlineError(name, version));
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(deadlineError(name, version)), left);
      }),
    ]).finally(() => clearTimeout(timer));
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
      responseCache: cfg.response_cache?.enable === true && this.#config.responseCacheBytes > 0,
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
    /** Models given `preload` by this change (the repository extension's load): every worker loads them. */
    const preloaded = new Set<string>();
    for (const name of this.knownModels()) {
      let record: ModelRecord | undefined;
      try {
        record = await this.#store.get(name);
      } catch (err) {
        if ((err as InferrerError).code !== 'MODEL_NOT_FOUND') throw err;
      }
      const old = this.#records.get(name);
      if (record?.config.preload && !old?.config.preload) preloaded.add(name);
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
    await this.preload(preloaded);
  }

  /**
   * Loads the enabled models whose config says `pinned`, or `preload` (all of those at start; after a store
   * change, the pinned ones, those this worker has not seen yet and those that have just been given
   * `preload`: a preloaded model that was unloaded to make room is not loaded again by a store change).
   */
  async preload(changed?: ReadonlySet<string>): Promise<void> {
    for (const record of await this.#store.list()) {
      const wanted =
        record.config.pinned === true ||
        (record.config.preload === true && (changed === undefined || changed.has(record.name) || !this.#records.has(record.name)));
      if (!wanted || record.enabled === false || this.#loaded.has(key(record.name, record.default_version))) continue;
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

  /** Loads a version (once: callers asking for one that is loading share that load), after the loads before it. */
  #load(record: ModelRecord, version: number, beside?: LoadedModel): Promise<LoadedModel> {
    const k = key(record.name, version);
    const inflight = this.#loading.get(k);
    if (inflight) return inflight;
    const p = this.#loadQueue.then(() => this.#doLoad(record, version, beside)).finally(() => this.#loading.delete(k));
    this.#loadQueue = p.catch(() => undefined);
    this.#loading.set(k, p);
    return p;
  }

  async #doLoad(record: ModelRecord, version: number, beside?: LoadedModel): Promise<LoadedModel> {
    const started = performance.now();
    if (this.#closed) throw new InferrerError('SERVER_DRAINING', 'this worker is shutting down', {}, { retryAfter: 1 });
    const ready = this.#loaded.get(key(record.name, version));
    if (ready?.state === 'READY' && ready.configKey === configKey(record)) return ready;
    const { file, version: v } = await this.#store.resolve(record.name, version);
    const cfg = record.config;
    const settings = this.settings(record);
    const id = key(record.name, version);
    const limitMb = this.#config.modelMaxMemoryMb;
    // Slots unless set: chosen at load (execution.ts), within the cores, the runtime threads and the memory.
    const maxInstances = maxSlots({
      cpus: workerCpus(this.#config).cpus,
      sessionThreads: this.#config.sessionThreads,
      budgetBytes: this.#budget.limitBytes,
      slotBytes: this.#budget.expected(id, v, 1),
      limitBytes: limitMb * MiB,
    });
    const instances = settings.instances ?? maxInstances;
    const refuse = (message: string, details: Record<string, unknown>): InferrerError => {
      this.#hooks.onLoad?.(record.name, version, 0, false);
      return new InferrerError('MODEL_LOAD_FAILED', message, { model: record.name, version, ...details });
    };
    // What the upload's validation measured for one session; a version that would not fit is refused, not loaded.
    const needMb = v.validation ? Math.ceil((v.validation.memory_bytes * instances) / MiB) : 0;
    if (limitMb > 0 && needMb > limitMb) {
      throw refuse(
        `model ${record.name} version ${version} needs about ${needMb} MB to load (${instances} instance${instances === 1 ? '' : 's'}, measured at upload), more than this worker's limit of ${limitMb} MB (MODEL_MAX_MEMORY_MB)`,
        { need_mb: needMb, limit_mb: limitMb },
      );
    }
    // Every slot's session starts its own intra- and inter-op runtime threads: thousands of them (64
    // instances × 256 threads) never finish loading, and under PROCESS_MEMORY_BYTES (each thread's stack
    // counts) the runtime aborts the worker when one cannot be created.
    // What the settings fix (a measured plan keeps slots × threads within the cores).
    const fixedInstances = settings.instances ?? 1;
    const intra = cfg.intra_op_threads ?? this.#config.intraOpThreads ?? 1;
    const threads = fixedInstances * (intra + (cfg.inter_op_threads ?? this.#config.interOpThreads));
    const maxThreads = Math.max(MIN_THREADS_CAP, THREADS_PER_CPU * workerCpus(this.#config).cpus);
    if (threads > maxThreads) {
      throw refuse(
        `model ${record.name} version ${version} asks for ${threads} runtime threads (${fixedInstances} instance${fixedInstances === 1 ? '' : 's'} × intra_op_threads + inter_op_threads), more than this worker starts for one model, ${maxThreads} (${THREADS_PER_CPU} per CPU)`,
        { threads, max_threads: maxThreads, instances: fixedInstances, intra_op_threads: intra },
      );
    }
    const need = this.#budget.expected(id, v, instances, cfg.shared_graph === true);
    if (need > this.#budget.limitBytes) {
      throw refuse(
        `model ${record.name} version ${version} needs about ${mb(need)} MB (${instances} instance${instances === 1 ? '' : 's'}), more than this worker's whole memory budget for models, ${mb(this.#budget.limitBytes)} MB (MODEL_MEMORY_BYTES): it cannot be loaded here`,
        { need_bytes: need, budget_bytes: this.#budget.limitBytes, limit: 'MODEL_MEMORY_BYTES' },
      );
    }
    await this.#makeRoom(need, record.name, version);
    const before = this.#rss();
    let session: OnnxSession;
    let plan: ExecutionPlan;
    try {
      // Slots × threads and batch size: as set, else measured here (execution.ts).
      const req = planRequest(file, record, this.#config, settings.executionProviders, maxInstances, this.#threads, this.#memoryRoom, {
        ...v.onnx,
        bytes: v.bytes,
      });
      const reuse = planKey({ ...req, file: structure(v) ?? req.file });
      ({ session, plan } = await loadPlanned({ ...req, earlier: this.#plans.get(reuse) }));
      if (plan.measured.length > 0 && !this.#plans.has(reuse)) {
        this.#plans.set(reuse, plan);
        if (this.#plans.size > MAX_PLANS) this.#plans.delete(this.#plans.keys().next().value!);
      }
    } catch (err) {
      this.#hooks.onLoad?.(record.name, version, (performance.now() - started) / 1000, false);
      const e = err as InferrerError;
      if (e.code === 'PROVIDER_UNAVAILABLE') throw e;
      throw new InferrerError(
        'MODEL_LOAD_FAILED',
        `model ${record.name} version ${version} could not be loaded: ${e.message}`,
        { model: record.name, version },
        { retryAfter: 5, cause: err },
      );
    }
    const batcher = new AdaptiveBatcher(
      session,
      {
        maxBatchSize: plan.maxBatchSize,
        maxQueueDelayMs: settings.maxQueueDelayMs,
        maxQueueSize: settings.maxQueueSize,
        batchable: hasDynamicBatchAxis(withBatchAxis(session.signature, cfg.batching?.batch_axis)),
        sliceByBatch: plan.inline,
      },
      this.#hooks.observer(record.name, version),
    );
    const entry: LoadedModel = {
      name: record.name,
      version,
      state: 'LOADING',
      signature: withBatchAxis(v.inputs.length ? { inputs: v.inputs, outputs: v.outputs } : session.signature, cfg.batching?.batch_axis),
      session,
      batcher,
      plan,
      lastUsed: performance.now(),
      loadedAt: Date.now(),
      configKey: configKey(record),
      sha256: v.sha256,
      media: { ...(v.stac ? { stac: v.stac } : {}), ...(record.labels ? { labels: record.labels } : {}) },
      costBytes: 0,
      leases: 0,
      pinned: cfg.pinned === true,
      preload: cfg.preload === true,
    };
    await this.#warm(entry);
    const grew = this.#rss() - before;
    entry.costBytes = this.#budget.measured(id, v, session.instances, grew, session.shared);
    entry.state = 'READY';
    entry.lastUsed = performance.now();
    this.#loaded.set(id, entry);
    const seconds = (performance.now() - started) / 1000;
    this.#hooks.onLoad?.(record.name, version, seconds, true);
    this.#log.info('model loaded', {
      model: record.name,
      version,
      seconds: Number(seconds.toFixed(3)),
      instances: session.instances,
      ...(session.shared ? { sharedGraph: true } : {}),
      intraOpThreads: plan.intraOpThreads,
      batching: batcher.options,
      plan: plan.reason,
      beside: beside?.version,
      costMb: Number((entry.costBytes / MiB).toFixed(2)),
      grewMb: Number((grew / MiB).toFixed(2)),
    });
    // A load that cost more than expected may leave the worker over its budget: unload idle models now.
    this.#trim(entry);
    return entry;
  }

  /** One run on zeros so the first real request does not pay for lazy initialisation. */
  async #warm(entry: LoadedModel): Promise<void> {
    // A shared model whose template has run: the run would warm nothing (its weights are read as they come).
    if (entry.session.warm) return;
    const feeds = zeroFeeds(entry.signature);
    if (!feeds) return;
    try {
      await entry.session.run(feeds);
    } catch (err) {
      this.#log.warn('warm-up run failed; the model stays available', { model: entry.name, version: entry.version, err: (err as Error).message });
    }
  }

  /**
   * Unloads idle models until `need` more bytes fit the budget (and one more model fits
   * MAX_LOADED_MODELS), and waits until their memory is given back. When every model that would have to
   * go is busy, waits for requests to let go of them, up to REQUEST_TIMEOUT_MS.
   */
  async #makeRoom(need: number, name: string, version: number): Promise<void> {
    const giveUp = performance.now() + this.#config.requestTimeoutMs;
    for (;;) {
      const loaded = this.#ready();
      const { counted, real } = this.#used();
      const max = this.#config.maxLoadedModels;
      const count = max > 0 ? loaded.length + 1 - max : 0;
      // By real memory where it is over the count; the count alone never keeps a load out that it lets in.
      const victims = this.#budget.victims(loaded, real, need, busy, count) ?? this.#budget.victims(loaded, counted, need, busy, count);
      if (victims) {
        await Promise.all(victims.map((e) => this.#unload(e, 'evicted')));
        return;
      }
      // Versions being replaced or deleted give their memory back once their requests are answered.
      if (this.#unloading.size > 0) {
        await Promise.race(this.#unloading.values());
        continue;
      }
      const left = giveUp - performance.now();
      if (left <= 0) {
        throw new InferrerError(
          'MODEL_NOT_READY',
          `model ${name} version ${version} cannot be loaded yet: every model this worker could unload to make room is busy or pinned (MODEL_MEMORY_BYTES ${mb(this.#budget.limitBytes)} MB)`,
          { model: name, version },
          { retryAfter: 1 },
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 1000));
        this.#roomWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Loaded entries that are ready (those loading or unloading are not candidates to unload). */
  #ready(): LoadedModel[] {
    const out: LoadedModel[] = [];
    for (const e of this.#loaded.values()) if (e.state === 'READY') out.push(e);
    return out;
  }

  /**
   * What the models count against the budget (those unloading included), and the larger of that and what
   * the process holds in real memory beyond its own.
   */
  #used(): { counted: number; real: number } {
    const { used_bytes: counted, resident_bytes: resident } = this.memory();
    return { counted, real: Math.max(counted, resident) };
  }

  /**
   * Unloads idle models while the loaded ones count, or hold in real memory, more than the budget (a load
   * cost more than expected), never `loaded` (just loaded for a request that has yet to take it).
   */
  #trim(loaded: LoadedModel): void {
    const ready = this.#ready();
    const { counted, real } = this.#used();
    const keep = (e: LoadedModel): boolean => e === loaded || busy(e);
    const victims = this.#budget.victims(ready, real, 0, keep) ?? this.#budget.victims(ready, counted, 0, keep) ?? [];
    if (real > this.#budget.limitBytes * OVER_BUDGET_WARNING && real > counted) this.#sayOver(counted, real, victims);
    for (const e of victims) void this.#unload(e, 'evicted');
  }

  /**
   * Says (at most every OVER_BUDGET_WARNING_MS) that the worker's resident memory beyond its own is well over
   * the budget while the models count less: what the worker holds, where, and what it unloads for it. The
   * operator's clue when a worker grows past its budget; the count alone would not show it.
   */
  #sayOver(counted: number, real: number, victims: LoadedModel[]): void {
    const now = performance.now();
    if (now - this.#overSaidAt < OVER_BUDGET_WARNING_MS) return;
    this.#overSaidAt = now;
    const m = process.memoryUsage();
    this.#log.warn('the models hold more than the memory budget in resident memory', {
      budgetMb: mb(this.#budget.limitBytes),
      countedMb: mb(counted),
      residentMb: mb(real),
      unloading: victims.length,
      loaded: this.#loaded.size,
      processResidentMb: mb(m.rss),
      heapMb: mb(m.heapTotal),
      buffersMb: mb(m.arrayBuffers),
    });
  }

  async #unload(entry: LoadedModel, reason: 'evicted' | 'replaced' | 'deleted' | 'unloaded' | 'shutdown'): Promise<void> {
    if (entry.state === 'UNLOADING') return this.#unloading.get(entry);
    entry.state = 'UNLOADING';
    const k = key(entry.name, entry.version);
    if (this.#loaded.get(k) === entry) this.#loaded.delete(k);
    const done = (async () => {
      await entry.batcher.drained();
      await entry.session.dispose();
      this.#hooks.onUnload?.(entry.name, entry.version, reason);
      this.#log.info('model unloaded', { model: entry.name, version: entry.version, reason, costMb: Number((entry.costBytes / MiB).toFixed(2)) });
    })().finally(() => this.#unloading.delete(entry));
    this.#unloading.set(entry, done);
    return done;
  }
}

const MiB = 1024 * 1024;
const mb = (bytes: number): number => Math.round(bytes / MiB);
/**
 * What makes two versions run alike for a plan: the same signature, file size, opsets and producer (the
 * same graph with other weights). Undefined when the store does not know the signature: the file decides.
 */
const structure = (v: VersionRecord): string | undefined =>
  v.inputs.length === 0 ? undefined : JSON.stringify([v.bytes, v.inputs, v.outputs, v.onnx.opsets, v.onnx.producer]);
/** Requests queued or running in the model's batcher. */
const busy = (e: LoadedModel): boolean => e.batcher.depth > 0 || e.batcher.inflight > 0;

function deadlineError(name: string, version: number): InferrerError {
  return new InferrerError('DEADLINE_EXCEEDED', `model ${name} version ${version} was still loading when the request's deadline passed`, {
    model: name,
    version,
  });
}
