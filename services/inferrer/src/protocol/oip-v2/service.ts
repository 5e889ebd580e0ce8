/**
 * The Open Inference Protocol's non-infer calls, transport-neutral: server and model metadata, readiness,
 * model configuration, statistics and the model repository. The HTTP routes (routes.ts) and the gRPC
 * service (grpc/) both answer from here, so the two doors always agree.
 *
 * Statistics are counted by each modelhost (GET /v1/stats) and summed over every worker by the metrics
 * service, which knows them all (the Inferrer sees the workers only through the load balancer, which picks
 * one); this asks the metrics service for the sum, fresh, at the time of the call.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { InferrerError, type VersionStats, emptyStats, parseModelName, parseVersion, storageError, v2TensorMetadata, withBatchAxis } from '@inferrer/core';
import type { InferrerConfig } from '../../config.ts';
import type { DataPlane } from '../../dataplane.ts';
import type { Management, ModelDescription } from '../../management.ts';
import type { MetricsClient } from '../../metrics-client.ts';
import { type ModelConfig, type ModelSettings, PLATFORM, configPatch, modelConfig } from './model-config.ts';

export const SERVER_NAME = 'inferrer';
export const SERVER_VERSION = '0.1.0';
/** Every extension advertised in GET /v2 (and gRPC ServerMetadata); the README's OIP section lists the same. */
export const V2_EXTENSIONS = [
  'binary_tensor_data',
  'model_repository',
  'model_repository(unload_dependents)',
  'model_configuration',
  'statistics',
  'classification',
  'schedule_policy',
];

export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: { name: string; datatype: string; shape: number[] }[];
  outputs: { name: string; datatype: string; shape: number[] }[];
  parameters: { default_version: string; description: string };
  stac?: unknown;
}

/** A repository load's parameters: Triton's `config` (JSON text) and `file:<path>` contents. */
export interface LoadRequest {
  config?: string;
  files?: { path: string; bytes: Buffer }[];
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

  /**
   * Ready: every worker that will serve the version has it loaded and warm. Every worker is asked (through
   * the metrics service) and loads it if it has not, so asking is also what makes it ready; a worker that
   * does not answer is not served by the balancer either. Without a metrics service only the balancer's
   * readiness can be seen.
   */
  async modelReady(name: string, rawVersion: string | undefined): Promise<{ name: string; version: string; ready: boolean }> {
    const { model: m, version } = await this.#version(name, rawVersion);
    const at = { name: m.name, version: String(version) };
    if (m.enabled === false || !(await this.#deps.ready())) return { ...at, ready: false };
    if (!this.#deps.metrics.configured) return { ...at, ready: true };
    try {
      return { ...at, ready: (await this.#deps.metrics.warm(m.name, version)).ready };
    } catch {
      return { ...at, ready: false };
    }
  }

  async modelConfig(name: string, rawVersion: string | undefined): Promise<ModelConfig> {
    const { model: m, version } = await this.#version(name, rawVersion);
    const v = m.version_details.find((x) => x.version === version)!;
    const settings = await this.#deps.dataplane.modelSettings<ModelSettings>(m.name);
    const sig = withBatchAxis({ inputs: v.inputs, outputs: v.outputs }, m.config.batching?.batch_axis);
    return modelConfig(m.name, sig, settings, { requestTimeoutMs: this.#deps.config.requestTimeoutMs });
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

  /** Every model with its default version and state (repository index). */
  async index(): Promise<{ name: string; version: string; state: string; reason: string }[]> {
    const rows = [];
    for (const s of await this.#deps.management.information()) {
      const d = await this.#deps.management.describe(s.name);
      rows.push({
        name: s.name,
        version: String(s.default_version),
        state: d.enabled === false ? 'UNAVAILABLE' : 'READY',
        reason: d.enabled === false ? 'unloaded' : '',
      });
    }
    return rows;
  }

  /**
   * Loads a model on every worker (each loads and warms it; the store records it, the workers follow).
   * With a file (`file:<version>/<name>.onnx`, Triton's way to upload through the repository extension)
   * the file is validated and stored as a PUT upload stores it: it becomes the model's next version (the
   * version folder of the path is not kept). With `config` (a Triton model configuration) the batching,
   * instances and response cache switch it names are stored (model-config.ts configPatch).
   */
  async load(name: string, req: LoadRequest = {}): Promise<{ version?: number }> {
    const model = parseModelName(name);
    const patch = req.config === undefined ? {} : configPatch(req.config, model);
    const files = req.files ?? [];
    if (files.length > 1)
      throw new InferrerError('INVALID_REQUEST', `a load carries one ONNX file; got ${files.length} (${files.map((f) => f.path.slice(0, 64)).join(', ')})`, {
        got: files.length,
      });
    const config = { ...patch, preload: true };
    if (files.length === 0) {
      const m = await this.#deps.management.describe(model);
      await this.#deps.management.update(m.name, { enabled: true, config: { ...config, batching: { ...m.config.batching, ...patch.batching } } });
      return {};
    }
    const file = files[0]!;
    if (!/^([1-9]\d{0,8}\/)?[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.onnx$/.test(file.path)) {
      throw new InferrerError('INVALID_REQUEST', `parameter "file:${file.path.slice(0, 128)}" must name an ONNX file as "file:<version>/model.onnx"`, {
        parameter: `file:${file.path.slice(0, 128)}`,
      });
    }
    if (file.bytes.length === 0) throw new InferrerError('INVALID_MODEL', 'the uploaded file is empty');
    if (file.bytes.length > this.#deps.config.maxModelBytes) {
      throw new InferrerError('MODEL_TOO_LARGE', `the model is larger than the limit of ${this.#deps.config.maxModelBytes} bytes (MAX_MODEL_BYTES)`, {
        limit: this.#deps.config.maxModelBytes,
      });
    }
    const before = await this.#deps.management.describe(model).catch(() => undefined);
    const staging = await this.#deps.management.staging(model);
    const staged = path.join(staging, 'model.onnx');
    try {
      await writeFile(staged, file.bytes);
    } catch (err) {
      await this.#deps.management.discard(staged);
      throw storageError(err);
    }
    const merged = before ? { ...config, batching: { ...before.config.batching, ...patch.batching } } : config;
    const r = await this.#deps.management.upload(model, staged, { config: merged });
    if (r.model.enabled === false) await this.#deps.management.setEnabled(model, true);
    return { version: r.version };
  }

  /** Unloads a model from every worker (infer answers 503 until it is loaded again). */
  async unload(name: string): Promise<void> {
    await this.#deps.management.setEnabled(name, false);
  }

  /** A model and one of its versions (the default when none is named; '' counts as none, as in gRPC). */
  async #version(name: string, rawVersion: string | undefined): Promise<{ model: ModelDescription; version: number }> {
    const m = await this.#deps.management.describe(name);
    const version = rawVersion === undefined || rawVersion === '' ? m.default_version : parseVersion(rawVersion);
    if (!m.versions.includes(version)) throw new InferrerError('VERSION_NOT_FOUND', `model ${m.name} version ${version} not found`, { model: m.name, version });
    return { model: m, version };
  }
}
