/**
 * Scrapes every discovered modelhost (its /metrics and /v1/models) on each tick and keeps the history the
 * per-model summary needs. A worker that stops answering is marked down (and dropped once it has been gone
 * from discovery for a whole window).
 */
import type { Logger } from '@inferrer/telemetry';
import { type LoadedModelInfo, type ModelStats, type WorkerState, SCRAPED_FAMILIES, record, summarize, toScrape } from '../cluster-stats.ts';
import { parsePromText } from '../prom-text.ts';

export interface ClusterCollectorOptions {
  discover: () => Promise<{ urls: string[]; errors: string[] }>;
  windowMs: number;
  timeoutMs: number;
  logger: Logger;
}

export interface WorkerView {
  id: string;
  url: string;
  up: boolean;
  error?: string;
  last_scrape: string | null;
  models: LoadedModelInfo[];
}

export class ClusterCollector {
  readonly #opts: ClusterCollectorOptions;
  readonly #workers = new Map<string, WorkerState & { seenAt: number }>();
  readonly #log: Logger;
  discoveryErrors: string[] = [];
  scrapeErrors = 0;
  scrapes = 0;

  constructor(opts: ClusterCollectorOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ module: 'cluster' });
  }

  async collect(now = Date.now()): Promise<void> {
    const { urls, errors } = await this.#opts.discover();
    if (errors.join() !== this.discoveryErrors.join() && errors.length) this.#log.warn('modelhost discovery failed', { errors });
    this.discoveryErrors = errors;
    for (const url of urls) {
      const w = this.#workers.get(url);
      if (w) w.seenAt = now;
      else this.#workers.set(url, { url, id: url.replace(/^https?:\/\//, ''), up: false, history: [], seenAt: now });
    }
    for (const [url, w] of this.#workers) if (!urls.includes(url) && now - w.seenAt > this.#opts.windowMs) this.#workers.delete(url);
    await Promise.all([...this.#workers.values()].filter((w) => urls.includes(w.url)).map((w) => this.#scrape(w, now)));
  }

  async #scrape(w: WorkerState, now: number): Promise<void> {
    this.scrapes++;
    try {
      const signal = AbortSignal.timeout(this.#opts.timeoutMs);
      const [metrics, models] = await Promise.all([
        fetch(`${w.url}/metrics`, { signal }).then(async (r) => (r.ok ? r.text() : Promise.reject(new Error(`/metrics answered ${r.status}`)))),
        fetch(`${w.url}/v1/models`, { signal }).then(async (r) =>
          r.ok ? ((await r.json()) as { modelhost?: string; models?: LoadedModelInfo[] }) : Promise.reject(new Error(`/v1/models answered ${r.status}`)),
        ),
      ]);
      if (typeof models.modelhost === 'string') w.id = models.modelhost;
      const loaded = (models.models ?? []).map((m) => ({
        name: String(m.name),
        version: Number(m.version),
        state: String(m.state),
        queue_depth: Number(m.queue_depth) || 0,
      }));
      record(
        w,
        toScrape(
          now,
          parsePromText(metrics, (name) => SCRAPED_FAMILIES.has(name)),
          loaded,
        ),
        this.#opts.windowMs,
      );
      if (!w.up) this.#log.info('modelhost up', { modelhost: w.id, url: w.url });
      w.up = true;
      delete w.error;
      w.lastScrape = now;
    } catch (err) {
      this.scrapeErrors++;
      const message = (err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message;
      if (w.up || w.lastScrape === undefined)
        this.#log.warn('modelhost scrape failed', { modelhost: w.id, url: w.url, err: { type: (err as Error).name, message } });
      w.up = false;
      w.error = message;
      // Keep the counters: when the worker comes back (reset or not), increases stay right.
      if (w.lastScrape === undefined) w.lastScrape = 0;
    }
  }

  workers(): WorkerView[] {
    return [...this.#workers.values()]
      .sort((a, b) => a.id.localeCompare(b.id))
      .map((w) => ({
        id: w.id,
        url: w.url,
        up: w.up,
        ...(w.error ? { error: w.error } : {}),
        last_scrape: w.lastScrape ? new Date(w.lastScrape).toISOString() : null,
        models: w.up ? (w.history.at(-1)?.models ?? []) : [],
      }));
  }

  models(): ModelStats[] {
    return summarize([...this.#workers.values()]);
  }
}
