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
  })
  .strict();

export const ModelConfigSchema = z
  .object({
    batching: BatchingConfigSchema.optional(),
    /** Execution slots (worker threads, a session each) per worker. */
    instances: z.number().int().min(1).max(64).optional(),
    /** Load at worker start instead of on first use. */
    preload: z.boolean().optional(),
    execution_providers: z.array(z.enum(['cpu', 'cuda'])).min(1).optional(),
    intra_op_threads: z.number().int().min(1).max(256).optional(),
    inter_op_threads: z.number().int().min(1).max(256).optional(),
    graph_optimization_level: z.enum(['disabled', 'basic', 'extended', 'all']).optional(),
  })
  .strict();

export type BatchingConfig = z.infer<typeof BatchingConfigSchema>;
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
  onnx: { ir_version: number; opsets: { domain: string; version: number }[]; producer: string };
  /** The STAC item (MLM extension) uploaded with this version; also in the version folder as stac-item.json. */
  stac?: StacItem;
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
  versions: VersionRecord[];
}

/** Parses client-supplied JSON against a schema, turning zod issues into one INVALID_REQUEST. */
export function parseWith<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const problems = r.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`);
  throw new InferrerError('INVALID_REQUEST', `${what} is invalid: ${problems.join('; ')}`, { problems });
}
