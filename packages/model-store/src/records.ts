/** What the store keeps for each model, as JSON in `<MODEL_DIR>/<name>/model.json`. */
import { z } from 'zod';
import { InferrerError, type ModelSignature } from '@inferrer/core';
import type { StacItem } from './stac-mlm.ts';

export const BatchingConfigSchema = z
  .object({
    /** Most rows in one batch; 1 turns batching off. */
    max_batch_size: z.number().int().min(1).max(4096).optional(),
    /** How long the oldest queued request may wait for others before its batch is cut. */
    max_queue_delay_ms: z.number().min(0).max(10_000).optional(),
    /** Requests waiting per model per worker before new ones get QUEUE_FULL. */
    max_queue_size: z.number().int().min(1).max(1_000_000).optional(),
    /**
     * Where requests are joined: `first`, along dim 0 of every input and output (a model of id vectors,
     * [batch] → [batch, d]); `none`, never; `auto` (the default), where the graph's dims show a batch axis.
     */
    batch_axis: z.enum(['auto', 'first', 'none']).optional(),
  })
  .strict();

/** Drift thresholds of a model (the metrics service's defaults where absent); see docs/operations.md#drift. */
export const DriftConfigSchema = z
  .object({
    psi_warning: z.number().min(0).max(100).optional(),
    psi_critical: z.number().min(0).max(100).optional(),
    /** |mean shift| in reference standard deviations. */
    z_warning: z.number().min(0).max(1000).optional(),
    z_critical: z.number().min(0).max(1000).optional(),
    /** Rows in the window before a feature gets a score. */
    min_samples: z.number().int().min(1).max(100_000_000).optional(),
  })
  .strict();

const finite = z.number().refine(Number.isFinite, 'must be a finite number');

/** One feature of a reference profile (packages/runtime/src/drift/profile.ts). */
export const FeatureProfileSchema = z
  .object({
    name: z.string().min(1).max(256),
    count: z.number().min(0).optional(),
    mean: finite,
    std: finite.refine((x) => x >= 0, 'must be ≥ 0'),
    edges: z.array(finite).min(2).max(65),
    counts: z
      .array(finite.refine((x) => x >= 0, 'must be ≥ 0'))
      .min(1)
      .max(64),
  })
  .strict();

/** A reference profile as a client sends it (source, created_at and samples are filled in when absent). */
export const DriftProfileSchema = z
  .object({
    source: z.enum(['upload', 'sample', 'capture']).optional(),
    created_at: z.string().max(64).optional(),
    samples: z.number().int().min(0).optional(),
    // A profile of no input compares nothing: storing one would only hide that drift is not watched.
    inputs: z.array(FeatureProfileSchema).min(1, 'describe at least one input').max(256),
    outputs: z.array(FeatureProfileSchema).max(256).optional(),
  })
  .strict();

export type DriftConfig = z.infer<typeof DriftConfigSchema>;

/** A stored reference profile: per feature count, mean, std, bin edges and counts. */
export interface StoredProfile {
  source: 'upload' | 'sample' | 'capture';
  created_at: string;
  samples: number;
  inputs: { name: string; count: number; mean: number; std: number; edges: number[]; counts: number[] }[];
  outputs: { name: string; count: number; mean: number; std: number; edges: number[]; counts: number[] }[];
}

/** A request to capture a profile from the next `samples` live rows of a version. */
export interface CaptureRequest {
  version: number;
  samples: number;
  requested_at: string;
}

export const ModelConfigSchema = z
  .object({
    batching: BatchingConfigSchema.optional(),
    /** Execution slots (worker threads, a session each) per worker. */
    instances: z.number().int().min(1).max(64).optional(),
    /**
     * Load at worker start instead of on first use; a worker short of memory unloads such models only after
     * every model without it.
     */
    preload: z.boolean().optional(),
    /** Load at worker start and keep loaded: never unloaded to make room for other models. */
    pinned: z.boolean().optional(),
    /**
     * Models of one graph that differ only in their weights share one ONNX Runtime session per worker, their
     * weights fed as inputs (runtime/shared-graph.ts): a load reads the weights, and a model holds their bytes.
     * Inline models only (the execution plan's `inline`); answers are those of the graph run without
     * prepacking its weights.
     */
    shared_graph: z.boolean().optional(),
    execution_providers: z
      .array(z.enum(['cpu', 'cuda']))
      .min(1)
      .optional(),
    intra_op_threads: z.number().int().min(1).max(256).optional(),
    inter_op_threads: z.number().int().min(1).max(256).optional(),
    graph_optimization_level: z.enum(['disabled', 'basic', 'extended', 'all']).optional(),
    drift: DriftConfigSchema.optional(),
    /**
     * Triton's response cache: a deterministic model's answers are kept in each modelhost's bounded cache
     * (RESPONSE_CACHE_BYTES) and identical inputs are answered from it without running the model.
     */
    response_cache: z.object({ enable: z.boolean() }).strict().optional(),
  })
  .strict();

export type ModelConfig = z.infer<typeof ModelConfigSchema>;

/** The JSON metadata an upload may carry beside the file. */
export const UploadMetadataSchema = z
  .object({
    description: z.string().max(4096).optional(),
    model_description: z.string().max(4096).optional(),
    config: ModelConfigSchema.optional(),
    labels: z.array(z.string().max(256)).max(100_000).optional(),
    /** Make this upload the default version (true unless the model sets a default by hand later). */
    make_default: z.boolean().optional(),
    /** A STAC item with the MLM extension (checked by stac-mlm.ts against the graph, stored with the version). */
    stac: z.unknown().optional(),
    /** A reference profile for drift detection (DriftProfileSchema), stored with the version. */
    profile: z.unknown().optional(),
  })
  .strict();

export type UploadMetadata = z.infer<typeof UploadMetadataSchema>;

export const ModelPatchSchema = z
  .object({
    description: z.string().max(4096).optional(),
    model_description: z.string().max(4096).optional(),
    config: ModelConfigSchema.optional(),
    labels: z.array(z.string().max(256)).max(100_000).optional(),
    default_version: z.number().int().min(1).optional(),
    /** false unloads the model from every worker until it is loaded again (v2 repository extension). */
    enabled: z.boolean().optional(),
    /** Canary split: version → percent of requests without an explicit version; the rest go to the default. {} clears it. */
    traffic: z.record(z.string().regex(/^[1-9]\d{0,8}$/), z.number().min(0).max(100)).optional(),
  })
  .strict();

export type ModelPatch = z.infer<typeof ModelPatchSchema>;

export interface VersionRecord extends ModelSignature {
  version: number;
  created_at: string;
  file: string;
  bytes: number;
  sha256: string;
  /** `operators` and `nodes`: as checkOnnxFile reads them (absent in records written before they were kept). */
  onnx: { ir_version: number; opsets: { domain: string; version: number }[]; producer: string; operators?: string[]; nodes?: number };
  /**
   * What validating the upload cost: peak memory above the validator's baseline while the session was
   * created (modelhosts refuse to load what exceeds their per-model limit, and make room for it before a
   * load), the memory the session held once created (`resident_bytes`: what a loaded model counts at
   * least; absent in records written before it was measured), and time.
   */
  validation?: { memory_bytes: number; resident_bytes?: number; ms: number };
  /** The STAC item (MLM extension) uploaded with this version; also in the version folder as stac-item.json. */
  stac?: StacItem;
  /** The reference profile live traffic is compared with (drift detection). */
  profile?: StoredProfile;
}

export interface ModelRecord {
  name: string;
  description: string;
  default_version: number;
  created_at: string;
  updated_at: string;
  config: ModelConfig;
  labels?: string[];
  /** Absent or true: served. false: unloaded everywhere (MODEL_NOT_READY) until loaded again. */
  enabled?: boolean;
  /** Canary split: version → percent of requests that name no version. */
  traffic?: Record<string, number>;
  /** A profile capture in progress: the workers gather statistics of this version's next live rows. */
  capture?: CaptureRequest;
  versions: VersionRecord[];
}

/** Parses client-supplied JSON against a schema, turning zod issues into one INVALID_REQUEST. */
export function parseWith<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const problems = r.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`);
  throw new InferrerError('INVALID_REQUEST', `${what} is invalid: ${problems.join('; ')}`, { problems });
}

/** A client's profile, checked (schema, ascending edges, counts per bin, unique names) and completed. */
export function parseProfile(value: unknown, defaults: { source: StoredProfile['source']; createdAt?: string }): StoredProfile {
  const p = parseWith(DriftProfileSchema, value, 'the drift profile');
  const problems: string[] = [];
  for (const [side, list] of [
    ['inputs', p.inputs],
    ['outputs', p.outputs ?? []],
  ] as const) {
    const seen = new Set<string>();
    list.forEach((f, i) => {
      const at = `${side}.${i} (${f.name})`;
      if (seen.has(f.name)) problems.push(`${at}: the name appears twice`);
      seen.add(f.name);
      if (f.counts.length !== f.edges.length - 1) problems.push(`${at}: ${f.edges.length} edges need ${f.edges.length - 1} counts, got ${f.counts.length}`);
      if (f.edges.some((e, j) => j > 0 && e < f.edges[j - 1]!)) problems.push(`${at}: bin edges must ascend`);
    });
  }
  if (problems.length) throw new InferrerError('INVALID_PROFILE', `the drift profile is invalid: ${problems.join('; ')}`, { problems });
  const total = (f: { counts: number[] }): number => f.counts.reduce((a, b) => a + b, 0);
  const fill = (f: z.infer<typeof FeatureProfileSchema>) => ({ ...f, count: f.count ?? total(f) });
  return {
    source: p.source ?? defaults.source,
    created_at: p.created_at ?? defaults.createdAt ?? new Date().toISOString(),
    samples: p.samples ?? Math.max(0, ...p.inputs.map(total)),
    inputs: p.inputs.map(fill),
    outputs: (p.outputs ?? []).map(fill),
  };
}
