/**
 * A model's execution on this worker: what its config and this worker's settings fix (a model's config
 * first), handed to the runtime's plan (packages/runtime/src/execution-plan.ts), which measures the rest at
 * load; and how the plan is shown (GET /v1/models/{name}/settings, the load's log line).
 */
import { stat } from 'node:fs/promises';
import type { ModelRecord } from '@inferrer/model-store';
import { onnxOperators } from '@inferrer/model-store/onnx-check';
import { type CpuBudget, type ExecutionPlan, type Fixed, type PlanRequest, type SessionThreads, cpuBudget } from '@inferrer/runtime';
import type { ModelhostConfig } from './config.ts';

/** What runs when nothing is set and nothing is measured (PLAN_MEASURE_MS=0, or inputs with dynamic dims). */
const DEFAULTS = { instances: 1, intraOpThreads: 1, maxBatchSize: 32 };

let budget: CpuBudget | undefined;

/** This worker's cores (CPUS, else affinity and the container's quota), read once. */
export function workerCpus(config: ModelhostConfig): CpuBudget {
  budget ??= cpuBudget(config.cpus);
  return budget;
}

function fixed(model: number | undefined, worker: number | undefined): Fixed | undefined {
  if (model !== undefined) return { value: model, source: 'model config' };
  if (worker !== undefined) return { value: worker, source: 'worker setting' };
  return undefined;
}

/** What the settings fix of a model's slots, threads and batch size (undefined: measured at load). */
export function fixedExecution(record: ModelRecord, config: ModelhostConfig): PlanRequest['fixed'] {
  const cfg = record.config;
  return {
    instances: fixed(cfg.instances, config.instances),
    intraOpThreads: fixed(cfg.intra_op_threads, config.intraOpThreads),
    maxBatchSize: fixed(cfg.batching?.max_batch_size, config.maxBatchSize),
  };
}

export function planRequest(
  file: string,
  record: ModelRecord,
  config: ModelhostConfig,
  executionProviders: PlanRequest['session']['executionProviders'],
  maxInstances: number,
  threads: SessionThreads | undefined,
  memoryRoom?: () => number,
  graph?: GraphFacts,
): PlanRequest {
  const cfg = record.config;
  return {
    file,
    session: {
      interOpThreads: cfg.inter_op_threads ?? config.interOpThreads,
      graphOptimizationLevel: cfg.graph_optimization_level ?? config.graphOptimizationLevel,
      executionProviders,
      threads,
      memoryRoom,
      ...(cfg.shared_graph ? { sharedGraph: true } : {}),
    },
    fixed: fixedExecution(record, config),
    cpus: workerCpus(config),
    batchCap: config.batchSizeCap,
    maxInstances,
    budgetMs: config.planMeasureMs,
    cheapMs: config.planCheapMs,
    defaults: DEFAULTS,
    batchAxis: cfg.batching?.batch_axis,
    inline: config.inlineRunMs > 0 ? { maxRunMs: config.inlineRunMs, refusal: () => inlineRefusal(file, executionProviders, graph) } : undefined,
  };
}

/**
 * Operators whose work the request's values can make as large as they like: loops and branches, and
 * sizes read from input values (an Expand to a shape the request sent). A model that uses any of them
 * never runs on the worker's own thread, where a long run would hold every other request.
 */
const UNBOUNDED_OPS = new Set([
  'Loop',
  'Scan',
  'If',
  'SequenceMap',
  'Expand',
  'Tile',
  'ConstantOfShape',
  'Range',
  'Resize',
  'Upsample',
  'Pad',
  'CenterCropPad',
  'OneHot',
  'Col2Im',
  'DFT',
  'STFT',
  'MaxUnpool',
  'BlackmanWindow',
  'HannWindow',
  'HammingWindow',
  'MelWeightMatrix',
]);
/** Domains whose operators' costs are known; a custom or contrib operator's are not. */
const KNOWN_DOMAINS = new Set(['ai.onnx', 'ai.onnx.ml']);
/** Largest file created on the worker's own thread: creating a session holds it about a millisecond per MB. */
const INLINE_MAX_FILE_BYTES = 8 * 1024 * 1024;
/**
 * Most nodes of a graph created on the worker's own thread: creation grows with them too (300,000
 * Identity nodes took 20 s, about 70 µs each), and a file of the same size and signature as a small model
 * (which shares its plan) can hold many.
 */
const INLINE_MAX_NODES = 500;

/** What a version's record keeps of its file and graph (checkOnnxFile at upload). */
export interface GraphFacts {
  bytes?: number | undefined;
  operators?: readonly string[] | undefined;
  nodes?: number | undefined;
}

/**
 * Operators read from files whose records predate keeping them, by file, size and modification time (a
 * model deleted and uploaded again under the same name and version has the same path).
 */
const readOperators = new Map<string, { operators: string[]; nodes: number } | undefined>();
const MAX_READ = 10_000;

/**
 * Why a cheap model may not run on the worker's own thread (undefined: it may): `graph` as its record
 * keeps it (checkOnnxFile at upload); read from the file where the record has none.
 */
export async function inlineRefusal(file: string, executionProviders: readonly string[], graph?: GraphFacts): Promise<string | undefined> {
  if (executionProviders.some((p) => p !== 'cpu')) return `it runs on ${executionProviders.join(', ')}`;
  const known = graph?.operators !== undefined && graph.nodes !== undefined;
  let bytes = graph?.bytes ?? 0;
  let key = '';
  // The record's size and graph where it keeps them (no call on the file for every load); else the file's.
  if (!known || graph?.bytes === undefined) {
    try {
      const st = await stat(file);
      bytes = st.size;
      key = `${file}\0${st.size}\0${st.mtimeMs}`;
    } catch (err) {
      return `its file could not be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
    }
  }
  if (bytes > INLINE_MAX_FILE_BYTES) {
    return `its file is ${Math.round(bytes / 1024 / 1024)} MB, over ${INLINE_MAX_FILE_BYTES / 1024 / 1024} MB (creating it would hold the worker's thread too long)`;
  }
  let facts = known ? { operators: graph!.operators!, nodes: graph!.nodes! } : undefined;
  if (facts === undefined) {
    if (!readOperators.has(key)) {
      if (readOperators.size >= MAX_READ) readOperators.delete(readOperators.keys().next().value!);
      readOperators.set(key, await onnxOperators(file).catch(() => undefined));
    }
    facts = readOperators.get(key);
  }
  if (facts === undefined) return 'its graph could not be parsed';
  if (facts.nodes > INLINE_MAX_NODES)
    return `its graph has ${facts.nodes} nodes, over ${INLINE_MAX_NODES} (creating it would hold the worker's thread too long)`;
  const ops = facts.operators;
  const unbounded = ops.filter((o) => o.startsWith('ai.onnx:') && UNBOUNDED_OPS.has(o.slice(8)));
  if (unbounded.length > 0) return `its graph uses ${unbounded.map((o) => o.slice(8)).join(', ')}, whose work can grow with the request's values`;
  const foreign = [...new Set(ops.map((o) => o.slice(0, o.indexOf(':'))).filter((d) => !KNOWN_DOMAINS.has(d)))];
  if (foreign.length > 0) return `its graph uses operators of ${foreign.join(', ')}, whose cost is not known here`;
  return undefined;
}

/**
 * The most slots a plan may give a model on this worker: one per core, per shared runtime thread, and as
 * many sessions as the memory budget (and MODEL_MAX_MEMORY_MB) holds at one session's expected cost;
 * at least 1 (a model whose one session does not fit is refused by the budget, not here).
 */
export function maxSlots(o: { cpus: number; sessionThreads: number; budgetBytes: number; slotBytes: number; limitBytes: number }): number {
  const caps = [o.cpus];
  if (o.sessionThreads > 0) caps.push(o.sessionThreads);
  if (o.slotBytes > 0) caps.push(Math.floor(o.budgetBytes / o.slotBytes));
  if (o.slotBytes > 0 && o.limitBytes > 0) caps.push(Math.floor(o.limitBytes / o.slotBytes));
  return Math.max(1, Math.min(...caps));
}

/** What a plan depends on (the file, what settings fix, the session options, the cores and caps): plans are reused by it. */
export function planKey(req: PlanRequest): string {
  const { threads: _threads, memoryRoom: _room, ...session } = req.session;
  return JSON.stringify([req.file, req.fixed, session, req.cpus.cpus, req.batchCap, req.maxInstances, req.budgetMs, req.cheapMs, req.batchAxis ?? 'auto']);
}

/** The plan as the settings route and the model configuration show it. */
export function planView(plan: ExecutionPlan): Record<string, unknown> {
  return {
    instances: plan.instances,
    intra_op_threads: plan.intraOpThreads,
    max_batch_size: plan.maxBatchSize,
    sources: { instances: plan.sources.instances, intra_op_threads: plan.sources.intraOpThreads, max_batch_size: plan.sources.maxBatchSize },
    cpus: plan.cpus,
    cpus_from: plan.cpuSource,
    reason: plan.reason,
    measure_ms: plan.measureMs,
    inline: plan.inline,
    measured: plan.measured.map((m) => ({
      instances: m.instances,
      intra_op_threads: m.intraOpThreads,
      batch: m.batch,
      ms_per_batch: m.msPerBatch,
      rows_per_s: m.rowsPerS,
      ...(m.inline ? { inline: true } : {}),
    })),
  };
}
