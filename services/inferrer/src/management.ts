/** Model management over the store: list, describe, upload, update, delete. Knows no HTTP. */
import { z } from 'zod';
import { type ImagePipelineSpec, InferrerError, type ModelSignature, parseModelName } from '@inferrer/core';
import {
  type ModelConfig,
  type ModelPatch,
  type ModelRecord,
  type ModelStore,
  type StacItem,
  type StoredProfile,
  type CaptureRequest,
  type VersionRecord,
  type UploadMetadata,
  resolvePipeline,
  ModelPatchSchema,
  UploadMetadataSchema,
  parseWith,
} from '@inferrer/model-store';

const CanarySchema = z.object({ version: z.number().int().min(1), percent: z.number().min(0).max(100) }).strict();
const PromoteSchema = z.object({ version: z.number().int().min(1).optional() }).strict();

export interface ModelSummary {
  name: string;
  description: string;
  default_version: number;
  versions: number[];
}

export interface ModelDescription extends ModelSummary, ModelSignature {
  created_at: string;
  updated_at: string;
  config: ModelConfig;
  labels?: string[];
  enabled: boolean;
  traffic: Record<string, number>;
  /** Each version; a drift profile appears as its summary (source, created_at, samples, feature counts). */
  version_details: VersionDetails[];
  /** The default version's STAC item (MLM extension), when it was uploaded with one. */
  stac?: StacItem;
  /** How images are prepared and outputs read, from the STAC item or the graph (absent: no image input). */
  image_pipeline?: ImagePipelineSpec;
}

export class Management {
  readonly #store: ModelStore;
  /** Names no model may be uploaded under: literal route segments where a model name goes (reserve). */
  readonly #reserved = new Set<string>();

  constructor(store: ModelStore) {
    this.#store = store;
  }

  /**
   * Names no model may be uploaded under: `/api/v1/models/information` and `/v2/models/stats` are routes of
   * their own, so a model called `information` or `stats` could not be described there (the router's
   * table says which, app.ts).
   */
  reserve(names: Iterable<string>): void {
    for (const n of names) this.#reserved.add(n);
  }

  #checkNew(rawName: string): void {
    const name = parseModelName(rawName);
    if (this.#reserved.has(name))
      throw new InferrerError('INVALID_MODEL_NAME', `model name ${JSON.stringify(name)} is reserved: a route of its own has that path; choose another`, {
        got: name,
      });
  }

  async list(): Promise<string[]> {
    return (await this.#store.list()).map((r) => r.name);
  }

  async information(): Promise<ModelSummary[]> {
    return (await this.#store.list()).map(summary);
  }

  async describe(rawName: string): Promise<ModelDescription> {
    const rec = await this.#store.get(rawName);
    const current = rec.versions.find((v) => v.version === rec.default_version) ?? rec.versions[rec.versions.length - 1]!;
    return {
      ...summary(rec),
      created_at: rec.created_at,
      updated_at: rec.updated_at,
      inputs: current.inputs,
      outputs: current.outputs,
      config: rec.config,
      ...(rec.labels ? { labels: rec.labels } : {}),
      enabled: rec.enabled !== false,
      traffic: rec.traffic ?? {},
      version_details: rec.versions.map(withProfileSummary),
      ...(current.stac ? { stac: current.stac } : {}),
      ...imagePipeline(current, rec.labels),
    };
  }

  async update(rawName: string, patch: unknown): Promise<ModelDescription> {
    const p: ModelPatch = parseWith(ModelPatchSchema, patch, 'the model update');
    await this.#store.update(rawName, p);
    return this.describe(rawName);
  }

  /**
   * Loads (true) or unloads (false) a model on every worker: the store records it, the modelhosts follow
   * within their watch interval. Loading also preloads it, so every worker warms it up.
   */
  async setEnabled(rawName: string, enabled: boolean): Promise<void> {
    const rec = await this.#store.get(rawName);
    await this.#store.update(rec.name, { enabled, config: { preload: enabled } });
  }

  /**
   * Sends `percent` of the requests that name no version to `version` (a canary); the rest stay on the
   * default version. Every worker loads the canary beside the default before it takes traffic.
   */
  async canary(rawName: string, body: unknown): Promise<ModelDescription> {
    const b = parseWith(CanarySchema, body, 'the canary request');
    await this.#store.update(rawName, { traffic: b.percent > 0 ? { [String(b.version)]: b.percent } : {} });
    return this.describe(rawName);
  }

  /** Makes the canary (or the given version) the default and clears the split: one call, no downtime. */
  async promote(rawName: string, body: unknown): Promise<ModelDescription> {
    const b = parseWith(PromoteSchema, body ?? {}, 'the promote request');
    const rec = await this.#store.get(rawName);
    const version = b.version ?? Number(Object.keys(rec.traffic ?? {})[0]);
    if (!version) throw new InferrerError('INVALID_REQUEST', `model ${rec.name} has no canary to promote; send {"version": N}`);
    await this.#store.update(rec.name, { default_version: version, traffic: {} });
    return this.describe(rec.name);
  }

  /** Sends all traffic back to the default version. */
  async rollback(rawName: string): Promise<ModelDescription> {
    await this.#store.update(rawName, { traffic: {} });
    return this.describe(rawName);
  }

  /** Where an upload for `rawName` is written before `upload` publishes it (checks the name first). */
  async staging(rawName: string): Promise<string> {
    this.#checkNew(rawName);
    return this.#store.stagingDir();
  }

  async upload(rawName: string, file: string, metadata: unknown): Promise<{ created: boolean; model: ModelDescription; version: number }> {
    let meta: UploadMetadata;
    try {
      this.#checkNew(rawName);
      meta = metadata === undefined ? {} : parseWith(UploadMetadataSchema, metadata, 'the upload metadata');
    } catch (err) {
      await this.#store.discard(file);
      throw err;
    }
    const r = await this.#store.put(rawName, file, meta);
    return { created: r.created, model: await this.describe(r.record.name), version: r.version.version };
  }

  /** A version (the default when not given) with its record, for the drift routes. */
  async version(rawName: string, version?: number): Promise<{ record: ModelRecord; version: VersionRecord }> {
    const { record, version: v } = await this.#store.resolve(rawName, version);
    return { record, version: v };
  }

  /** The reference profile of a version (the default when not given). */
  async profile(rawName: string, version?: number): Promise<{ model: string; version: number; profile: StoredProfile }> {
    const { record, version: v } = await this.#store.resolve(rawName, version);
    if (!v.profile) {
      throw new InferrerError(
        'PROFILE_NOT_FOUND',
        `model ${record.name} version ${v.version} has no drift profile; PUT one (or sample rows) to /api/v1/models/${record.name}/versions/${v.version}/profile, or capture one`,
        { model: record.name, version: v.version },
      );
    }
    return { model: record.name, version: v.version, profile: v.profile };
  }

  /** Attaches (or replaces) a version's reference profile; ends a capture of that version. */
  async setProfile(rawName: string, version: number, profile: StoredProfile): Promise<{ model: string; version: number; profile: StoredProfile }> {
    const rec = await this.#store.get(rawName);
    await this.#store.setProfile(rec.name, version, profile);
    return { model: rec.name, version, profile };
  }

  /** Asks every worker to gather statistics of the next `samples` rows of a version (the default when not given). */
  async requestCapture(rawName: string, version: number | undefined, samples: number): Promise<{ model: string; capture: CaptureRequest }> {
    const { record, version: v } = await this.#store.resolve(rawName, version);
    return { model: record.name, capture: await this.#store.requestCapture(record.name, v.version, samples) };
  }

  /** Drops a staging folder (or a staged file's folder) that will not be uploaded: a failed upload or import. */
  async discard(file: string): Promise<void> {
    await this.#store.discard(file);
  }

  async remove(rawName: string): Promise<void> {
    await this.#store.remove(rawName);
  }
}

function imagePipeline(v: ModelRecord['versions'][number], labels: string[] | undefined): { image_pipeline?: ImagePipelineSpec } {
  try {
    const p = resolvePipeline({ inputs: v.inputs, outputs: v.outputs }, v.stac, labels);
    return p.image ? { image_pipeline: p } : {};
  } catch {
    return {};
  }
}

function summary(r: ModelRecord): ModelSummary {
  return { name: r.name, description: r.description, default_version: r.default_version, versions: r.versions.map((v) => v.version) };
}

/** Model descriptions carry a profile's summary, not its histograms (GET …/versions/{v}/profile has those). */
export type VersionDetails = Omit<VersionRecord, 'profile'> & {
  profile?: { source: string; created_at: string; samples: number; inputs: number; outputs: number };
};

function withProfileSummary(v: VersionRecord): VersionDetails {
  const { profile, ...rest } = v;
  if (!profile) return rest;
  return {
    ...rest,
    profile: {
      source: profile.source,
      created_at: profile.created_at,
      samples: profile.samples,
      inputs: profile.inputs.length,
      outputs: profile.outputs.length,
    },
  };
}
