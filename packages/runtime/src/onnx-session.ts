/**
 * OnnxSession: one model version loaded into `instances` execution slots, each an ONNX Runtime session on
 * a runtime thread (session-threads.ts): a thread of its own per slot, or, when `threads` names a pool,
 * shared threads of that pool (one slot per thread). `run` sends tensors to an idle slot (moving their
 * buffers, not copying) and queues in arrival order when every slot is busy.
 */
import * as ort from 'onnxruntime-node';
import { InferrerError, type ModelSignature, type NamedTensors, type Tensor, datatypeOfOrt } from '@inferrer/core';
import { knownOutputBytes } from './output-size.ts';
import { inlineRuntime } from './inline-runtime.ts';
import { type RuntimeThread, SessionCreateError, SessionThread, type SessionThreads } from './session-threads.ts';

// ONNX Runtime 1.30's Linux build records usage telemetry (a device id, the OS, the program's path, session
// and error events) in a local store for upload to Microsoft, and leaves /tmp/mat-debug-<pid>.log behind every
// process. A model server has no business reporting on its operator's models: it is off unless the environment
// sets ORT_DISABLE_TELEMETRY itself. ONNX Runtime reads it when its environment is created, with the first
// session, after this module has run (and before any runtime thread is started: they share the process's).
process.env.ORT_DISABLE_TELEMETRY ??= '1';

export type ExecutionProvider = 'cpu' | 'cuda';
export type GraphOptimizationLevel = 'disabled' | 'basic' | 'extended' | 'all';

export interface SessionConfig {
  instances: number;
  intraOpThreads: number;
  interOpThreads: number;
  graphOptimizationLevel: GraphOptimizationLevel;
  executionProviders: ExecutionProvider[];
  /** Shared runtime threads to put the slots on; absent: a thread of its own per slot. */
  threads?: SessionThreads | undefined;
  /** One slot on the worker's own thread (inline-runtime.ts) instead of a runtime thread; `instances` is then 1. */
  inline?: boolean | undefined;
  /**
   * With `inline`: models of one structure share their template's session, their weights fed as inputs
   * (shared-graph.ts, the model config's `shared_graph`).
   */
  sharedGraph?: boolean | undefined;
  /**
   * Bytes this process may still take under its memory ceiling (PROCESS_MEMORY_BYTES), read when a run's
   * outputs are large; absent: no ceiling. A run whose known outputs need more than that twice over is
   * refused before it runs (outputSizeError).
   */
  memoryRoom?: (() => number) | undefined;
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
  thread: RuntimeThread;
  /** The session's id on its thread. */
  sid: number;
  /** A run in flight, or the session being created again after its thread died. */
  busy: boolean;
  stopListening: () => void;
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
  /** The pool the slots' threads belong to; undefined: each slot's thread is its own. */
  readonly #pool: SessionThreads | undefined;
  readonly #memoryRoom: (() => number) | undefined;
  #closed = false;
  /** Runs on its structure's template session with its weights as inputs (SessionConfig.sharedGraph), no session of its own. */
  shared = false;
  /** Its first run needs no warming: a shared model whose template has run already. */
  warm = false;
  /** Called whenever a slot becomes free (the batcher cuts its next batch then). */
  onIdle: (() => void) | undefined;

  private constructor(
    file: string,
    options: ort.InferenceSession.SessionOptions,
    signature: ModelSignature,
    slots: { thread: RuntimeThread; sid: number }[],
    pool: SessionThreads | undefined,
    memoryRoom: (() => number) | undefined,
  ) {
    this.file = file;
    this.#options = options;
    this.#memoryRoom = memoryRoom;
    this.signature = signature;
    this.#pool = pool;
    this.#slots = slots.map(({ thread, sid }) => {
      const slot: Slot = { thread, sid, busy: false, stopListening: () => undefined };
      slot.stopListening = thread.onRestart(() => this.#recreate(slot));
      return slot;
    });
  }

  /** Creates a session on every slot's thread and resolves once all have it. */
  static async load(file: string, config: Partial<SessionConfig> = {}): Promise<OnnxSession> {
    const cfg = { ...DEFAULT_SESSION_CONFIG, ...config };
    const options = ortOptions(cfg);
    const pool = cfg.inline ? undefined : cfg.threads;
    const threads: RuntimeThread[] = cfg.inline
      ? [inlineRuntime]
      : pool
        ? pool.place(cfg.instances)
        : Array.from({ length: cfg.instances }, () => new SessionThread());
    const created = await Promise.allSettled(
      threads.map((t) => (t === inlineRuntime ? inlineRuntime.create(file, options, cfg.sharedGraph === true) : t.create(file, options))),
    );
    const failed = created.find((s) => s.status === 'rejected');
    if (failed) {
      await Promise.all(created.map((s, i) => (s.status === 'fulfilled' ? threads[i]!.release(s.value.sid) : undefined)));
      if (pool) pool.free(threads);
      else await Promise.all(threads.map((t) => t.close()));
      throw createError((failed as PromiseRejectedResult).reason, options);
    }
    const ok = created as PromiseFulfilledResult<{ sid: number; signature: ModelSignature; shared?: boolean; warm?: boolean }>[];
    const session = new OnnxSession(
      file,
      options,
      ok[0]!.value.signature,
      ok.map((s, i) => ({ thread: threads[i]!, sid: s.value.sid })),
      pool,
      cfg.memoryRoom,
    );
    session.shared = ok[0]!.value.shared === true;
    session.warm = ok[0]!.value.warm === true;
    return session;
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
   * Waits for runs in flight and queued, then frees every slot's ONNX Runtime session (the model's native
   * memory) and stops the threads that were its own. Resolves with the number of slots whose session was
   * released (a thread that does not answer within STOP_MS is terminated instead).
   */
  async dispose(): Promise<number> {
    if (this.#closed) return 0;
    this.#closed = true;
    while (this.busy > 0 || this.#waiting.length > 0) await new Promise((r) => setTimeout(r, 5));
    for (const slot of this.#slots) slot.stopListening();
    const released = await Promise.all(this.#slots.map((s) => s.thread.release(s.sid, STOP_MS)));
    if (this.#pool) this.#pool.free(this.#slots.map((s) => s.thread));
    else await Promise.all(this.#slots.map((s) => s.thread.close()));
    return released.filter(Boolean).length;
  }

  #dispatch(slot: Slot, job: Waiting): void {
    slot.busy = true;
    const refused = this.#memoryRoom && outputSizeError(this.signature, job, this.#memoryRoom);
    if (refused) {
      // Answered as a run is, later and with the slot free again (the batcher is not re-entered).
      queueMicrotask(() => {
        this.#release(slot);
        job.reject(refused);
      });
      return;
    }
    slot.thread.run(slot.sid, job.feeds, job.fetches).then(
      (r) => {
        const err = 'error' in r ? runError(r.error) : undefined;
        // The session's memory arena grows its next region to the size that failed, and would take what
        // is left under the worker's ceiling at its next extension: a fresh session starts small again.
        // (A shared model's arena is its template's, which its other models use: not renewed for one of them.)
        if (err?.code === 'INFERENCE_TOO_COSTLY' && !this.shared) this.#renew(slot);
        else this.#release(slot);
        if (err) job.reject(err);
        else job.resolve(r as RunResult);
      },
      (err: unknown) => {
        // The thread died during the run: the slot frees once its session is created again.
        job.reject(err);
      },
    );
  }

  #release(slot: Slot): void {
    slot.busy = false;
    const next = this.#waiting.shift();
    if (next) this.#dispatch(slot, next);
    else this.onIdle?.();
  }

  /** Replaces the slot's session with a new one of the same model (its memory arena released), then takes work. */
  #renew(slot: Slot): void {
    const create = (): void => {
      if (this.#closed) {
        this.#release(slot);
        return;
      }
      slot.thread.create(this.file, this.#options).then(
        ({ sid }) => {
          slot.sid = sid;
          this.#release(slot);
        },
        (err: unknown) => {
          // The runtime refused (memory still taken by other runs): try again. A thread that died instead
          // restarts and calls back through #recreate.
          if (err instanceof SessionCreateError) setTimeout(create, RENEW_RETRY_MS).unref();
        },
      );
    };
    void slot.thread.release(slot.sid, STOP_MS).then(create);
  }

  /** The slot's thread died and was started again: create the session there again, then take work. */
  #recreate(slot: Slot): void {
    slot.busy = true;
    slot.thread.create(this.file, this.#options).then(
      ({ sid }) => {
        slot.sid = sid;
        this.#release(slot);
      },
      () => {
        // The model loaded before, so this is the thread failing again: it restarts and calls back.
      },
    );
  }
}

/** A failed session creation as an InferrerError: the provider's failure, or the model's. */
function createError(err: unknown, options: ort.InferenceSession.SessionOptions): InferrerError {
  if (!(err instanceof SessionCreateError))
    return err instanceof InferrerError
      ? err
      : new InferrerError('MODEL_LOAD_FAILED', `the runtime thread failed while loading: ${(err as Error).message}`, {}, { cause: err });
  const message = err.message;
  // The binding lists every provider it was built with (cuda on any linux x64), even when the provider
  // libraries are not installed; that failure is the worker's, not the model's.
  const wanted = (options.executionProviders ?? []).map((p) => (typeof p === 'string' ? p : p.name)).filter((p) => p !== 'cpu');
  if (wanted.length > 0 && PROVIDER_FAILURE.test(message)) {
    return new InferrerError(
      'PROVIDER_UNAVAILABLE',
      `execution provider '${wanted.join(', ')}' could not be started on this worker: ${message.slice(0, 500)}`,
      { provider: wanted[0] },
    );
  }
  return new InferrerError('INVALID_MODEL', `ONNX Runtime cannot create a session for this model: ${message.slice(0, 500)}`);
}

/**
 * Inputs of zeros for one warm-up run (dynamic dimensions as 1), or undefined when an input has a type
 * no tensor can carry. The first run of a session pays for lazy initialisation (and its memory).
 */
export function zeroFeeds(signature: ModelSignature): NamedTensors | undefined {
  const feeds: NamedTensors = {};
  for (const spec of signature.inputs) {
    const dims = spec.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : 1));
    const n = dims.reduce((a, b) => a * b, 1);
    const info = datatypeOfOrt(spec.type);
    if (!info) return undefined;
    const data = info.array ? new info.array(n) : new Array<string>(n).fill('');
    feeds[spec.name] = { type: spec.type, dims, data } as Tensor;
  }
  return feeds;
}

/** How long a slot's thread has to release its session before it is given up on (terminated, or left). */
const STOP_MS = 5000;
/** How long a slot waits before it tries again to create the session it is renewing. */
const RENEW_RETRY_MS = 1000;

/**
 * ONNX Runtime's own messages for bad feeds are input errors, not server errors; so is a run whose
 * allocation failed: the worker's memory is capped (PROCESS_MEMORY_BYTES), and a tensor that does not fit
 * is one whose size the request's values chose (an Expand, Tile or ConstantOfShape to a shape it sent).
 */
function runError(message: string): InferrerError {
  if (ALLOCATION_FAILURE.test(message)) {
    const requested = /requested buffer of size (\d+)/.exec(message)?.[1];
    return new InferrerError(
      'INFERENCE_TOO_COSTLY',
      `running the model on this input needs more memory than this worker may take (PROCESS_MEMORY_BYTES)${requested ? `: a tensor of ${requested} bytes could not be allocated` : ''}`,
      { limit: 'PROCESS_MEMORY_BYTES', ...(requested ? { requested_bytes: Number(requested) } : {}) },
    );
  }
  if (
    /invalid (rank|dimensions?|shape)|got invalid dimensions|unexpected input data type|input .* not found|is missing in 'feeds'|Invalid Feed Input|type mismatch|expected: \(/i.test(
      message,
    )
  ) {
    return new InferrerError('INVALID_INPUT', `the runtime rejected the input: ${message.slice(0, 500)}`);
  }
  return new InferrerError('INFERENCE_FAILED', `the runtime failed to run the model: ${message.slice(0, 500)}`);
}

/** Outputs smaller than this are not weighed against the memory left (reading it costs a file read). */
const WEIGHED_OUTPUT_BYTES = 16 * 2 ** 20;

/**
 * A run whose outputs would not fit twice in the memory the process has left: ONNX Runtime allocates each
 * output, then onnxruntime-node copies it into a new JavaScript buffer, and V8 ends the process (not the
 * run) when that allocation fails. Only outputs whose size the request's input dims fix are known before
 * the run (output-size.ts); one whose size its values choose fails inside ONNX Runtime instead, where a
 * failed allocation is only the run's error.
 */
function outputSizeError(sig: ModelSignature, job: Waiting, memoryRoom: () => number): InferrerError | undefined {
  const size = knownOutputBytes(sig, job.feeds, job.fetches);
  if (size.bytes < WEIGHED_OUTPUT_BYTES) return undefined;
  // ONNX Runtime's arena grows by powers of two (its default extend strategy), so an output may take up to
  // the next power of two of its size in the runtime, and its own size again as a JavaScript buffer.
  const needed = 2 ** Math.ceil(Math.log2(size.bytes)) + size.bytes;
  const room = memoryRoom();
  if (needed <= room) return undefined;
  const { name, dims } = size.largest!;
  return new InferrerError(
    'INFERENCE_TOO_COSTLY',
    `running the model on this input makes outputs of ${size.bytes} bytes (the largest, '${name}', of shape [${dims.join(', ')}]), and the runtime's memory arena (which grows by powers of two) and the copy out of it need ${needed} bytes: more than the ${Math.max(0, room)} bytes this worker has left under PROCESS_MEMORY_BYTES`,
    { limit: 'PROCESS_MEMORY_BYTES', output: name, output_bytes: size.bytes, needed_bytes: needed, available_bytes: Math.max(0, room) },
  );
}

/** An allocation that failed: ONNX Runtime's (arena or allocator), the C++ runtime's, or V8's for an output's buffer. */
const ALLOCATION_FAILURE = /Failed to allocate memory|std::bad_alloc|Array buffer allocation failed/i;

/** ONNX Runtime's messages when an execution provider library or its device cannot be used. */
const PROVIDER_FAILURE = /AppendExecutionProvider|libonnxruntime_providers_|no CUDA-capable device|CUDA driver version is insufficient/i;
