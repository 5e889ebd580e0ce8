/**
 * The validation process (forked by validation-process.ts, one per upload): parses the staged ONNX file,
 * creates a session for it, answers with what it found over IPC and exits, so whatever the model cost
 * goes back to the system with the process (the parent reads its peak memory, then kills it). It never
 * writes to the store. The runtime thread is started and warmed (a one-node model) before the child says
 * it is ready, so the memory measured is what creating this model's session costs a running worker, not
 * the runtime's start-up: its peak (`validation.memory_bytes`, read by the parent: modelhosts make room for
 * this much before a load) and what the session holds once created (`validation.resident_bytes`, read here
 * while it is held: a loaded model counts at least this much). The parent starts it with the modelhosts'
 * allocator setting (MALLOC_MMAP_THRESHOLD_), so that what creating the session freed is given back
 * before the second figure is read, as it is in a worker.
 *
 *   child → parent   {ready: true, hwmReset}   (hwmReset: the peak-memory mark was reset after start-up)
 *   parent → child   {file, folder, config}
 *   child → parent   {ok: ModelInspection, residentBytes} | {error: WireError, detail?: string}
 */
import { writeFileSync } from 'node:fs';
import { toInferrerError } from '@inferrer/core';
import type { ModelConfig, ModelInspection } from '@inferrer/model-store';
// The narrow entry points: a child that starts in a second rather than three (no zod, sharp, batcher).
import { checkOnnxFile } from '@inferrer/model-store/onnx-check';
import { SessionThreads, inspectModel } from '@inferrer/runtime/inspect';

interface Job {
  file: string;
  folder: string;
  config: ModelConfig;
}

/** Resident memory outside the JavaScript heap, as a modelhost measures what a load added (registry.ts). */
function nativeResident(): number {
  const m = process.memoryUsage();
  return m.rss - m.heapTotal;
}

/** Set just before the child says it is ready: what it holds itself. */
let baseline = 0;

/** The same checks as the store's inspectInProcess: structure first, then a session; and what the session holds. */
async function inspect(file: string, folder: string, config: ModelConfig): Promise<{ ok: ModelInspection; residentBytes: number }> {
  const facts = await checkOnnxFile(file, folder);
  let residentBytes = 0;
  const signature = await inspectModel(file, { graphOptimizationLevel: config.graph_optimization_level ?? 'all', threads }, () => {
    residentBytes = Math.max(0, nativeResident() - baseline);
  });
  return { ok: { facts, signature }, residentBytes };
}

function reply(msg: object): void {
  process.send!(msg);
}

const threads = new SessionThreads(1);

// The parent gone (killed, restarted): nothing left to answer.
process.on('disconnect', () => process.exit(1));
process.once('message', (job: Job) => {
  inspect(job.file, job.folder, job.config).then(
    (found) => reply(found),
    (err: unknown) => {
      const e = toInferrerError(err);
      reply({ error: e.toJSON(), ...(e.code === 'INTERNAL' ? { detail: String((err as Error)?.stack ?? err).slice(0, 2000) } : {}) });
    },
  );
});
// The runtime's start-up is not the model's cost: pay it before the measurement starts.
await threads.warm();
// Peak memory from here on is what the model costs: reset the high-water mark the parent reads (Linux).
let hwmReset = false;
try {
  writeFileSync('/proc/self/clear_refs', '5');
  hwmReset = true;
} catch {
  // not Linux, or not allowed: the parent goes by its own samples
}
baseline = nativeResident();
process.send!({ ready: true, hwmReset });
