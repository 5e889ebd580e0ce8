/**
 * Questions asked of every modelhost at the moment they are asked, not from the last scrape: the Inferrer
 * knows the workers only through the load balancer (which picks one), so it asks this service, which knows
 * them all (discovery.ts).
 *
 *   inferenceStats()   every worker's GET /v1/stats, summed per model version (the statistics extension
 *                      counts exactly: a client reads them before and after a measurement and subtracts)
 *   loadedOn(name)     every worker's GET /v1/models, kept to the versions of one model: where it is loaded
 *                      now, in what state, and what it costs there
 *   warm(name, v)      every worker's POST /v1/models/{name}/versions/{v}/warm: each starts loading the
 *                      version if it has not yet and says its state; ready when every reachable worker
 *                      has it READY (a worker that does not answer is not served by the balancer either)
 */
import { type VersionStats, sumStats } from '@inferrer/core';

export interface WorkerAnswer {
  url: string;
  modelhost?: string;
  up: boolean;
  error?: string;
}

export interface WarmState extends WorkerAnswer {
  state?: string;
  reason?: string;
}

/** A model version loaded on one worker. */
export interface LoadedVersion {
  modelhost: string;
  version: number;
  state: string;
  /** What it counts against that worker's memory budget. */
  resident_bytes: number;
  /** Since its last request. */
  idle_seconds: number;
  pinned?: true;
}

export interface FanoutOptions {
  discover: () => Promise<{ urls: string[]; errors: string[] }>;
  timeoutMs: number;
}

export class Fanout {
  readonly #opts: FanoutOptions;

  constructor(opts: FanoutOptions) {
    this.#opts = opts;
  }

  async inferenceStats(): Promise<{ modelhosts: WorkerAnswer[]; models: VersionStats[] }> {
    const answers = await this.#each<{ modelhost?: string; models?: VersionStats[] }>((url) =>
      fetch(`${url}/v1/stats`, { signal: AbortSignal.timeout(this.#opts.timeoutMs) }),
    );
    return {
      modelhosts: answers.map(({ body, ...w }) => ({ ...w, ...(typeof body?.modelhost === 'string' ? { modelhost: body.modelhost } : {}) })),
      models: sumStats(answers.map((a) => (Array.isArray(a.body?.models) ? a.body.models : []))),
    };
  }

  async loadedOn(name: string): Promise<{ modelhosts: WorkerAnswer[]; loaded_on: LoadedVersion[] }> {
    const answers = await this.#each<{
      modelhost?: string;
      models?: { name?: unknown; version?: unknown; state?: unknown; resident_bytes?: unknown; idle_seconds?: unknown; pinned?: unknown }[];
    }>((url) => fetch(`${url}/v1/models`, { signal: AbortSignal.timeout(this.#opts.timeoutMs) }));
    const loaded: LoadedVersion[] = [];
    for (const a of answers) {
      const modelhost = typeof a.body?.modelhost === 'string' ? a.body.modelhost : a.url;
      for (const m of Array.isArray(a.body?.models) ? a.body.models : []) {
        if (m.name !== name) continue;
        loaded.push({
          modelhost,
          version: Number(m.version),
          state: String(m.state),
          resident_bytes: Number(m.resident_bytes) || 0,
          idle_seconds: Number(m.idle_seconds) || 0,
          ...(m.pinned === true ? { pinned: true } : {}),
        });
      }
    }
    loaded.sort((x, y) => x.modelhost.localeCompare(y.modelhost) || x.version - y.version);
    return {
      modelhosts: answers.map(({ body, ...w }) => ({ ...w, ...(typeof body?.modelhost === 'string' ? { modelhost: body.modelhost } : {}) })),
      loaded_on: loaded,
    };
  }

  async warm(name: string, version: number): Promise<{ ready: boolean; modelhosts: WarmState[] }> {
    const path = `/v1/models/${encodeURIComponent(name)}/versions/${version}/warm`;
    const answers = await this.#each<{ modelhost?: string; state?: string; reason?: string; error?: { message?: string } }>((url) =>
      fetch(`${url}${path}`, { method: 'POST', signal: AbortSignal.timeout(this.#opts.timeoutMs) }),
    );
    const modelhosts = answers.map(
      ({ body, ...w }): WarmState => ({
        ...w,
        ...(typeof body?.modelhost === 'string' ? { modelhost: body.modelhost } : {}),
        ...(typeof body?.state === 'string' ? { state: body.state } : {}),
        ...(typeof body?.reason === 'string' && body.reason ? { reason: body.reason } : {}),
      }),
    );
    const up = modelhosts.filter((w) => w.up);
    return { ready: up.length > 0 && up.every((w) => w.state === 'READY'), modelhosts };
  }

  /** Every discovered worker's JSON answer; a worker that fails or answers 5xx is down, a 4xx answer is kept. */
  async #each<T>(ask: (url: string) => Promise<Response>): Promise<(WorkerAnswer & { body?: T })[]> {
    const { urls } = await this.#opts.discover();
    return Promise.all(
      urls.map(async (url) => {
        try {
          const res = await ask(url);
          const body = (await res.json().catch(() => undefined)) as T | undefined;
          if (res.status >= 500) return { url, up: false, error: `answered ${res.status}` };
          if (res.status >= 300) return { url, up: true, error: `answered ${res.status}`, ...(body ? { body } : {}) };
          return { url, up: true, ...(body ? { body } : {}) };
        } catch (err) {
          const cause = (err as Error).cause;
          return { url, up: false, error: cause instanceof Error ? cause.message : (err as Error).message };
        }
      }),
    );
  }
}
