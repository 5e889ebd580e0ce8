/**
 * The Open Inference Protocol's non-infer calls, transport-neutral: server and model metadata, readiness,
 * model configuration, statistics and the model repository. The HTTP routes (routes.ts) and the gRPC
 * service (grpc/) both answer from here, so the two doors always agree.
 *
 * Statistics are counted by each modelhost (GET /v1/stats) and summed over every worker by the metrics
 * service, which knows them all (the Inferrer sees the workers only through the load balancer, which picks
 * one); this asks the metrics service for the sum, fresh, at the time of the call.
 */
import { InferrerError, type VersionStats, emptyStats, parseVersion, v2TensorMetadata } from '@inferrer/core';
import type { InferrerConfig } from '../../config.ts';
import type { DataPlane } from '../../dataplane.ts';
import type { Management, ModelDescription } from '../../management.ts';
import type { MetricsClient } from '../../metrics-client.ts';
import { type ModelConfig, type ModelSettings, PLATFORM, modelConfig } from './model-config.ts';

export const SERVER_NAME = 'inferrer';
export const SERVER_VERSION = '0.1.0';
/** Every extension advertised in GET /v2 (and gRPC ServerMetadata); the README's OIP section lists the same. */
export const V2_EXTENSIONS = ['binary_tensor_data', 'model_repository', 'model_repository(unload_dependents)', 'model_configuration', 'statistics', 'classification'];

export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: { name: string; datatype: string; shape: number[] }[];
  outputs: { name: string; datatype: string; shape: number[] }[];
  parameters: { default_version: string; description: string };
  stac?: unknown;
}

export interface OipDeps {
  config: InferrerConfig;
  management: Management;
  dataplane: DataPlane;
  metrics: MetricsClient;
  ready: () => Promise<boolean>;
}

export class OipService {
  readonly #deps: OipDeps;

  constructor(deps: OipDeps) {
    this.#deps = deps;
  }

  serverMetadata(): { name: string; version: string; extensions: string[] } {
    return { name: SERVER_NAME, version: SERVER_VERSION, extensions: [...V2_EXTENSIONS] };
  }

  serverReady(): Promise<boolean> {
    return this.#deps.ready();
  }

  async modelMetadata(name: string, rawVersion: string | undefined): Promise<ModelMetadata> {
    const { model: m, version } = await this.#version(name, rawVersion);
    const v = m.version_details.find((x) => x.version === version)!;
    return {
      name: m.name,
      versions: m.versions.map(String),
      platform: PLATFORM,
      inputs: v.inputs.map(v2TensorMetadata),
      outputs: v.outputs.map(v2TensorMetadata),
      parameters: { default_version: String(m.default_version), description: m.description },
      ...(v.stac ? { stac: v.stac } : {}),
    };
  }

  async modelReady(name: string, rawVersion: string | undefined): Promise<{ name: string; version: string; ready: boolean }> {
    const { model: m, version } = await this.#version(name, rawVersion);
    const ready = m.enabled !== false && (await this.#deps.ready());
    return { name: m.name, version: String(version), ready };
  }

  async modelConfig(name: string, rawVersion: string | undefined): Promise<ModelConfig> {
    const { model: m, version } = await this.#version(name, rawVersion);
    const v = m.version_details.find((x) => x.version === version)!;
    const settings = await this.#deps.dataplane.modelSettings<ModelSettings>(m.name);
    return modelConfig(m.name, { inputs: v.inputs, outputs: v.outputs }, settings, { requestTimeoutMs: this.#deps.config.requestTimeoutMs });
  }

  /** Statistics of every version of every model, of one model, or of one version, summed over every worker. */
  async modelStats(name: string | undefined, rawVersion: string | undefined): Promise<{ model_stats: VersionStats[] }> {
    const wanted: { name: string; versions: number[] }[] = [];
    if (name === undefined) {
      for (const s of await this.#deps.management.information()) wanted.push({ name: s.name, versions: s.versions });
    } else if (rawVersion === undefined || rawVersion === '') {
      const m = await this.#deps.management.describe(name);
      wanted.push({ name: m.name, versions: m.versions });
    } else {
      const { model, version } = await this.#version(name, rawVersion);
      wanted.push({ name: model.name, versions: [version] });
    }
    const counted = new Map((await this.#deps.metrics.inferenceStats()).models.map((s) => [`${s.name}@${s.version}`, s]));
    return { model_stats: wanted.flatMap((m) => m.versions.map((v) => counted.get(`${m.name}@${v}`) ?? emptyStats(m.name, String(v)))) };
  }

  /** A model and one of its versions (the default when none is named; '' counts as none, as in gRPC). */
  async #version(name: string, rawVersion: string | undefined): Promise<{ model: ModelDescription; version: number }> {
    const m = await this.#deps.management.describe(name);
    const version = rawVersion === undefined || rawVersion === '' ? m.default_version : parseVersion(rawVersion);
    if (!m.versions.includes(version)) throw new InferrerError('VERSION_NOT_FOUND', `model ${m.name} version ${version} not found`, { model: m.name, version });
    return { model: m, version };
  }
}
