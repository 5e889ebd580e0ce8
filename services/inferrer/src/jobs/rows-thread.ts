/**
 * Job rows prepared off the event loop. `prepareRows` reads each NDJSON or CSV line whole and checks it
 * before the next: a job of ordinary rows yields between lines, but one line of 20 MB (5 million CSV
 * fields) kept the Inferrer's event loop for 13 s (2.3 s as NDJSON), and no other client was answered
 * meanwhile, health checks included. So rows are prepared on a thread of their own (rows-worker.mjs),
 * started with the first job and kept; a thread that fails is started again for the next.
 */
import { Worker } from 'node:worker_threads';
import { type ErrorCode, InferrerError } from '@inferrer/core';
import type { InputLimits, PreparedItems } from './job-input.ts';

const WORKER_URL = new URL('./rows-worker.mjs', import.meta.url);

type Prepared = PreparedItems & { offsets: number[] };

interface WireFailure {
  inferrer: boolean;
  code?: string;
  message: string;
  details?: Record<string, unknown>;
  retryAfter?: number;
}

interface Pending {
  resolve: (p: Prepared) => void;
  reject: (err: Error) => void;
}

export class RowsThread {
  #worker: Worker | undefined;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;

  /** prepareRows (job-input.ts) on the rows thread. */
  prepare(input: string, itemsFile: string, format: 'ndjson' | 'csv', limits: InputLimits): Promise<Prepared> {
    const worker = this.#start();
    const id = this.#nextId++;
    return new Promise<Prepared>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      worker.ref();
      worker.postMessage({ id, input, itemsFile, format, limits });
    });
  }

  async close(): Promise<void> {
    const w = this.#worker;
    this.#worker = undefined;
    await w?.terminate();
  }

  #start(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(WORKER_URL);
    worker.unref();
    worker.on('message', (msg: { id: number; ok?: Prepared; error?: WireFailure }) => {
      const p = this.#pending.get(msg.id);
      if (!p) return;
      this.#pending.delete(msg.id);
      if (this.#pending.size === 0) worker.unref();
      if (msg.error) p.reject(revive(msg.error));
      else p.resolve(msg.ok!);
    });
    const fail = (err: Error): void => {
      if (this.#worker === worker) this.#worker = undefined;
      const pending = [...this.#pending.values()];
      this.#pending.clear();
      for (const p of pending) p.reject(new InferrerError('INTERNAL', 'the thread that prepares job rows failed', {}, { cause: err }));
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the rows thread exited with code ${code}`)));
    this.#worker = worker;
    return worker;
  }
}

/** The error the thread sent, as the one prepareRows threw (an InferrerError, or a file-system error with its code). */
function revive(e: WireFailure): Error {
  if (e.inferrer && e.code) {
    return new InferrerError(e.code as ErrorCode, e.message, e.details ?? {}, e.retryAfter === undefined ? {} : { retryAfter: e.retryAfter });
  }
  return Object.assign(new Error(e.message), e.code === undefined ? {} : { code: e.code });
}
