/**
 * OnnxSession: one model version loaded into `instances` execution slots, each a worker thread with its
 * own ONNX Runtime session. `run` sends tensors to an idle slot (moving their buffers, not copying) and
 * queues in arrival order when every slot is busy.
 */
import { Worker } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { InferrerError, type ModelSignature, type NamedTensors, type TensorSpec } from '@inferrer/core';

const WORKER_URL = new URL('./session-worker.mjs', import.meta.url);

export type ExecutionProvider = 'cpu' | 'cuda';
export type GraphOptimizationLevel = 'disabled' | 'basic' | 'extended' | 'all';

export interface SessionConfig {
  instances: number;
  intraOpThreads: number;
  interOpThreads: number;
  graphOptimizationLevel: GraphOptimizationLevel;
  executionProviders: ExecutionProvider[];
}

export const DEFAULT_SESSION_CONFIG: SessionConfig = Object.freeze({
  instances: 1,
  intraOpThreads: 1,
  interOpThreads: 1,
  graphOptimizationLevel: 'all',
  executionProviders: ['cpu'],
}) as SessionConfig;

export interface RunResult {
  outputs: NamedTensors;
  computeMs: number;
}

interface Slot {
  worker: Worker;
  busy: boolean;
  pending?: { resolve: (r: RunResult) => void; reject: (e: unknown) => void; id: number };
}

interface Waiting {
  feeds: NamedTensors;
  fetches: string[] | undefined;
  resolve: (r: RunResult) => void;
  reject: (e: unknown) => void;
}

/** The execution providers this onnxruntime-node build offers. */
export function supportedProviders(): string[] {
  try {
    return (ort as unknown as { listSupportedBackends?: () => { name: string }[] }).listSupportedBackends?.().map((b) => b.name) ?? ['cpu'];
  } catch {
    return ['cpu'];
  }
}

function ortOptions(cfg: SessionConfig): ort.InferenceSession.SessionOptions {
  const available = supportedProviders();
  for (const p of cfg.executionProviders) {
    if (!available.includes(p)) {
      throw new InferrerError(
        'PROVIDER_UNAVAILABLE',
        `execution provider '${p}' is not available on this worker (available: ${available.join(', ')}); see docs/gpu.md for the CUDA install`,
        { provider: p, available },
      );
    }
  }
  return {
    intraOpNumThreads: cfg.intraOpThreads,
    interOpNumThreads: cfg.interOpThreads,
    graphOptimizationLevel: cfg.graphOptimizationLevel,
    executionProviders: cfg.executionProviders,
  };
}

export class OnnxSession {
  readonly signature: ModelSignature;
  readonly file: string;
  readonly #slots: Slot[];
  readonly #waiting: Waiting[] = [];
  readonly #options: ort.InferenceSession.SessionOptions;
  #nextId = 1;
  #closed = false;
  /** Called whenever a slot becomes free (the batcher cuts its next batch then). */
  onIdle: (() => void) | undefined;

  private constructor(file: string, options: ort.InferenceSession.SessionOptions, signature: ModelSignature, slots: Slot[]) {
    this.file = file;
    this.#options = options;
    this.signature = signature;
    this.#slots = slots;
    for (const slot of slots) this.#wire(slot);
  }

  /** Starts every slot and resolves once all have created their session. */
  static async load(file: string, config: Partial<SessionConfig> = {}): Promise<OnnxSession> {
    const cfg = { ...DEFAULT_SESSION_CONFIG, ...config };
    const options = ortOptions(cfg);
    const started = await Promise.allSettled(Array.from({ length: cfg.instances }, () => startWorker(file, options)));
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) {
      for (const s of started) if (s.status === 'fulfilled') void s.value.worker.terminate();
      throw (failed as PromiseRejectedResult).reason;
    }
    const ok = started as PromiseFulfilledResult<{ worker: Worker; signature: ModelSignature }>[];
    return new OnnxSession(
      file,
      options,
      ok[0]!.value.signature,
      ok.map((s) => ({ worker: s.value.worker, busy: false })),
    );
  }

  get instances(): number {
    return this.#slots.length;
  }

  /** Slots with no run in flight. */
  get idle(): number {
    let n = 0;
    for (const s of this.#slots) if (!s.busy) n++;
    return n;
  }

  get busy(): number {
    return this.#slots.length - this.idle;
  }

  run(feeds: NamedTensors, fetches?: string[]): Promise<RunResult> {
    if (this.#closed) return Promise.reject(new InferrerError('MODEL_NOT_READY', 'the model session was unloaded'));
    return new Promise((resolve, reject) => {
      const slot = this.#slots.find((s) => !s.busy);
      if (slot) this.#dispatch(slot, { feeds, fetches, resolve, reject });
      else this.#waiting.push({ feeds, fetches, resolve, reject });
    });
  }

  /**
   * Waits for runs in flight and queued, then stops every slot: each thread releases its ONNX Runtime
   * session (freeing the model's native memory) and exits; one that does not within STOP_MS is terminated.
   * Resolves with the number of slots whose session was released.
   */
  async dispose(): Promise<number> {
    this.#closed = true;
    while (this.busy > 0 || this.#waiting.length > 0) await new Promise((r) => setTimeout(r, 5));
    const released = await Promise.all(this.#slots.map((s) => stopWorker(s.worker)));
    return released.filter(Boolean).length;
  }

  #dispatch(slot: Slot, job: Waiting): void {
    const id = this.#nextId++;
    slot.busy = true;
    slot.pending = { id, resolve: job.resolve, reject: job.reject };
    const transfer: ArrayBuffer[] = [];
    const wire: Record<string, unknown> = {};
    for (const [name, t] of Object.entries(job.feeds)) {
      const d = t.data;
      if (ArrayBuffer.isView(d) && d.byteOffset === 0 && d.byteLength === d.buffer.byteLength && d.buffer instanceof ArrayBuffer && !transfer.includes(d.buffer)) {
        transfer.push(d.buffer);
      }
      wire[name] = { type: t.type, dims: t.dims, data: d };
    }
    try {
      slot.worker.postMessage({ id, feeds: wire, fetches: job.fetches }, transfer);
    } catch (err) {
      slot.busy = false;
      slot.pending = undefined;
      job.reject(new InferrerError('INFERENCE_FAILED', `could not send the inputs to the runtime: ${(err as Error).message}`, {}, { cause: err }));
    }
  }

  #release(slot: Slot): void {
    slot.busy = false;
    slot.pending = undefined;
    const next = this.#waiting.shift();
    if (next) this.#dispatch(slot, next);
    else this.onIdle?.();
  }

  #wire(slot: Slot): void {
    slot.worker.on('message', (msg: { id: number; outputs?: NamedTensors; computeMs?: number; error?: string }) => {
      const p = slot.pending;
      if (!p || p.id !== msg.id) return;
      this.#release(slot);
      if (msg.error !== undefined) p.reject(runError(msg.error));
      else p.resolve({ outputs: msg.outputs!, computeMs: msg.computeMs ?? 0 });
    });
    slot.worker.on('error', (err) => {
      const p = slot.pending;
      if (p) p.reject(new InferrerError('INFERENCE_FAILED', `the runtime thread failed: ${err.message}`, {}, { cause: err }));
    });
    slot.worker.on('exit', () => {
      const p = slot.pending;
      slot.pending = undefined;
      if (p) p.reject(new InferrerError('INFERENCE_FAILED', 'the runtime thread exited during a run'));
      if (!this.#closed) {
        // Replace a thread that died so the model keeps its capacity.
        slot.busy = true;
        void startWorker(this.file, this.#options)
          .then(({ worker }) => {
            slot.worker = worker;
            this.#wire(slot);
            this.#release(slot);
          })
          .catch(() => {});
      }
    });
  }
}

/** How long a slot's thread has to release its session and exit before it is terminated. */
const STOP_MS = 5000;

/** Asks a thread to release its session and exit; resolves true once it has released it, false if it had to be terminated. */
function stopWorker(worker: Worker): Promise<boolean> {
  return new Promise((resolve) => {
    let released = false;
    const timer = setTimeout(() => void worker.terminate().finally(() => resolve(false)), STOP_MS);
    timer.unref();
    worker.on('message', (msg: { type?: string }) => {
      if (msg.type === 'released') released = true;
    });
    worker.once('exit', () => {
      clearTimeout(timer);
      resolve(released);
    });
    worker.postMessage({ type: 'dispose' });
  });
}

/** ONNX Runtime's own messages for bad feeds are input errors, not server errors. */
function runError(message: string): InferrerError {
  if (/invalid (rank|dimensions?|shape)|got invalid dimensions|unexpected input data type|input .* not found|is missing in 'feeds'|Invalid Feed Input|type mismatch|expected: \(/i.test(message)) {
    return new InferrerError('INVALID_INPUT', `the runtime rejected the input: ${message.slice(0, 500)}`);
  }
  return new InferrerError('INFERENCE_FAILED', `the runtime failed to run the model: ${message.slice(0, 500)}`);
}

/** ONNX Runtime's messages when an execution provider library or its device cannot be used. */
const PROVIDER_FAILURE = /AppendExecutionProvider|libonnxruntime_providers_|no CUDA-capable device|CUDA driver version is insufficient/i;

function startWorker(file: string, options: ort.InferenceSession.SessionOptions): Promise<{ worker: Worker; signature: ModelSignature }> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER_URL, { workerData: { file, options } });
    const onMessage = (msg: { type: string; message?: string; inputs?: TensorSpec[]; outputs?: TensorSpec[] }): void => {
      worker.off('message', onMessage);
      worker.off('error', onError);
      if (msg.type === 'ready') {
        resolve({ worker, signature: { inputs: msg.inputs!, outputs: msg.outputs! } });
      } else {
        void worker.terminate();
        const message = String(msg.message);
        // The binding lists every provider it was built with (cuda on any linux x64), even when the provider
        // libraries are not installed; that failure is the worker's, not the model's.
        const wanted = (options.executionProviders ?? []).map((p) => (typeof p === 'string' ? p : p.name)).filter((p) => p !== 'cpu');
        if (wanted.length > 0 && PROVIDER_FAILURE.test(message)) {
          reject(
            new InferrerError('PROVIDER_UNAVAILABLE', `execution provider '${wanted.join(', ')}' could not be started on this worker: ${message.slice(0, 500)}`, {
              provider: wanted[0],
            }),
          );
        } else reject(new InferrerError('INVALID_MODEL', `ONNX Runtime cannot create a session for this model: ${message.slice(0, 500)}`));
      }
    };
    const onError = (err: Error): void => {
      worker.off('message', onMessage);
      reject(new InferrerError('MODEL_LOAD_FAILED', `the runtime thread failed while loading: ${err.message}`, {}, { cause: err }));
    };
    worker.on('message', onMessage);
    worker.once('error', onError);
  });
}
