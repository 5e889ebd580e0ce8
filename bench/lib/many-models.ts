/**
 * Part 9: a thousand models on a handful of workers (issue 18). 1,000 distinct small MLPs of three sizes
 * (test/helpers/mlp-models.ts) in the store, each modelhost with a memory budget that holds about 10 % of
 * them, Zipf traffic (s = 1.1) from 64 closed-loop clients through the whole cluster. The same run is made
 * with placement off (BALANCE=least_conn: every worker sees every model) and on (BALANCE=placement), each on
 * a fresh cluster whose first run is the single-model reference (every request for one model, the same
 * clients) for the warm p99 target.
 *
 * What each model costs is measured once per size by the Inferrer's real upload validation (a child
 * process each, the median of three), and the store is filled directly with those costs: validating a
 * thousand uploads one at a time would take most of an hour and tell nothing more.
 */
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ModelInspection } from '@inferrer/model-store';
import { ModelStore } from '@inferrer/model-store';
import { checkOnnxFile } from '@inferrer/model-store/onnx-check';
import type { OrtType } from '@inferrer/core';
import { createLogger } from '../../packages/telemetry/src/index.ts';
import { createProcessInspector } from '../../services/inferrer/src/validation/validation-process.ts';
import { MLP_SIZES, type MlpShape, mlpModel } from '../../test/helpers/mlp-models.ts';
import type { ManyModelsLoad, ManyModelsLoadResult } from '../many-models-generator.ts';
import { type BenchCluster, clusterPids, startBenchCluster } from './cluster.ts';
import { type CpuBill, CpuWindow } from './measure.ts';
import { BENCH_DIR } from './paths.ts';
import { fmt, fmtMs, fmtRps, table } from './table.ts';

export interface ManyModelsOptions {
  models: number;
  /** Share of the models one worker's budget holds. */
  budgetShare: number;
  /** Every model uploaded with `shared_graph` (one session per size and worker, weights fed as inputs); false: `--own-sessions`. */
  sharedGraph: boolean;
  modelhosts: number;
  clients: number;
  zipf: number;
  warmupS: number;
  durationS: number;
  singleS: number;
}

export interface SizeCost {
  shape: MlpShape;
  fileBytes: number;
  /** validation.memory_bytes, the peak of creating a session (room made before a load): the median of three validations. */
  peakBytes: number;
  /** validation.resident_bytes, what a session held once created (what a load counts at least): the median of three. */
  costBytes: number;
}

export interface WorkerMemory {
  modelhost: string;
  /** Resident memory of the idle worker before any traffic, and the most during the measured window. */
  baselineMb: number;
  /**
   * The worker's own memory when serving: its resident memory after the single-model reference (runtime
   * threads started, 64 clients served) less what its loaded models count.
   */
  servingMb: number;
  peakMb: number;
  /**
   * The same outside V8's heap (as the worker reports it, and as its budget watch reads it): native
   * memory, where sessions live. Its peak less its own when serving is what the models took at most, held
   * against the budget; the JavaScript heap's garbage, which grows by tens of MB between V8's full
   * collections whatever the models, is the worker's own and shown apart (`heapPeakMb`).
   */
  nativeServingMb: number;
  nativePeakMb: number;
  /** The most V8's heap held (committed) in the window. */
  heapPeakMb: number;
  /**
   * The most JavaScript's buffers held: requests' and answers' bytes, garbage among them until V8 collects
   * it (part of native memory; Node does not count the resizable buffers that hold shared models' weights).
   */
  buffersPeakMb: number;
  /** The most the loaded models counted against the budget during the window. */
  usedPeakMb: number;
  /** The most the worker's own budget watch saw its models hold (`memory.resident_bytes`). */
  watchedPeakMb: number;
  /** Models loaded at the end. */
  loaded: number;
}

type LoadResult = Omit<ManyModelsLoadResult, 'home'>;

export interface ManyModelsRun {
  balance: 'least_conn' | 'placement';
  single: LoadResult;
  warmup: LoadResult;
  load: LoadResult;
  /** Server-side, over the window: loads and evictions per second, hits / (hits + loads). */
  loadsPerS: number;
  evictionsPerS: number;
  hitRate: number;
  /** Predictions per upstream request from the Inferrer (its inferrer_upstream_group_size): single-model run, window. */
  perGroup: { single: number; window: number };
  /**
   * The hit rate an LRU cache of the budget's bytes would have on each worker, given the Zipf rates and where
   * the models were answered (Che's approximation): the ceiling of least-recently-used eviction here.
   */
  lruHitRate: number;
  /** CPU per answer by process in the single-model run and in the window (Linux only). */
  cpu: { single?: CpuBill; window?: CpuBill };
  memory: WorkerMemory[];
  balancer: string;
}

export interface ManyModelsResult {
  options: ManyModelsOptions;
  sizes: SizeCost[];
  budgetBytes: number;
  runs: ManyModelsRun[];
  notable: { service: string; line: string }[];
}

const MiB = 1024 * 1024;

/**
 * Che's approximation of an LRU cache's hit rate: items with request rates `rates` and sizes `sizes` share
 * `capacity`; the characteristic time T solves Σ size·(1 − e^(−rate·T)) = capacity, and the hit rate is
 * Σ rate·(1 − e^(−rate·T)) / Σ rate.
 */
function lruHitRate(rates: number[], sizes: number[], capacity: number): number {
  const total = rates.reduce((a, r) => a + r, 0);
  if (total === 0) return Number.NaN;
  const filled = (t: number): number => rates.reduce((a, r, i) => a + sizes[i]! * (1 - Math.exp(-r * t)), 0);
  if (filled(1e12) <= capacity) return 1;
  let lo = 0;
  let hi = 1;
  while (filled(hi) < capacity) hi *= 2;
  for (let k = 0; k < 100; k++) {
    const mid = (lo + hi) / 2;
    if (filled(mid) < capacity) lo = mid;
    else hi = mid;
  }
  return rates.reduce((a, r) => a + r * (1 - Math.exp(-r * hi)), 0) / total;
}

/**
 * The LRU ceiling of a run: least_conn sends every worker the whole mix; placement sends each model to the
 * worker that answered it most (a model never asked in the window to a worker by its rank).
 */
function lruCeiling(balance: ManyModelsRun['balance'], zipf: number, costs: number[], home: string[], workers: string[], budgetBytes: number): number {
  const weights = costs.map((_, i) => 1 / (i + 1) ** zipf);
  if (balance === 'least_conn') return lruHitRate(weights, costs, budgetBytes);
  const total = weights.reduce((a, w) => a + w, 0);
  let hits = 0;
  for (const w of workers) {
    const mine = costs.map((_, i) => (home[i] || workers[i % workers.length]) === w);
    const rates = weights.filter((_, i) => mine[i]);
    const rate = rates.reduce((a, r) => a + r, 0);
    if (rate > 0)
      hits +=
        lruHitRate(
          rates,
          costs.filter((_, i) => mine[i]),
          budgetBytes,
        ) * rate;
  }
  return hits / total;
}

/** Runs a ManyModelsLoad in bench/many-models-generator.ts, a child process of its own; `window` is read as its measured window opens and closes. */
function generate(spec: ManyModelsLoad, window?: CpuWindow): Promise<ManyModelsLoadResult> {
  return new Promise((resolve, reject) => {
    const child = fork(path.join(BENCH_DIR, 'many-models-generator.ts'), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let answered = false;
    child.on('message', (msg: { type: string; result?: ManyModelsLoadResult; error?: string }) => {
      if (msg.type === 'start') window?.open();
      else if (msg.type === 'end') window?.close();
      else if (msg.type === 'result') {
        answered = true;
        resolve(msg.result!);
      } else if (msg.type === 'error') {
        answered = true;
        reject(new Error(`many-models load generator failed: ${msg.error}`));
      }
    });
    child.once('exit', (code, signal) => {
      if (!answered) reject(new Error(`many-models load generator exited (${signal ?? code}) without a result`));
    });
    child.send(spec);
  });
}

/** Resident memory of a process, MB (Linux). */
function rssMb(pid: number | undefined): number {
  try {
    return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
  } catch {
    return Number.NaN;
  }
}

/** A worker's memory as it reports it (GET /v1/models), MB. */
interface Reported {
  /** What its loaded models count against its budget. */
  used: number;
  /** What its budget watch sees them hold. */
  watched: number;
  /** Resident memory outside V8's heap. */
  native: number;
  heap: number;
  /** JavaScript's buffers (outside V8's heap, inside native memory), shared models' weights not among them. */
  buffers: number;
}

async function reported(url: string): Promise<Reported> {
  const w = (await (await fetch(`${url}/v1/models`, { signal: AbortSignal.timeout(5000) })).json()) as {
    memory: {
      used_bytes: number;
      resident_bytes: number;
      process_resident_bytes: number;
      process_heap_bytes: number;
      process_native_bytes: number;
      process_buffer_bytes: number;
    };
  };
  const m = w.memory;
  return {
    used: m.used_bytes / MiB,
    watched: m.resident_bytes / MiB,
    native: m.process_native_bytes / MiB,
    heap: m.process_heap_bytes / MiB,
    buffers: m.process_buffer_bytes / MiB,
  };
}

/** Each figure's larger reading. */
const higher = (a: Reported, b: Reported): Reported => ({
  used: Math.max(a.used, b.used),
  watched: Math.max(a.watched, b.watched),
  native: Math.max(a.native, b.native),
  heap: Math.max(a.heap, b.heap),
  buffers: Math.max(a.buffers, b.buffers),
});

/** A counter summed over every modelhost (series whose labels contain `match`). */
async function counter(bc: BenchCluster, name: string, match = ''): Promise<number> {
  let sum = 0;
  for (const m of bc.cluster.modelhosts) {
    const text = await (await fetch(`${m.url}/metrics`)).text();
    for (const line of text.split('\n')) if (line.startsWith(`${name}{`) && line.includes(match)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** The Inferrer's inferrer_upstream_group_size sum and count so far. */
async function groups(bc: BenchCluster): Promise<{ sum: number; count: number }> {
  const text = await (await fetch(`${bc.url}/metrics`)).text();
  const value = (name: string): number => Number(new RegExp(`^inferrer_upstream_group_size_${name}(?:\\{[^}]*\\})? (\\S+)`, 'm').exec(text)?.[1] ?? NaN);
  return { sum: value('sum'), count: value('count') };
}

/** Mean predictions per upstream request between two readings of groups(). */
const perGroup = (a: { sum: number; count: number }, b: { sum: number; count: number }): number => (b.sum - a.sum) / Math.max(1, b.count - a.count);

/** What validation measures for one model of each size (median of three runs, each in its own process). */
async function measureSizes(dir: string, log: (line: string) => void): Promise<SizeCost[]> {
  const inspect = createProcessInspector(
    { memoryBaseMb: 256, memoryPerModelMb: 4, maxMemoryMb: 1536, timeoutMs: 60_000 },
    createLogger({ service: 'bench', level: 'error' }),
  );
  const out: SizeCost[] = [];
  for (const [i, shape] of MLP_SIZES.entries()) {
    const peaks: number[] = [];
    const costs: number[] = [];
    let fileBytes = 0;
    for (let k = 0; k < 3; k++) {
      const bytes = mlpModel(shape, 900_000 + i * 10 + k);
      fileBytes = bytes.length;
      const file = path.join(dir, `size-${i}-${k}.onnx`);
      await writeFile(file, bytes);
      const r = await inspect(file, dir, {});
      peaks.push(r.cost!.memory_bytes);
      costs.push(r.cost!.resident_bytes ?? r.cost!.memory_bytes);
    }
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[1]!;
    out.push({ shape, fileBytes, peakBytes: median(peaks), costBytes: median(costs) });
    const mbs = (xs: number[]): string => xs.map((c) => (c / MiB).toFixed(2)).join(', ');
    log(
      `size ${i} (${shape.inputs}→${shape.hidden}×${shape.layers}→${shape.outputs}, ${(fileBytes / 1024).toFixed(0)} KB): validation measured ${mbs(costs)} MB held (peak ${mbs(peaks)})`,
    );
  }
  return out;
}

/** The store: `n` models, model i of size i % 3, each with its size's measured cost. */
async function fillStore(dir: string, n: number, sizes: SizeCost[], sharedGraph: boolean, log: (line: string) => void): Promise<void> {
  const bySize = new Map<number, { inspection: Omit<ModelInspection, 'facts'> }>();
  for (const s of sizes) {
    const inputs = [{ name: 'x', type: 'float32' as OrtType, shape: ['batch', s.shape.inputs] }];
    const outputs = [{ name: 'y', type: 'float32' as OrtType, shape: ['batch', s.shape.outputs] }];
    bySize.set(s.fileBytes, { inspection: { signature: { inputs, outputs }, cost: { memory_bytes: s.peakBytes, resident_bytes: s.costBytes, ms: 0 } } });
  }
  const store = new ModelStore(dir, {
    inspect: async (file, folder) => {
      const facts = await checkOnnxFile(file, folder);
      const known = bySize.get((await stat(file)).size);
      if (!known) throw new Error(`a model of unexpected size in ${file}`);
      return { facts, ...known.inspection };
    },
  });
  await store.init();
  const started = performance.now();
  for (let i = 0; i < n; i++) {
    const staged = path.join(await store.stagingDir(), 'model.onnx');
    await writeFile(staged, mlpModel(sizes[i % sizes.length]!.shape, i + 1));
    await store.put(`m-${i}`, staged, { description: `MLP ${i}`, ...(sharedGraph ? { config: { shared_graph: true } } : {}) });
  }
  log(`store: ${n} models written in ${((performance.now() - started) / 1000).toFixed(0)} s`);
}

async function runMode(
  balance: ManyModelsRun['balance'],
  opts: ManyModelsOptions,
  modelDir: string,
  models: ManyModelsLoad['models'],
  costs: number[],
  budgetBytes: number,
  log: (line: string) => void,
  notable: ManyModelsResult['notable'],
): Promise<ManyModelsRun> {
  const bc = await startBenchCluster({
    modelhosts: opts.modelhosts,
    models: [],
    modelDir,
    balance,
    metrics: false,
    modelhostEnv: { MODEL_MEMORY_BYTES: String(budgetBytes), ACCESS_LOG: 'false' },
    inferrerEnv: { ACCESS_LOG: 'false' },
  });
  try {
    const baseline = new Map(bc.cluster.modelhosts.map((m) => [m.id, rssMb(m.process.pid)]));
    const spec = (zipf: number, warmupS: number, durationS: number): ManyModelsLoad => ({
      url: bc.url,
      models,
      zipf,
      clients: opts.clients,
      warmupS,
      durationS,
      timeoutS: 30,
    });
    log(`${balance}: single-model reference (${opts.clients} clients, one model, 3 s warm-up + ${opts.singleS} s)`);
    const groups0 = await groups(bc);
    const singleCpu = new CpuWindow(clusterPids(bc));
    const { home: _h1, ...single } = await generate(spec(0, 3, opts.singleS), singleCpu);
    const groups1 = await groups(bc);
    const serving = new Map<string, { rss: number; native: number }>();
    for (const m of bc.cluster.modelhosts) {
      const r = await reported(m.url);
      serving.set(m.id, { rss: rssMb(m.process.pid) - r.used, native: r.native - r.used });
    }
    log(`${balance}: ${opts.warmupS} s of Zipf traffic to warm up (measured apart)`);
    const { home: _h2, ...warmup } = await generate(spec(opts.zipf, 0, opts.warmupS));
    const peak = new Map<string, number>();
    const peaks = new Map<string, Reported>();
    const sample = async (): Promise<void> => {
      for (const m of bc.cluster.modelhosts) {
        peak.set(m.id, Math.max(peak.get(m.id) ?? 0, rssMb(m.process.pid)));
        const r = await reported(m.url).catch(() => undefined);
        const p = peaks.get(m.id);
        if (r) peaks.set(m.id, p ? higher(p, r) : r);
      }
    };
    const before = {
      loads: await counter(bc, 'modelhost_model_lookups_total', 'result="load"'),
      hits: await counter(bc, 'modelhost_model_lookups_total', 'result="hit"'),
      evictions: await counter(bc, 'modelhost_sessions_evicted_total'),
    };
    const groups2 = await groups(bc);
    log(`${balance}: ${opts.durationS} s measured`);
    const timer = setInterval(() => void sample(), 500);
    const windowCpu = new CpuWindow(clusterPids(bc));
    const { home, ...load } = await generate(spec(opts.zipf, 0, opts.durationS), windowCpu);
    clearInterval(timer);
    await sample();
    const after = {
      loads: await counter(bc, 'modelhost_model_lookups_total', 'result="load"'),
      hits: await counter(bc, 'modelhost_model_lookups_total', 'result="hit"'),
      evictions: await counter(bc, 'modelhost_sessions_evicted_total'),
    };
    const groups3 = await groups(bc);
    const memory: WorkerMemory[] = [];
    for (const m of bc.cluster.modelhosts) {
      const w = (await (await fetch(`${m.url}/v1/models`)).json()) as { models: unknown[] };
      const p = peaks.get(m.id);
      memory.push({
        modelhost: m.id,
        baselineMb: baseline.get(m.id)!,
        servingMb: serving.get(m.id)!.rss,
        peakMb: peak.get(m.id) ?? Number.NaN,
        nativeServingMb: serving.get(m.id)!.native,
        nativePeakMb: p?.native ?? Number.NaN,
        heapPeakMb: p?.heap ?? Number.NaN,
        buffersPeakMb: p?.buffers ?? Number.NaN,
        usedPeakMb: p?.used ?? Number.NaN,
        watchedPeakMb: p?.watched ?? Number.NaN,
        loaded: w.models.length,
      });
    }
    const loads = after.loads - before.loads;
    const hits = after.hits - before.hits;
    notable.push(...bc.notable.slice(0, 20));
    return {
      balance,
      single,
      warmup,
      load,
      loadsPerS: loads / opts.durationS,
      evictionsPerS: (after.evictions - before.evictions) / opts.durationS,
      hitRate: hits / Math.max(1, hits + loads),
      perGroup: { single: perGroup(groups0, groups1), window: perGroup(groups2, groups3) },
      lruHitRate: lruCeiling(
        balance,
        opts.zipf,
        costs,
        home,
        bc.cluster.modelhosts.map((m) => m.id),
        budgetBytes,
      ),
      cpu: { single: singleCpu.bill(single.ok, single.cpuS, single.seconds), window: windowCpu.bill(load.ok, load.cpuS, load.seconds) },
      memory,
      balancer: bc.cluster.balancer.description,
    };
  } finally {
    await bc.stop();
  }
}

export async function runManyModels(opts: ManyModelsOptions, log: (line: string) => void): Promise<ManyModelsResult> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'inferrer-bench-many-'));
  const modelDir = path.join(work, 'models');
  try {
    const sizes = await measureSizes(work, log);
    await fillStore(modelDir, opts.models, sizes, opts.sharedGraph, log);
    // What a loaded model counts at least: what validation saw its session hold, or, sharing its graph's
    // session, its weights (its file's bytes).
    const counted = (s: SizeCost): number => (opts.sharedGraph ? s.fileBytes : s.costBytes);
    const meanCost = sizes.reduce((a, s) => a + counted(s), 0) / sizes.length;
    const budgetBytes = Math.round(opts.models * opts.budgetShare * meanCost);
    log(
      `budget: ${(budgetBytes / MiB).toFixed(1)} MB per worker = ${Math.round(opts.models * opts.budgetShare)} models at the mean of what ${opts.sharedGraph ? 'one counts sharing its graph (its weights)' : 'validation saw one hold'}, ${(meanCost / MiB).toFixed(2)} MB`,
    );
    const models = Array.from({ length: opts.models }, (_, i) => ({ name: `m-${i}`, inputs: sizes[i % sizes.length]!.shape.inputs }));
    const costs = models.map((_, i) => counted(sizes[i % sizes.length]!));
    const notable: ManyModelsResult['notable'] = [];
    const runs: ManyModelsRun[] = [];
    for (const balance of ['least_conn', 'placement'] as const) runs.push(await runMode(balance, opts, modelDir, models, costs, budgetBytes, log, notable));
    return { options: opts, sizes, budgetBytes, runs, notable };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** The most resident memory a worker's models took in the window (its native peak less its own when serving), MB. */
export function worstModelsMb(run: ManyModelsRun): number {
  return run.memory.reduce((a, m) => Math.max(a, m.nativePeakMb - m.nativeServingMb), 0);
}

export function manyModelsTable(r: ManyModelsResult): string {
  const budgetMb = r.budgetBytes / MiB;
  const rows = r.runs.map((run) => {
    const worst = worstModelsMb(run);
    return [
      run.balance === 'placement' ? 'placement on' : 'placement off (least_conn)',
      fmtRps(run.load.rps),
      `${fmtMs(run.load.hits.p50)} / ${fmtMs(run.load.hits.p99)}`,
      `${fmtMs(run.load.hitsInWorker.p50)} / ${fmtMs(run.load.hitsInWorker.p99)}`,
      `${fmtMs(run.load.loads.p50)} / ${fmtMs(run.load.loads.p99)}`,
      `${fmtRps(run.single.rps)} / ${fmtMs(run.single.hits.p99)}`,
      `${fmt(run.perGroup.single, 1)} / ${fmt(run.perGroup.window, 1)}`,
      `${fmt(run.hitRate, 3)} / ${fmt(run.lruHitRate, 3)}`,
      fmt(run.loadsPerS, 1),
      fmt(run.evictionsPerS, 1),
      `${fmt(worst, 0)} / ${fmt(budgetMb, 0)}`,
      String(run.load.errors + run.warmup.errors + run.single.errors),
    ];
  });
  const head = [
    '',
    'req/s',
    'hit p50/p99 ms',
    'in worker',
    'load p50/p99 ms',
    'single req/s / p99',
    'per group',
    'hit rate / LRU ceiling',
    'loads/s',
    'evict/s',
    "models' peak / budget MB",
    'errors',
  ];
  const memory = r.runs.flatMap((run) =>
    run.memory.map((m) => [
      run.balance,
      m.modelhost,
      fmt(m.baselineMb, 0),
      fmt(m.servingMb, 0),
      fmt(m.peakMb, 0),
      fmt(m.peakMb - m.servingMb, 0),
      fmt(m.heapPeakMb, 0),
      fmt(m.nativeServingMb, 0),
      fmt(m.nativePeakMb, 0),
      fmt(m.nativePeakMb - m.nativeServingMb, 0),
      fmt(m.buffersPeakMb, 0),
      fmt(m.watchedPeakMb, 0),
      fmt(m.usedPeakMb, 0),
      fmt(budgetMb, 0),
      String(m.loaded),
      String(run.load.perModelhost[m.modelhost] ?? 0),
    ]),
  );
  const ms = (us: number | undefined): string => (us === undefined ? '–' : fmt(us / 1000, 2));
  const sum = (o: Record<string, number> | undefined, prefix: string): number | undefined =>
    o === undefined ? undefined : Object.entries(o).reduce((a, [k, v]) => (k.startsWith(prefix) ? a + v : a), 0);
  const cpu = r.runs.flatMap((run) =>
    (['single', 'window'] as const).map((which) => {
      const bill = run.cpu[which];
      const load = which === 'single' ? run.single : run.load;
      return [
        `${run.balance === 'placement' ? 'placement on' : 'placement off'}, ${which === 'single' ? 'single model' : 'Zipf window'}`,
        fmtRps(load.rps),
        ms(bill?.perRequestUs.inferrer),
        ms(bill?.perRequestUs.balancer),
        ms(sum(bill?.perRequestUs, 'modelhost-')),
        ms(sum(bill?.mainThreadUs, 'modelhost-')),
        ms(bill?.serverUsPerRequest),
        ms(bill?.generatorUsPerRequest),
        bill ? fmt(bill.otherCores, 2) : '–',
      ];
    }),
  );
  return [
    table(head, rows),
    '',
    "CPU per answer, ms (all threads of each process; event loops: the modelhosts' main threads), in the single-model run and in the Zipf window: with the cores full, answers/s is about the cores over the cluster and generator total, so the warm p99 ÷ single-model p99 target follows what an answer costs in each",
    table(['', 'answers/s', 'inferrer', 'nginx', 'modelhosts', 'their event loops', 'cluster total', 'load generator', 'other cores'], cpu),
    '',
    "per worker (MB): resident memory (RSS) idle before traffic; its own when serving (after the single-model run, less what that loaded counts); its peak in the window; the peak less its own; of RSS, the most V8's heap held (its garbage waits for a full collection, whatever the models); native memory (RSS outside V8's heap, where sessions live): its own when serving, its peak, and the peak less its own (the models' share, held against the budget); of native memory, the most JavaScript's buffers held (requests' and answers' bytes, garbage among them until V8 collects it; not the shared models' weights); what the worker's budget watch saw its models hold at most; what they counted at most; models loaded at the end; answers served",
    table(
      [
        '',
        'modelhost',
        'idle',
        'own',
        'peak',
        'peak−own',
        'JS heap',
        'native own',
        'native peak',
        'models',
        'buffers',
        'watched',
        'counted',
        'budget',
        'loaded',
        'answers',
      ],
      memory,
    ),
  ].join('\n');
}
