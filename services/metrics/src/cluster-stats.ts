/**
 * The per-model summary across the whole cluster, computed from successive scrapes of every modelhost:
 * increases of counters over a window (a worker restart resets its counters; that is handled as
 * Prometheus' increase() does), rates, error ratio, latency quantiles from summed histogram buckets,
 * mean batch size, queue depth now, and which workers have the model loaded. Pure: no I/O here.
 *
 * A model is in the summary while the cluster still has it: loaded on a worker that answers, or with series
 * in a worker's latest scrape. The modelhosts remove a deleted (or unloaded) model's series, so the model
 * leaves the summary, and this service's /metrics, at the next scrape.
 */
import { InferrerError, isErrorCode, statusOf } from '@inferrer/core';
import type { Sample } from './prom-text.ts';

/** The modelhost metric families the summary reads. */
export const SCRAPED_FAMILIES = new Set([
  'modelhost_requests_total',
  'modelhost_errors_total',
  'modelhost_timeouts_total',
  'modelhost_request_duration_seconds_bucket',
  'modelhost_request_duration_seconds_sum',
  'modelhost_request_duration_seconds_count',
  'modelhost_batch_size_sum',
  'modelhost_batch_size_count',
]);

export interface LoadedModelInfo {
  name: string;
  version: number;
  state: string;
  queue_depth: number;
}

/** One scrape of one modelhost. */
export interface WorkerScrape {
  /** ms since the epoch. */
  time: number;
  /** series key → value, only SCRAPED_FAMILIES. */
  series: Map<string, number>;
  models: LoadedModelInfo[];
}

export interface WorkerState {
  url: string;
  id: string;
  up: boolean;
  error?: string;
  lastScrape?: number;
  history: WorkerScrape[];
}

export interface ModelStats {
  model: string;
  versions: number[];
  requests_per_second: number;
  /** Requests counted in the window (all result codes). */
  requests: number;
  /** Server-side failures (5xx) per second. */
  errors_per_second: number;
  /** Server-side failures (5xx) over all requests, 0…1; null without traffic. */
  error_rate: number | null;
  /** Requests refused as the client's fault (4xx: bad input, unknown version, …) per second. */
  client_errors_per_second: number;
  /** Client errors (4xx) over all requests, 0…1; null without traffic. */
  client_error_rate: number | null;
  timeouts_per_second: number;
  latency_seconds: { p50: number | null; p95: number | null; p99: number | null; mean: number | null };
  batch_size_mean: number | null;
  queue_depth: number;
  /** Workers with a version of the model loaded (any state), by modelhost id. */
  workers: string[];
}

export function seriesKey(name: string, labels: Record<string, string>): string {
  const keys = Object.keys(labels)
    .filter((k) => k !== 'service')
    .sort();
  return `${name}{${keys.map((k) => `${k}=${JSON.stringify(labels[k])}`).join(',')}}`;
}

export function parseSeriesKey(key: string): { name: string; labels: Record<string, string> } {
  const i = key.indexOf('{');
  const labels: Record<string, string> = {};
  for (const m of key.slice(i + 1, -1).matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*")/g)) labels[m[1]!] = JSON.parse(m[2]!) as string;
  return { name: key.slice(0, i), labels };
}

export function toScrape(time: number, samples: Sample[], models: LoadedModelInfo[]): WorkerScrape {
  const series = new Map<string, number>();
  for (const s of samples) if (SCRAPED_FAMILIES.has(s.name)) series.set(seriesKey(s.name, s.labels), s.value);
  return { time, series, models };
}

/** Adds a scrape and forgets those no longer needed for a window of `windowMs` (one older is kept as the baseline). */
export function record(w: WorkerState, scrape: WorkerScrape, windowMs: number): void {
  w.history.push(scrape);
  const from = scrape.time - windowMs;
  while (w.history.length > 2 && w.history[1]!.time <= from) w.history.shift();
}

/** Increase of every series over the history, counter resets included; and the time it spans. */
export function increases(history: WorkerScrape[]): { span: number; inc: Map<string, number> } {
  const inc = new Map<string, number>();
  for (let i = 1; i < history.length; i++) {
    const prev = history[i - 1]!.series;
    for (const [k, v] of history[i]!.series) {
      const p = prev.get(k);
      // A new series started at zero after the previous scrape; a smaller value is a restart (reset).
      const d = p === undefined || v < p ? v : v - p;
      if (d > 0) inc.set(k, (inc.get(k) ?? 0) + d);
    }
  }
  const span = history.length > 1 ? (history.at(-1)!.time - history[0]!.time) / 1000 : 0;
  return { span, inc };
}

const clientCodes = new Map<string, boolean>();
/** Whether a modelhost result code (`OK` or an error code) is a 4xx answer. */
export function isClientError(code: string): boolean {
  let v = clientCodes.get(code);
  if (v === undefined) {
    const status = isErrorCode(code) ? statusOf(new InferrerError(code, '')) : 0;
    v = status >= 400 && status < 500;
    if (clientCodes.size < 1000) clientCodes.set(code, v);
  }
  return v;
}

/** histogram_quantile as Prometheus computes it: linear inside the bucket; the top finite bound for +Inf. */
export function histogramQuantile(q: number, buckets: { le: number; count: number }[]): number | null {
  const sorted = [...buckets].sort((a, b) => a.le - b.le);
  const total = sorted.at(-1)?.count ?? 0;
  if (sorted.length < 2 || total <= 0) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of sorted) {
    if (b.count >= rank) {
      if (b.le === Infinity) return prevLe;
      if (b.count === prevCount) return b.le;
      return prevLe + ((b.le - prevLe) * (rank - prevCount)) / (b.count - prevCount);
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return prevLe;
}

interface Acc {
  versions: Set<number>;
  rate: number;
  requests: number;
  errorRate: number;
  errors: number;
  clientErrorRate: number;
  clientErrors: number;
  timeoutRate: number;
  buckets: Map<number, number>;
  durSum: number;
  durCount: number;
  batchSum: number;
  batchCount: number;
  queueDepth: number;
  workers: Set<string>;
}

const round = (x: number, digits = 6): number => Number(x.toFixed(digits));
const roundOrNull = (x: number | null): number | null => (x === null || !Number.isFinite(x) ? null : round(x));

/** The summary of every model seen on any worker within the window. */
export function summarize(workers: WorkerState[]): ModelStats[] {
  const acc = new Map<string, Acc>();
  const get = (model: string): Acc => {
    let a = acc.get(model);
    if (!a) {
      a = {
        versions: new Set(),
        rate: 0,
        requests: 0,
        errorRate: 0,
        errors: 0,
        clientErrorRate: 0,
        clientErrors: 0,
        timeoutRate: 0,
        buckets: new Map(),
        durSum: 0,
        durCount: 0,
        batchSum: 0,
        batchCount: 0,
        queueDepth: 0,
        workers: new Set(),
      };
      acc.set(model, a);
    }
    return a;
  };
  /** Models the cluster still has: loaded on a worker that answers, or with series in a latest scrape. */
  const present = new Set<string>();
  for (const w of workers) {
    const latest = w.history.at(-1);
    if (!latest) continue;
    if (w.up) for (const m of latest.models) present.add(m.name);
    for (const key of latest.series.keys()) {
      const model = parseSeriesKey(key).labels.model;
      if (model) present.add(model);
    }
  }
  for (const w of workers) {
    const latest = w.history.at(-1);
    if (!latest) continue;
    if (w.up) {
      for (const m of latest.models) {
        const a = get(m.name);
        a.versions.add(m.version);
        a.queueDepth += m.queue_depth;
        a.workers.add(w.id);
      }
    }
    const { span, inc } = increases(w.history);
    if (span <= 0) continue;
    for (const [key, d] of inc) {
      const { name, labels } = parseSeriesKey(key);
      const model = labels.model;
      // Requests refused before a model was named (unknown model), and models the cluster no longer has.
      if (!model || !present.has(model)) continue;
      const a = get(model);
      if (labels.version && /^\d+$/.test(labels.version)) a.versions.add(Number(labels.version));
      switch (name) {
        case 'modelhost_requests_total':
          a.requests += d;
          a.rate += d / span;
          if (labels.code && isClientError(labels.code)) {
            a.clientErrors += d;
            a.clientErrorRate += d / span;
          }
          break;
        case 'modelhost_errors_total':
          a.errors += d;
          a.errorRate += d / span;
          break;
        case 'modelhost_timeouts_total':
          a.timeoutRate += d / span;
          break;
        case 'modelhost_request_duration_seconds_bucket': {
          const le = labels.le === '+Inf' ? Infinity : Number(labels.le);
          a.buckets.set(le, (a.buckets.get(le) ?? 0) + d);
          break;
        }
        case 'modelhost_request_duration_seconds_sum':
          a.durSum += d;
          break;
        case 'modelhost_request_duration_seconds_count':
          a.durCount += d;
          break;
        case 'modelhost_batch_size_sum':
          a.batchSum += d;
          break;
        case 'modelhost_batch_size_count':
          a.batchCount += d;
          break;
      }
    }
  }
  return [...acc.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([model, a]) => {
      const buckets = [...a.buckets.entries()].map(([le, count]) => ({ le, count }));
      return {
        model,
        versions: [...a.versions].sort((x, y) => x - y),
        requests_per_second: round(a.rate, 3),
        requests: Math.round(a.requests),
        errors_per_second: round(a.errorRate, 3),
        error_rate: a.requests > 0 ? round(Math.min(1, a.errors / a.requests), 4) : null,
        client_errors_per_second: round(a.clientErrorRate, 3),
        client_error_rate: a.requests > 0 ? round(Math.min(1, a.clientErrors / a.requests), 4) : null,
        timeouts_per_second: round(a.timeoutRate, 3),
        latency_seconds: {
          p50: roundOrNull(histogramQuantile(0.5, buckets)),
          p95: roundOrNull(histogramQuantile(0.95, buckets)),
          p99: roundOrNull(histogramQuantile(0.99, buckets)),
          mean: a.durCount > 0 ? round(a.durSum / a.durCount) : null,
        },
        batch_size_mean: a.batchCount > 0 ? round(a.batchSum / a.batchCount, 3) : null,
        queue_depth: a.queueDepth,
        workers: [...a.workers].sort(),
      };
    });
}
