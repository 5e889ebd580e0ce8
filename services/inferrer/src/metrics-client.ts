/**
 * The Inferrer's client of the metrics service: the cluster-wide per-model summary, drift scores and
 * profile captures. Any failure (not configured, unreachable, non-2xx, slow) is METRICS_UNAVAILABLE.
 */
import { request } from 'undici';
import { InferrerError, type VersionStats } from '@inferrer/core';

export interface CaptureView {
  requested_at: string;
  modelhost: string;
  rows: number;
}

/** A model version loaded on one worker (the metrics service's answer). */
export interface LoadedVersion {
  modelhost: string;
  version: number;
  state: string;
  resident_bytes: number;
  idle_seconds: number;
  pinned?: true;
}

export class MetricsClient {
  readonly #url: string | undefined;
  readonly #timeoutMs: number;

  constructor(url: string | undefined, timeoutMs = 5000) {
    this.#url = url;
    this.#timeoutMs = timeoutMs;
  }

  get configured(): boolean {
    return this.#url !== undefined;
  }

  /** Per-model summary across the cluster (GET /api/v1/metrics). */
  stats(): Promise<unknown> {
    return this.#get('/api/v1/stats', '');
  }

  /** Drift scores of one model, per version and feature. */
  drift(model: string): Promise<{ models: unknown[] }> {
    return this.#get(`/api/v1/drift?model=${encodeURIComponent(model)}`, '; drift scores and captures come from it');
  }

  /** What every worker has gathered for a model version's profile capture. */
  captures<C extends CaptureView>(model: string, version: number): Promise<{ captures: C[] }> {
    return this.#get(`/api/v1/drift/captures?model=${encodeURIComponent(model)}&version=${version}`, '; drift scores and captures come from it');
  }

  /** Every modelhost's inference statistics, asked now and summed per model version (the statistics extension). */
  inferenceStats(): Promise<{ models: VersionStats[] }> {
    return this.#get('/api/v1/inference-stats', '; statistics are summed over the workers by it');
  }

  /** Where a model is loaded now: every modelhost asked. */
  loadedOn(model: string): Promise<{ loaded_on: LoadedVersion[] }> {
    return this.#get(`/api/v1/models/${encodeURIComponent(model)}/loaded-on`, '; where models are loaded is asked through it');
  }

  /** Asks every modelhost to load and warm a version; ready when every worker that answers has it. */
  warm(model: string, version: number): Promise<{ ready: boolean; modelhosts: { modelhost?: string; up: boolean; state?: string; reason?: string }[] }> {
    return this.#get(`/api/v1/models/${encodeURIComponent(model)}/versions/${version}/warm`, '; readiness on every worker is asked through it', 'POST');
  }

  async #get<T>(path: string, why: string, method: 'GET' | 'POST' = 'GET'): Promise<T> {
    if (!this.#url) throw new InferrerError('METRICS_UNAVAILABLE', `no metrics service is configured (set METRICS_URL)${why}`);
    try {
      const res = await request(`${this.#url}${path}`, { method, headersTimeout: this.#timeoutMs, bodyTimeout: this.#timeoutMs });
      if (res.statusCode >= 300) {
        await res.body.dump();
        throw new Error(`answered ${res.statusCode}`);
      }
      return (await res.body.json()) as T;
    } catch (err) {
      // Its address stays in the log (the cause): an answer names no internal host or port.
      const why = (err as { code?: string }).code ?? (err as Error).message;
      throw new InferrerError('METRICS_UNAVAILABLE', `the metrics service did not answer (${why})`, {}, { retryAfter: 5, cause: err });
    }
  }
}
