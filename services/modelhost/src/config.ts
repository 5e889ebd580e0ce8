/**
 * The modelhost's configuration: the only reader of process.env. Parsed once in main.ts; every problem is
 * printed and the process exits non-zero; the result is frozen.
 */
import os from 'node:os';
import { z } from 'zod';
import { LOG_ENV, SERVING_ENV, envFlag, envList, envServiceId, loadEnvConfig } from '@inferrer/telemetry';

export const ModelhostEnvSchema = z
  .object({
    HOST: z.string().default('127.0.0.1'),
    PORT: z.coerce.number().int().min(0).max(65535).default(9001),
    MODEL_DIR: z.string().min(1),
    MODELHOST_ID: envServiceId(),
    ...LOG_ENV,
    ...SERVING_ENV,
    /**
     * Memory the loaded models may take together (each counted at what its load measured, at least what its
     * validation measured); the least recently used idle models are unloaded to make room, and a model that
     * alone needs more is refused with MODEL_LOAD_FAILED. Default: 70 % of the container's memory limit (the
     * host's memory without one), less what the worker holds once started.
     */
    MODEL_MEMORY_BYTES: z.coerce
      .number()
      .int()
      .min(1024 * 1024)
      .optional(),
    /**
     * The most memory the worker's process may allocate (its data segment, RLIMIT_DATA, set at start with
     * prlimit): a run that would need more fails its allocation, and the request gets 413
     * INFERENCE_TOO_COSTLY instead of the kernel killing the worker. Default: 90 % of the container's memory
     * limit (the host's memory without one); 0: no ceiling.
     */
    PROCESS_MEMORY_BYTES: z.coerce.number().int().min(0).optional(),
    /** At most this many versions loaded at once besides the memory budget; 0: the budget alone decides. */
    MAX_LOADED_MODELS: z.coerce.number().int().min(0).default(0),
    /**
     * A version whose sessions would need more than this (the memory its validation took at upload, times
     * its instances) is refused with MODEL_LOAD_FAILED instead of being loaded; 0: no limit.
     */
    MODEL_MAX_MEMORY_MB: z.coerce.number().int().min(0).default(2048),
    /**
     * Runtime threads the models' sessions share (each model's execution slots on different ones); 0: a
     * thread of its own per slot, which costs about 13 MB and a slow start per model. Default: the CPUs.
     */
    SESSION_THREADS: z.coerce.number().int().min(0).max(256).default(Math.max(1, os.availableParallelism())),
    /**
     * Most rows per batch for every model (EOTDL's BATCH_SIZE is an alias); a model's config overrides. Unset:
     * chosen per model at load from measured runs (up to BATCH_SIZE_CAP), see PLAN_MEASURE_MS.
     */
    MAX_BATCH_SIZE: z.coerce.number().int().min(1).max(4096).optional(),
    BATCH_SIZE: z.coerce.number().int().min(1).max(4096).optional(),
    /** Default wait for the oldest request before a batch is cut (EOTDL's BATCH_TIMEOUT, in seconds, is an alias). */
    MAX_QUEUE_DELAY_MS: z.coerce.number().min(0).max(10_000).optional(),
    BATCH_TIMEOUT: z.coerce.number().min(0).max(10).optional(),
    MAX_QUEUE_SIZE: z.coerce.number().int().min(1).default(1024),
    /** Execution slots (a session each, on different runtime threads) per model. Unset: chosen per model at load (PLAN_MEASURE_MS). */
    INSTANCES: z.coerce.number().int().min(1).max(64).optional(),
    /** ONNX Runtime intra-op threads per slot. Unset: chosen per model at load with INSTANCES. */
    INTRA_OP_THREADS: z.coerce.number().int().min(1).max(256).optional(),
    /** Cores this worker may use (the launcher gives each of N modelhosts on one machine its share); unset: the cores it may run on, capped by a container's CPU quota. */
    CPUS: z.coerce.number().int().min(1).max(1024).optional(),
    /**
     * How long a model's load may spend measuring execution layouts (slots × threads over CPUS) and batch
     * sizes for what settings leave open; 0: nothing is measured, and what is unset runs 1 slot × 1 thread
     * with batches of up to 32.
     */
    PLAN_MEASURE_MS: z.coerce.number().int().min(0).max(600_000).default(10_000),
    /**
     * A model whose single row runs in less than this (ms) is not measured further at load: one
     * single-threaded slot with batches of up to BATCH_SIZE_CAP (per-run overhead is most of its cost). 0:
     * every model is measured.
     */
    PLAN_CHEAP_MS: z.coerce.number().min(0).max(10_000).default(1),
    /**
     * Such a model whose single row runs in at most this (ms) runs on the worker's own thread, not a runtime
     * thread, unless its runs could grow with the request's values (see docs/operations.md); 0: never.
     */
    INLINE_RUN_MS: z.coerce.number().min(0).max(10).default(0.25),
    /** Largest batch size measured when the batch size is chosen at load. */
    BATCH_SIZE_CAP: z.coerce.number().int().min(1).max(4096).default(32),
    INTER_OP_THREADS: z.coerce.number().int().min(1).max(256).default(1),
    GRAPH_OPTIMIZATION_LEVEL: z.enum(['disabled', 'basic', 'extended', 'all']).default('all'),
    EXECUTION_PROVIDERS: envList(['cpu', 'cuda']).default(['cpu']),
    REQUEST_TIMEOUT_MS: z.coerce.number().int().min(1).default(30_000),
    MAX_BODY_BYTES: z.coerce
      .number()
      .int()
      .min(1024)
      .default(64 * 1024 * 1024),
    /** How often the store generation is polled (fs events are also watched). */
    WATCH_INTERVAL_MS: z.coerce.number().int().min(50).default(1000),
    /** false: notice store changes by polling alone, as on a network volume that reports no file events. */
    WATCH_FS_EVENTS: envFlag().default(true),
    /**
     * A run still going this long after it started (ms) can only be a model that does not end on what the
     * request sent (a Loop to a trip count it chose): ONNX Runtime cannot stop it, and it holds its runtime
     * thread and a core, so the worker drains and restarts. 0: never. Default: twice REQUEST_TIMEOUT_MS.
     */
    RUN_TIMEOUT_MS: z.coerce.number().int().min(0).optional(),
    /** How long SIGTERM waits for queued and running requests. */
    DRAIN_TIMEOUT_MS: z.coerce.number().int().min(0).default(30_000),
    /** Load models whose config says preload at start (readiness waits for them). */
    PRELOAD: envFlag().default(true),
    /** Images (files) one request may carry; more answer TOO_MANY_IMAGES. */
    MAX_IMAGES_PER_REQUEST: z.coerce.number().int().min(1).max(4096).default(64),
    /** Largest width × height of one image, read from its header before decoding (decompression bombs). */
    MAX_IMAGE_PIXELS: z.coerce.number().int().min(1).default(50_000_000),
    /**
     * Memory for the response cache of models whose config enables it (answers kept by a hash of the model
     * version and the input tensors, least recently used first out); 0: no cache.
     */
    RESPONSE_CACHE_BYTES: z.coerce
      .number()
      .int()
      .min(0)
      .default(64 * 1024 * 1024),
    /** Live drift statistics of inputs and outputs for versions with a reference profile (GET /v1/drift). */
    DRIFT_ENABLED: envFlag().default(true),
  })
  .strict();

export type ModelhostConfig = Readonly<{
  host: string;
  port: number;
  acceptors: number;
  modelDir: string;
  id: string;
  logLevel: 'error' | 'warn' | 'info' | 'debug';
  logFormat: 'json' | 'pretty';
  accessLog: boolean;
  accessLogSample: number;
  /** Undefined: derived at start from the memory limit (memory-budget.ts defaultBudget). */
  modelMemoryBytes: number | undefined;
  /** Undefined: derived at start from the memory limit (process-memory.ts defaultProcessMemory); 0: none. */
  processMemoryBytes: number | undefined;
  maxLoadedModels: number;
  modelMaxMemoryMb: number;
  sessionThreads: number;
  /** Undefined: chosen per model at load. */
  maxBatchSize: number | undefined;
  maxQueueDelayMs: number;
  maxQueueSize: number;
  instances: number | undefined;
  intraOpThreads: number | undefined;
  cpus: number | undefined;
  planMeasureMs: number;
  planCheapMs: number;
  inlineRunMs: number;
  batchSizeCap: number;
  interOpThreads: number;
  graphOptimizationLevel: 'disabled' | 'basic' | 'extended' | 'all';
  executionProviders: ('cpu' | 'cuda')[];
  requestTimeoutMs: number;
  /** 0: runs are never timed out. */
  runTimeoutMs: number;
  maxBodyBytes: number;
  watchIntervalMs: number;
  watchFsEvents: boolean;
  drainTimeoutMs: number;
  preload: boolean;
  maxImagesPerRequest: number;
  maxImagePixels: number;
  driftEnabled: boolean;
  responseCacheBytes: number;
}>;

export function loadConfig(env: NodeJS.ProcessEnv = process.env): ModelhostConfig {
  return loadEnvConfig('modelhost', ModelhostEnvSchema, env, (e) => ({
    host: e.HOST,
    port: e.PORT,
    acceptors: e.ACCEPTORS,
    modelDir: e.MODEL_DIR,
    id: e.MODELHOST_ID,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    accessLog: e.ACCESS_LOG,
    accessLogSample: e.ACCESS_LOG_SAMPLE,
    modelMemoryBytes: e.MODEL_MEMORY_BYTES,
    processMemoryBytes: e.PROCESS_MEMORY_BYTES,
    maxLoadedModels: e.MAX_LOADED_MODELS,
    modelMaxMemoryMb: e.MODEL_MAX_MEMORY_MB,
    sessionThreads: e.SESSION_THREADS,
    maxBatchSize: e.MAX_BATCH_SIZE ?? e.BATCH_SIZE,
    maxQueueDelayMs: e.MAX_QUEUE_DELAY_MS ?? (e.BATCH_TIMEOUT !== undefined ? e.BATCH_TIMEOUT * 1000 : 0),
    maxQueueSize: e.MAX_QUEUE_SIZE,
    instances: e.INSTANCES,
    intraOpThreads: e.INTRA_OP_THREADS,
    cpus: e.CPUS,
    planMeasureMs: e.PLAN_MEASURE_MS,
    planCheapMs: e.PLAN_CHEAP_MS,
    inlineRunMs: e.INLINE_RUN_MS,
    batchSizeCap: e.BATCH_SIZE_CAP,
    interOpThreads: e.INTER_OP_THREADS,
    graphOptimizationLevel: e.GRAPH_OPTIMIZATION_LEVEL,
    executionProviders: e.EXECUTION_PROVIDERS,
    requestTimeoutMs: e.REQUEST_TIMEOUT_MS,
    runTimeoutMs: e.RUN_TIMEOUT_MS ?? 2 * e.REQUEST_TIMEOUT_MS,
    maxBodyBytes: e.MAX_BODY_BYTES,
    watchIntervalMs: e.WATCH_INTERVAL_MS,
    watchFsEvents: e.WATCH_FS_EVENTS,
    drainTimeoutMs: e.DRAIN_TIMEOUT_MS,
    preload: e.PRELOAD,
    maxImagesPerRequest: e.MAX_IMAGES_PER_REQUEST,
    maxImagePixels: e.MAX_IMAGE_PIXELS,
    driftEnabled: e.DRIFT_ENABLED,
    responseCacheBytes: e.RESPONSE_CACHE_BYTES,
  }));
}
