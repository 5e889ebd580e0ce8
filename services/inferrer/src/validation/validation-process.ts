/**
 * Upload validation in a separate process, under a memory and a time limit. Parsing an ONNX file and
 * creating a session can cost far more than the file's size (a 118-byte model folds ConstantOfShape into
 * 256 MiB; 300 000 Identity nodes take 20 s and 750 MB), and memory a native library took is not given
 * back to the system by a process that keeps running. So every upload is validated by a fresh child
 * process (validate-child.ts) that exits afterwards, one at a time, and is killed once it goes over:
 *
 * - memory: peak RSS above the child's own baseline (read from /proc, sampled every 20 ms and checked
 *   against the kernel's high-water mark at the end) may not exceed
 *   min(VALIDATION_MAX_MEMORY_MB, VALIDATION_MEMORY_BASE_MB + VALIDATION_MEMORY_PER_MODEL_MB × file MB);
 *   the V8 heap is capped at VALIDATION_MAX_MEMORY_MB too;
 * - time: VALIDATION_TIMEOUT_MS from the moment the child has the file.
 *
 * Over either limit: 413 MODEL_TOO_COSTLY naming the limit. A child that crashes (a model that breaks
 * the runtime) is 400 INVALID_MODEL. What validation cost is recorded with the version, so modelhosts
 * can refuse to load what does not fit them.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { InferrerError, type WireError, fromWire } from '@inferrer/core';
import type { ModelConfig, ModelInspection, ModelInspector } from '@inferrer/model-store';
import type { Logger } from '@inferrer/telemetry';

const CHILD = fileURLToPath(new URL('./validate-child.ts', import.meta.url));
const MB = 1024 * 1024;
const POLL_MS = 20;
/** Starting the child (node, the TypeScript loader, ONNX Runtime) is not the model's cost; it still may not hang. */
const STARTUP_TIMEOUT_MS = 60_000;

export interface ValidationLimits {
  /** Memory any model may take while validated, MB above the validation process's baseline. */
  memoryBaseMb: number;
  /** More memory per MB of model file. */
  memoryPerModelMb: number;
  /** The ceiling, whatever the file's size (and the child's V8 heap limit). */
  maxMemoryMb: number;
  timeoutMs: number;
}

/** The memory a model of `fileBytes` may take while validated, in bytes. */
export function memoryAllowance(limits: ValidationLimits, fileBytes: number): number {
  return Math.round(Math.min(limits.maxMemoryMb, limits.memoryBaseMb + (limits.memoryPerModelMb * fileBytes) / MB) * MB);
}

/** A ModelInspector that runs each validation in a fresh child process, one at a time. */
export function createProcessInspector(limits: ValidationLimits, logger: Logger): ModelInspector {
  const log = logger.child({ module: 'validation' });
  let queue: Promise<unknown> = Promise.resolve();
  return (file, folder, config) => {
    const run = queue.then(() => validateInChild(file, folder, config, limits, log));
    queue = run.catch(() => undefined);
    return run;
  };
}

type ChildMessage = { ready: true; hwmReset: boolean } | { ok: ModelInspection; residentBytes: number } | { error: WireError; detail?: string };

/** The allocator setting modelhosts run with (launcher.ts, the images), unless this process has its own. */
const MMAP_THRESHOLD = '131072';

async function validateInChild(file: string, folder: string, config: ModelConfig, limits: ValidationLimits, log: Logger): Promise<ModelInspection> {
  const size = (await stat(file)).size;
  const allowance = memoryAllowance(limits, size);
  const child = fork(CHILD, [], {
    execArgv: childExecArgv(limits.maxMemoryMb),
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    serialization: 'json',
    // As in a worker, a block freed after the session is created goes back to the system, so what the
    // session holds (resident_bytes) is read without it.
    env: { ...process.env, MALLOC_MMAP_THRESHOLD_: process.env.MALLOC_MMAP_THRESHOLD_ ?? MMAP_THRESHOLD },
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 16_384) stderr += d.toString('utf8');
  });
  const started = performance.now();
  let sent = 0;
  return new Promise<ModelInspection>((resolve, reject) => {
    let baseline: number | undefined;
    let hwmReset = false;
    let peak = 0;
    let settled = false;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    // Settles once the child is gone (its memory back with the system), whatever the outcome.
    const finish = (err: InferrerError | undefined, value?: ModelInspection): void => {
      if (settled) return;
      settled = true;
      clearInterval(poll);
      clearTimeout(timer);
      reap(child);
      void exited.then(() => (err ? reject(err) : resolve(value!)));
    };
    const overMemory = (used: number): InferrerError =>
      new InferrerError(
        'MODEL_TOO_COSTLY',
        `validating the model took more than ${mb(allowance)} MB of memory, the limit for a ${sizeText(size)} file (VALIDATION_MEMORY_BASE_MB + VALIDATION_MEMORY_PER_MODEL_MB × file size, at most VALIDATION_MAX_MEMORY_MB); every worker would need as much to load it`,
        { limit: 'VALIDATION_MAX_MEMORY_MB', limit_mb: mb(allowance), used_mb: mb(used), file_bytes: size },
      );
    const measure = (): number | undefined => {
      if (baseline === undefined) return undefined;
      const m = readMemory(child.pid);
      if (!m) return undefined;
      const used = Math.max(m.rss, hwmReset ? m.hwm : 0) - baseline;
      peak = Math.max(peak, used);
      return peak;
    };
    const poll = setInterval(() => {
      const used = measure();
      if (used !== undefined && used > allowance) finish(overMemory(used));
    }, POLL_MS);
    let timer = setTimeout(() => finish(new InferrerError('INTERNAL', 'the validation process did not start')), STARTUP_TIMEOUT_MS);
    child.on('message', (msg: ChildMessage) => {
      if ('ready' in msg) {
        hwmReset = msg.hwmReset;
        baseline = readMemory(child.pid)?.rss ?? 0;
        clearTimeout(timer);
        sent = performance.now();
        timer = setTimeout(
          () =>
            finish(
              new InferrerError('MODEL_TOO_COSTLY', `validating the model took longer than ${limits.timeoutMs} ms (VALIDATION_TIMEOUT_MS)`, {
                limit: 'VALIDATION_TIMEOUT_MS',
                limit_ms: limits.timeoutMs,
                file_bytes: size,
              }),
            ),
          limits.timeoutMs,
        );
        child.send({ file, folder, config });
        return;
      }
      // Read the high-water mark before the child goes: a spike between two samples counts too.
      const used = measure() ?? peak;
      if (used > allowance) return finish(overMemory(used));
      const ms = Math.round(performance.now() - sent);
      if ('ok' in msg) {
        const peakBytes = Math.max(0, used);
        const residentBytes = Math.min(peakBytes, Math.max(0, Math.round(msg.residentBytes)));
        log.info('model validated', { bytes: size, memoryMb: mb(used), residentMb: mb(residentBytes), ms, startupMs: Math.round(sent - started) });
        finish(undefined, { ...msg.ok, cost: { memory_bytes: peakBytes, resident_bytes: residentBytes, ms } });
        return;
      }
      if (msg.detail) log.error('validation failed unexpectedly', { detail: msg.detail });
      finish(fromWire(msg.error));
    });
    child.on('error', (err) => {
      log.error('validation process failed', { err });
      if (settled) return;
      finish(new InferrerError('INTERNAL', 'the validation process could not run', {}, { cause: err }));
      // A child that never started emits no exit.
      if (child.pid === undefined) child.emit('exit', null, null);
    });
    child.on('exit', (code, signal) => {
      if (settled) return;
      if (/heap out of memory|Reached heap limit/i.test(stderr)) return finish(overMemory(limits.maxMemoryMb * MB));
      log.warn('validation process died', { code, signal, stderr: stderr.slice(-2000) });
      finish(new InferrerError('INVALID_MODEL', `ONNX Runtime crashed while opening the model (${signal ?? `exit code ${code}`})`, { signal, code }));
    });
  });
}

/** Node options of the child: the TypeScript loader where the child is TypeScript, and the heap ceiling. */
function childExecArgv(maxMemoryMb: number): string[] {
  // --expose-gc: the child collects before each reading of what the session holds (validate-child.ts).
  const args = [`--max-old-space-size=${maxMemoryMb}`, '--expose-gc'];
  if (CHILD.endsWith('.ts')) {
    let tsx = 'tsx';
    try {
      tsx = import.meta.resolve('tsx');
    } catch {
      // resolved by node from the working directory
    }
    args.unshift('--import', tsx);
  }
  return args;
}

/** RSS and its high-water mark in bytes (Linux /proc), or undefined where not available. */
function readMemory(pid: number | undefined): { rss: number; hwm: number } | undefined {
  if (pid === undefined) return undefined;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /VmRSS:\s+(\d+) kB/.exec(status);
    const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
    if (!rss || !hwm) return undefined;
    return { rss: Number(rss[1]) * 1024, hwm: Number(hwm[1]) * 1024 };
  } catch {
    return undefined;
  }
}

function reap(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

const mb = (bytes: number): number => Math.round(bytes / MB);
const sizeText = (bytes: number): string => (bytes < MB ? `${bytes}-byte` : `${(bytes / MB).toFixed(1)} MB`);
