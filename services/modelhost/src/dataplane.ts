/**
 * The modelhost dataplane: lookup → ready/deadline → decode → infer (batched) → encode. Knows no HTTP;
 * protocol adapters hand it parsed bodies and take back JSON text.
 */
import { InferrerError, type ModelSignature, decodeV1Request, encodeV1Response, parseModelName } from '@inferrer/core';
import type { InferResult } from '@inferrer/runtime';
import type { ModelhostMetrics } from './metrics.ts';
import type { LoadedModel, ModelRegistry } from './registry.ts';

export interface V1PredictOptions {
  version?: number;
  /** Output to answer with as `values`. */
  output?: string;
  /** Also answer every output under `outputs`. */
  all?: boolean;
  deadline: number;
}

export interface Answer {
  body: string;
  model: string;
  version: number;
  batchRequests: number;
  batchRows: number;
  queueMs: number;
  computeMs: number;
}

export class DataPlane {
  readonly #registry: ModelRegistry;
  readonly #metrics: ModelhostMetrics;

  constructor(registry: ModelRegistry, metrics: ModelhostMetrics) {
    this.#registry = registry;
    this.#metrics = metrics;
  }

  async predictV1(rawName: string, body: unknown, opts: V1PredictOptions): Promise<Answer> {
    const name = parseModelName(rawName);
    const started = performance.now();
    let labels: { model: string; version: string } | undefined;
    try {
      const { model, result } = await this.#infer(name, opts.version, opts.deadline, (sig) => decodeV1Request(body, sig), (m) => {
        labels = { model: m.name, version: String(m.version) };
      });
      const text = encodeV1Response(result.outputs, model.signature.outputs.map((o) => o.name), {
        model: model.name,
        version: model.version,
        ...(opts.output ? { output: opts.output } : {}),
        all: opts.all ?? false,
      });
      this.#metrics.requests.inc({ ...labels!, code: 'OK' });
      this.#metrics.requestDuration.observe(labels!, (performance.now() - started) / 1000);
      return { body: text, model: model.name, version: model.version, batchRequests: result.batchRequests, batchRows: result.batchRows, queueMs: result.queueMs, computeMs: result.computeMs };
    } catch (err) {
      const code = (err as InferrerError).code ?? 'INTERNAL';
      this.#metrics.requests.inc({ model: labels?.model ?? '', version: labels?.version ?? '', code });
      throw err;
    }
  }

  /** Metadata of a model version as this worker sees it (loads it if needed). */
  async metadata(rawName: string, version?: number): Promise<{ name: string; version: number; signature: ModelSignature; state: string }> {
    const m = await this.#registry.get(parseModelName(rawName), version);
    return { name: m.name, version: m.version, signature: m.signature, state: m.state };
  }

  async #infer(
    name: string,
    version: number | undefined,
    deadline: number,
    decode: (sig: ModelSignature) => { inputs: InferResult['outputs']; rows: number },
    seen: (m: LoadedModel) => void,
  ): Promise<{ model: LoadedModel; result: InferResult }> {
    // A model being swapped out can refuse a request between lookup and enqueue; look it up once more.
    for (let attempt = 0; ; attempt++) {
      const model = await this.#registry.get(name, version);
      seen(model);
      if (performance.now() >= deadline) throw new InferrerError('DEADLINE_EXCEEDED', 'the request passed its deadline before it could run', { model: name });
      const { inputs, rows } = decode(model.signature);
      try {
        return { model, result: await model.batcher.infer(inputs, rows, deadline) };
      } catch (err) {
        if ((err as InferrerError).code === 'MODEL_NOT_READY' && attempt === 0) continue;
        throw err;
      }
    }
  }
}
