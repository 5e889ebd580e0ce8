/**
 * Runtime threads (session-worker.mjs): each holds ONNX Runtime sessions and runs them one at a time.
 *
 * A thread costs far more than a small model: its own V8 isolate and onnxruntime-node binding (about
 * 13 MB resident and most of a second to start on a busy 2-core machine), where a session of a 1 MB MLP
 * costs about 1 MB and 20 ms on a thread that is already running. So a worker that holds hundreds of
 * models shares a few threads between them: `SessionThreads` is that pool, and an OnnxSession loaded with
 * `threads` puts each of its execution slots on a different thread of the pool (the least busy ones).
 * Without a pool, each slot gets a thread of its own, stopped with the session.
 *
 * A thread that dies (a native failure) fails the runs it had, is started again, and the sessions it held
 * are created again on it (`onRestart`).
 */
import { Worker } from 'node:worker_threads';
import { InferrerError, type ModelSignature, type NamedTensors, type TensorSpec } from '@inferrer/core';

const WORKER_URL = new URL('./session-worker.mjs', import.meta.url);

/** An ONNX model of one Identity node (float [1] → float [1]): creating it pays a thread's one-time runtime costs. */
const WARM_UP_MODEL = Buffer.from('CAg6OgoQCgF4EgF5IghJZGVudGl0eRIEd2FybVoPCgF4EgoKCAgBEgQKAggBYg8KAXkSCgoICAESBAoCCAFCBAoAEA0=', 'base64');

type Reply = { id: number; error?: string; sid?: number; inputs?: TensorSpec[]; outputs?: NamedTensors | TensorSpec[]; computeMs?: number };

interface Pending {
  kind: 'create' | 'run' | 'release';
  /** When it was sent (performance.now()). */
  since: number;
  resolve: (reply: Reply) => void;
  reject: (err: unknown) => void;
}

/** Every thread not yet closed, for `longestRunMs`. */
const live = new Set<SessionThread>();

/**
 * How long the oldest run still in flight on any runtime thread of this process has been running, ms (0:
 * none). ONNX Runtime cannot be told to stop a run once it started (onnxruntime-node has no terminate
 * flag, and a thread in native code does not see `terminate()`), so a run that does not end — a Loop whose
 * trip count the request sent — holds its thread, a core, and every session on that thread, until the
 * process ends; the modelhost watches this figure and restarts itself past RUN_TIMEOUT_MS.
 */
export function longestRunMs(now = performance.now()): number {
  let oldest = now;
  for (const t of live) oldest = Math.min(oldest, t.oldestRun() ?? now);
  return now - oldest;
}

/** Thrown by `create` with ONNX Runtime's own message: the caller says what it means (bad model, provider). */
export class SessionCreateError extends Error {}

/** Where an execution slot's session lives and runs: a runtime thread, or the worker's own (inline-runtime.ts). */
export interface RuntimeThread {
  /** Sessions placed here (a pool places new ones on the least busy thread). */
  sessions: number;
  create(file: string | Uint8Array, options: object): Promise<{ sid: number; signature: ModelSignature }>;
  run(sid: number, feeds: NamedTensors, fetches: string[] | undefined): Promise<{ outputs: NamedTensors; computeMs: number } | { error: string }>;
  release(sid: number, timeoutMs?: number): Promise<boolean>;
  onRestart(listener: () => void): () => void;
  close(): Promise<void>;
}

export class SessionThread implements RuntimeThread {
  #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  readonly #restartListeners = new Set<() => void>();
  #nextId = 1;
  #closed = false;
  /** When the thread last answered (performance.now()). */
  #answeredAt = 0;
  /** Sessions placed on this thread (the pool places new ones on the least busy thread). */
  sessions = 0;

  constructor() {
    this.#worker = this.#start();
    live.add(this);
  }

  /**
   * When the run this thread is on now started (performance.now()), if it is on one. The thread takes its
   * messages one at a time in the order sent, so what it is on is the oldest one unanswered, started when
   * it was sent or when the one before it was answered, whichever came later: a run waiting behind others
   * (the shared threads hold many models) is not counted as running.
   */
  oldestRun(): number | undefined {
    let oldest: Pending | undefined;
    for (const p of this.#pending.values()) if (oldest === undefined || p.since < oldest.since) oldest = p;
    return oldest?.kind === 'run' ? Math.max(oldest.since, this.#answeredAt) : undefined;
  }

  /** Creates a session for `file` (a path, or the model's bytes); resolves with its id on this thread and its signature. */
  async create(file: string | Uint8Array, options: object): Promise<{ sid: number; signature: ModelSignature }> {
    const reply = await this.#send({ type: 'create', file, options }, 'create');
    if (reply.error !== undefined) throw new SessionCreateError(reply.error);
    return { sid: reply.sid!, signature: { inputs: reply.inputs as TensorSpec[], outputs: reply.outputs as TensorSpec[] } };
  }

  /** Runs a session; input buffers that a tensor owns whole are moved to the thread, not copied. */
  async run(sid: number, feeds: NamedTensors, fetches: string[] | undefined): Promise<{ outputs: NamedTensors; computeMs: number } | { error: string }> {
    const transfer: ArrayBuffer[] = [];
    const wire: Record<string, unknown> = {};
    for (const name in feeds) {
      const t = feeds[name]!;
      const d = t.data;
      if (
        ArrayBuffer.isView(d) &&
        d.byteOffset === 0 &&
        d.byteLength === d.buffer.byteLength &&
        d.buffer instanceof ArrayBuffer &&
        !transfer.includes(d.buffer)
      ) {
        transfer.push(d.buffer);
      }
      wire[name] = { type: t.type, dims: t.dims, data: d };
    }
    const reply = await this.#send({ type: 'run', sid, feeds: wire, fetches }, 'run', transfer);
    if (reply.error !== undefined) return { error: reply.error };
    return { outputs: reply.outputs as NamedTensors, computeMs: reply.computeMs ?? 0 };
  }

  /** Frees a session's memory; resolves true once the thread has, false if it did not answer within `timeoutMs`. */
  async release(sid: number, timeoutMs = 5000): Promise<boolean> {
    if (this.#closed) return false;
    let timer: NodeJS.Timeout | undefined;
    const answered = this.#send({ type: 'release', sid }, 'release').then(
      (reply) => reply.id !== 0,
      () => false,
    );
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
      timer.unref();
    });
    const released = await Promise.race([answered, late]);
    clearTimeout(timer);
    return released;
  }

  /** Called after the thread died and was started again: the sessions it held are gone. */
  onRestart(listener: () => void): () => void {
    this.#restartListeners.add(listener);
    return () => this.#restartListeners.delete(listener);
  }

  /** Stops the thread; what it still had to do fails. */
  async close(): Promise<void> {
    this.#closed = true;
    live.delete(this);
    await this.#worker.terminate();
  }

  #send(msg: Record<string, unknown>, kind: Pending['kind'], transfer: ArrayBuffer[] = []): Promise<Reply> {
    if (this.#closed) return Promise.reject(new InferrerError('MODEL_NOT_READY', 'the runtime thread was stopped'));
    const id = this.#nextId++;
    return new Promise<Reply>((resolve, reject) => {
      this.#pending.set(id, { kind, since: performance.now(), resolve, reject });
      try {
        this.#worker.postMessage({ ...msg, id }, transfer);
      } catch (err) {
        this.#pending.delete(id);
        reject(new InferrerError('INFERENCE_FAILED', `could not send the inputs to the runtime: ${(err as Error).message}`, {}, { cause: err }));
      }
    });
  }

  #start(): Worker {
    const worker = new Worker(WORKER_URL);
    let failure: Error | undefined;
    worker.on('message', (reply: Reply) => {
      this.#answeredAt = performance.now();
      const p = this.#pending.get(reply.id);
      if (!p) return;
      this.#pending.delete(reply.id);
      p.resolve(reply);
    });
    worker.on('error', (err) => {
      failure = err;
    });
    worker.on('exit', () => {
      if (this.#worker !== worker) return;
      const pending = [...this.#pending.values()];
      this.#pending.clear();
      for (const p of pending) {
        if (p.kind === 'create')
          p.reject(
            new InferrerError('MODEL_LOAD_FAILED', `the runtime thread failed while loading${failure ? `: ${failure.message}` : ''}`, {}, { cause: failure }),
          );
        else if (p.kind === 'run')
          p.reject(
            new InferrerError(
              'INFERENCE_FAILED',
              failure ? `the runtime thread failed: ${failure.message}` : 'the runtime thread exited during a run',
              {},
              { cause: failure },
            ),
          );
        else p.resolve({ id: 0 });
      }
      if (this.#closed) return;
      // Replace a thread that died so the sessions it held keep their capacity.
      this.#worker = this.#start();
      for (const listener of this.#restartListeners) listener();
    });
    return worker;
  }
}

/** A fixed set of shared runtime threads, started on first use. */
export class SessionThreads {
  readonly #threads: SessionThread[] = [];
  readonly size: number;

  constructor(size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`a pool of runtime threads needs at least one thread (got ${size})`);
    this.size = size;
  }

  /** `n` threads for the slots of one session: different threads where the pool has enough, least busy first. */
  place(n: number): SessionThread[] {
    while (this.#threads.length < Math.min(n, this.size) || (this.#threads.length < this.size && this.#threads.every((t) => t.sessions > 0))) {
      this.#threads.push(new SessionThread());
    }
    const order = [...this.#threads].sort((a, b) => a.sessions - b.sessions);
    const picked = Array.from({ length: n }, (_, i) => order[i % order.length]!);
    for (const t of picked) t.sessions++;
    return picked;
  }

  /** Gives back places taken by `place` (the session was released or never created). */
  free(threads: readonly RuntimeThread[]): void {
    for (const t of threads) t.sessions = Math.max(0, t.sessions - 1);
  }

  /**
   * Starts every thread and has each create (and free) a session of a one-node model, so that what the
   * first real model costs (time, memory) is its own and not the runtime's start-up.
   */
  async warm(): Promise<void> {
    while (this.#threads.length < this.size) this.#threads.push(new SessionThread());
    await Promise.all(
      this.#threads.map(async (t) => {
        const { sid } = await t.create(WARM_UP_MODEL, { intraOpNumThreads: 1, interOpNumThreads: 1 });
        await t.release(sid);
      }),
    );
  }

  /** Threads started so far. */
  get started(): number {
    return this.#threads.length;
  }

  async close(): Promise<void> {
    await Promise.all(this.#threads.map((t) => t.close()));
  }
}
