/**
 * A short history of the per-model summary, one point per scrape, kept in memory for HISTORY_S seconds
 * (bounded: at most MAX_POINTS points, and only the figures the status page draws). The status page reads
 * it at load so its charts start with the last minutes, not empty; GET /api/v1/history serves it in
 * columns (one array per figure, aligned with `time`), the shape chart libraries take.
 */
import type { ModelStats } from './cluster-stats.ts';

/** The figures kept per model and point. */
export const MODEL_FIGURES = [
  'requests_per_second',
  'client_errors_per_second',
  'errors_per_second',
  'latency_p50_seconds',
  'latency_p95_seconds',
  'latency_p99_seconds',
  'queue_depth',
  'batch_size_mean',
] as const;
export type ModelFigure = (typeof MODEL_FIGURES)[number];

/** A hard bound whatever HISTORY_S and SCRAPE_INTERVAL_MS say (an hour at one scrape a second). */
export const MAX_POINTS = 3600;

interface Point {
  /** ms since the epoch. */
  t: number;
  models: Map<string, (number | null)[]>;
  cpu: number | null;
}

export interface HistoryAnswer {
  history_seconds: number;
  scrape_interval_seconds: number;
  /** Seconds since the epoch of each point, oldest first. */
  time: number[];
  /** Per model, per figure: one value per point (null where the model was not in the summary). */
  models: Record<string, Record<ModelFigure, (number | null)[]>>;
  host: { cpu_usage_ratio: (number | null)[] };
}

function figures(m: ModelStats): (number | null)[] {
  return [
    m.requests_per_second,
    m.client_errors_per_second,
    m.errors_per_second,
    m.latency_seconds.p50,
    m.latency_seconds.p95,
    m.latency_seconds.p99,
    m.queue_depth,
    m.batch_size_mean,
  ];
}

export class StatsHistory {
  readonly #points: Point[] = [];
  readonly #keepMs: number;
  readonly #intervalMs: number;
  readonly #max: number;

  constructor(opts: { historyS: number; scrapeIntervalMs: number; maxPoints?: number }) {
    this.#keepMs = opts.historyS * 1000;
    this.#intervalMs = opts.scrapeIntervalMs;
    this.#max = opts.maxPoints ?? MAX_POINTS;
  }

  /** Adds the summary of one scrape and forgets points older than the history. */
  record(t: number, models: ModelStats[], cpu: number | null): void {
    if (this.#keepMs <= 0) return;
    const last = this.#points.at(-1);
    if (last && t <= last.t) return;
    this.#points.push({ t, models: new Map(models.map((m) => [m.model, figures(m)])), cpu });
    let drop = 0;
    while (drop < this.#points.length - 1 && (this.#points[drop]!.t < t - this.#keepMs || this.#points.length - drop > this.#max)) drop++;
    if (drop > 0) this.#points.splice(0, drop);
  }

  get size(): number {
    return this.#points.length;
  }

  /** The points after `sinceMs` (all of them without it), in columns. */
  columns(sinceMs?: number): HistoryAnswer {
    const points = sinceMs === undefined ? this.#points : this.#points.filter((p) => p.t > sinceMs);
    const names = new Set<string>();
    for (const p of points) for (const name of p.models.keys()) names.add(name);
    const models: HistoryAnswer['models'] = {};
    for (const name of [...names].sort()) {
      const cols = Object.fromEntries(MODEL_FIGURES.map((f) => [f, [] as (number | null)[]])) as Record<ModelFigure, (number | null)[]>;
      for (const p of points) {
        const v = p.models.get(name);
        MODEL_FIGURES.forEach((f, i) => cols[f].push(v ? v[i]! : null));
      }
      models[name] = cols;
    }
    return {
      history_seconds: this.#keepMs / 1000,
      scrape_interval_seconds: this.#intervalMs / 1000,
      time: points.map((p) => p.t / 1000),
      models,
      host: { cpu_usage_ratio: points.map((p) => p.cpu) },
    };
  }
}
