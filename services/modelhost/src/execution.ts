/**
 * A model's execution on this worker: what its config and this worker's settings fix (a model's config
 * first), handed to the runtime's plan (packages/runtime/src/execution-plan.ts), which measures the rest at
 * load; and how the plan is shown (GET /v1/models/{name}/settings, the load's log line).
 */
import type { ModelRecord } from '@inferrer/model-store';
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
    },
    fixed: fixedExecution(record, config),
    cpus: workerCpus(config),
    batchCap: config.batchSizeCap,
    maxInstances,
    budgetMs: config.planMeasureMs,
    cheapMs: config.planCheapMs,
    defaults: DEFAULTS,
    batchAxis: cfg.batching?.batch_axis,
  };
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
    measured: plan.measured.map((m) => ({
      instances: m.instances,
      intra_op_threads: m.intraOpThreads,
      batch: m.batch,
      ms_per_batch: m.msPerBatch,
      rows_per_s: m.rowsPerS,
    })),
  };
}
