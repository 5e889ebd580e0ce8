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
 * The second figure is a difference of two readings of about 120 MB each, for sessions of 0.1 to a few MB,
 * so each reading leaves out what moves on its own: V8's heap and JavaScript's buffers (the file's bytes,
 * read for the structure check, whether or not V8 has collected them yet: left in, the largest bench MLP
 * measured 1.2 MB in some children and 2.6 in others), after a full collection (the parent starts the
 * child with --expose-gc), and resident memory is read exactly (smaps_rollup walks the page tables; the
 * kernel's running count can lag by a few hundred KB per thread). What is left was steady to ±0.1 MB in
 * eight children per size and within that of what a hundred sessions held in one process
 * (bench/README.md part 9). A session holds at least its file's bytes (the weights are copied in) and
 * SESSION_BYTES, which a reading of a small model's session can fall under.
 *
 *   child → parent   {ready: true, hwmReset}   (hwmReset: the peak-memory mark was reset after start-up)
 *   parent → child   {file, folder, config}
 *   child → parent   {ok: ModelInspection, residentBytes} | {error: WireError, detail?: string}
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
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

/** About what a session of a one-node model holds (0.08 MB; a 5 KB MLP's: 0.13 MB after one run). */
const SESSION_BYTES = 128 * 1024;

/** Resident memory, exact where Linux can tell (else the kernel's running count). */
function residentBytes(): number {
  try {
    const kb = /^Rss:\s+(\d+) kB/m.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'))?.[1];
    if (kb !== undefined) return Number(kb) * 1024;
  } catch {
    // not Linux, or an old kernel
  }
  return process.memoryUsage.rss();
}

/** Resident memory outside V8's heap and JavaScript's buffers, after a full collection. */
function nativeResident(): number {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return residentBytes() - m.heapTotal - m.arrayBuffers;
}

/** Set just before the child says it is ready: what it holds itself. */
let baseline = 0;

/** The same checks as the store's inspectInProcess: structure first, then a session; and what the session holds. */
async function inspect(file: string, folder: string, config: ModelConfig): Promise<{ ok: ModelInspection; residentBytes: number }> {
  const facts = await checkOnnxFile(file, folder);
  const least = (await stat(file)).size + SESSION_BYTES;
  let held = 0;
  const signature = await inspectModel(file, { graphOptimizationLevel: config.graph_optimization_level ?? 'all', threads }, () => {
    held = Math.max(least, nativeResident() - baseline);
  });
  return { ok: { facts, signature }, residentBytes: held };
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
