/**
 * Inference statistics in the shape of the Open Inference Protocol's statistics extension (Triton's
 * `model_stats`): per model version, counts and cumulative nanoseconds of successful and failed requests
 * and of each stage a request goes through. Each modelhost counts its own (`InferenceStats`, served at its
 * `GET /v1/stats`); the metrics service sums every worker's with `sumStats`; the Inferrer answers
 * `/v2/models/stats` and gRPC ModelStatistics from that sum.
 *
 * Stages: `queue` is the wait in the batcher, `compute_input` decoding the request (JSON or binary tensors,
 * images), `compute_infer` the ONNX Runtime run of the batch the request was in, `compute_output`
 * encoding the answer; `success` is the whole time on the worker. `inference_count` counts rows (each row
 * of a batched request is one inference), `execution_count` model runs (batches). `batch_stats` holds one
 * entry per batch size run with its runs and run time (compute_infer); preparing a batch's inputs and
 * splitting its outputs are part of each request's compute_input and compute_output, so their per-batch
 * entries stay zero. `cache_hit` counts requests answered from the response cache (the time to look the
 * answer up) and `cache_miss` those of cache-enabled models that were not (the time to look up and to keep
 * the answer); as in Triton, a hit counts in `success` but in no other stage, nor in `inference_count`.
 */

export interface StatDuration {
  count: number;
  ns: number;
}

export interface InferStageStats {
  success: StatDuration;
  fail: StatDuration;
  queue: StatDuration;
  compute_input: StatDuration;
  compute_infer: StatDuration;
  compute_output: StatDuration;
  cache_hit: StatDuration;
  cache_miss: StatDuration;
}

export interface BatchStats {
  batch_size: number;
  compute_input: StatDuration;
  compute_infer: StatDuration;
  compute_output: StatDuration;
}

export interface VersionStats {
  name: string;
  version: string;
  /** Milliseconds since the epoch of the last request answered (0: none yet). */
  last_inference: number;
  inference_count: number;
  execution_count: number;
  inference_stats: InferStageStats;
  batch_stats: BatchStats[];
}

/** What one successful request spent in each stage, in milliseconds. */
export interface RequestTimes {
  rows: number;
  totalMs: number;
  queueMs: number;
  inputMs: number;
  inferMs: number;
  outputMs: number;
}

const STAGES = ['success', 'fail', 'queue', 'compute_input', 'compute_infer', 'compute_output', 'cache_hit', 'cache_miss'] as const;
/** Distinct batch sizes kept per version (a request that does not stack runs alone with any row count). */
const MAX_BATCH_SIZES = 1024;

const zero = (): StatDuration => ({ count: 0, ns: 0 });
const ns = (ms: number): number => Math.round(ms * 1e6);

export function emptyStats(name: string, version: string): VersionStats {
  const inference_stats = {} as InferStageStats;
  for (const s of STAGES) inference_stats[s] = zero();
  return { name, version, last_inference: 0, inference_count: 0, execution_count: 0, inference_stats, batch_stats: [] };
}

/** One worker's counters, per model version. */
export class InferenceStats {
  readonly #versions = new Map<string, { stats: VersionStats; batches: Map<number, BatchStats> }>();

  #entry(model: string, version: number): { stats: VersionStats; batches: Map<number, BatchStats> } {
    const key = `${model}@${version}`;
    let e = this.#versions.get(key);
    if (!e) {
      e = { stats: emptyStats(model, String(version)), batches: new Map() };
      this.#versions.set(key, e);
    }
    return e;
  }

  success(model: string, version: number, t: RequestTimes): void {
    const s = this.#entry(model, version).stats;
    const i = s.inference_stats;
    s.last_inference = Date.now();
    s.inference_count += t.rows;
    add(i.success, t.totalMs);
    add(i.queue, t.queueMs);
    add(i.compute_input, t.inputMs);
    add(i.compute_infer, t.inferMs);
    add(i.compute_output, t.outputMs);
  }

  /** A request answered from the response cache: `lookupMs` hashing its inputs and finding the answer. */
  cacheHit(model: string, version: number, totalMs: number, lookupMs: number): void {
    const s = this.#entry(model, version).stats;
    s.last_inference = Date.now();
    add(s.inference_stats.success, totalMs);
    add(s.inference_stats.cache_hit, lookupMs);
  }

  /** A request of a cache-enabled model that ran: `ms` looking it up and keeping its answer. */
  cacheMiss(model: string, version: number, ms: number): void {
    add(this.#entry(model, version).stats.inference_stats.cache_miss, ms);
  }

  failure(model: string, version: number, totalMs: number): void {
    const s = this.#entry(model, version).stats;
    s.last_inference = Date.now();
    add(s.inference_stats.fail, totalMs);
  }

  /** One model run of `rows` rows. */
  batch(model: string, version: number, rows: number, computeMs: number): void {
    const e = this.#entry(model, version);
    e.stats.execution_count++;
    let b = e.batches.get(rows);
    if (!b) {
      if (e.batches.size >= MAX_BATCH_SIZES) return;
      b = { batch_size: rows, compute_input: zero(), compute_infer: zero(), compute_output: zero() };
      e.batches.set(rows, b);
    }
    add(b.compute_infer, computeMs);
  }

  view(): VersionStats[] {
    return [...this.#versions.values()].map(({ stats, batches }) => ({
      ...stats,
      batch_stats: [...batches.values()].sort((a, b) => a.batch_size - b.batch_size),
    }));
  }
}

function add(d: StatDuration, ms: number): void {
  d.count++;
  d.ns += ns(ms);
}

/** The sum of several workers' statistics, per model version (last_inference: the latest). */
export function sumStats(lists: readonly (readonly VersionStats[])[]): VersionStats[] {
  const out = new Map<string, VersionStats>();
  for (const list of lists) {
    for (const v of list) {
      if (!v || typeof v.name !== 'string' || typeof v.version !== 'string') continue;
      const key = `${v.name}@${v.version}`;
      let t = out.get(key);
      if (!t) {
        t = emptyStats(v.name, v.version);
        out.set(key, t);
      }
      t.last_inference = Math.max(t.last_inference, num(v.last_inference));
      t.inference_count += num(v.inference_count);
      t.execution_count += num(v.execution_count);
      for (const s of STAGES) addDuration(t.inference_stats[s], v.inference_stats?.[s]);
      for (const b of Array.isArray(v.batch_stats) ? v.batch_stats : []) {
        let tb = t.batch_stats.find((x) => x.batch_size === b.batch_size);
        if (!tb) {
          tb = { batch_size: num(b.batch_size), compute_input: zero(), compute_infer: zero(), compute_output: zero() };
          t.batch_stats.push(tb);
        }
        addDuration(tb.compute_input, b.compute_input);
        addDuration(tb.compute_infer, b.compute_infer);
        addDuration(tb.compute_output, b.compute_output);
      }
    }
  }
  for (const t of out.values()) t.batch_stats.sort((a, b) => a.batch_size - b.batch_size);
  return [...out.values()].sort((a, b) => (a.name === b.name ? Number(a.version) - Number(b.version) : a.name < b.name ? -1 : 1));
}

function num(x: unknown): number {
  return typeof x === 'number' && Number.isFinite(x) && x >= 0 ? x : 0;
}

function addDuration(to: StatDuration, from: StatDuration | undefined): void {
  if (!from) return;
  to.count += num(from.count);
  to.ns += num(from.ns);
}
