/** Model management over the store: list, describe, upload, update, delete. Knows no HTTP. */
import { type ModelSignature, parseModelName } from '@inferrer/core';
import {
  type ModelConfig,
  type ModelPatch,
  type ModelRecord,
  type ModelStore,
  type UploadMetadata,
  ModelPatchSchema,
  UploadMetadataSchema,
  parseWith,
} from '@inferrer/model-store';

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
  version_details: ModelRecord['versions'];
}

export class Management {
  readonly #store: ModelStore;

  constructor(store: ModelStore) {
    this.#store = store;
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
      version_details: rec.versions,
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

  /** Where an upload for `rawName` is written before `upload` publishes it (checks the name first). */
  async staging(rawName: string): Promise<string> {
    parseModelName(rawName);
    return this.#store.stagingDir();
  }

  async upload(rawName: string, file: string, metadata: unknown): Promise<{ created: boolean; model: ModelDescription; version: number }> {
    let meta: UploadMetadata;
    try {
      meta = metadata === undefined ? {} : parseWith(UploadMetadataSchema, metadata, 'the upload metadata');
    } catch (err) {
      await this.#store.discard(file);
      throw err;
    }
    const r = await this.#store.put(rawName, file, meta);
    return { created: r.created, model: await this.describe(r.record.name), version: r.version.version };
  }

  async remove(rawName: string): Promise<void> {
    await this.#store.remove(rawName);
  }
}

function summary(r: ModelRecord): ModelSummary {
  return { name: r.name, description: r.description, default_version: r.default_version, versions: r.versions.map((v) => v.version) };
}
