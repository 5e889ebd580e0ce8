/**
 * Which job runs next. Two implementations behind one interface; either way the job's state, input and
 * results live in the JobStore on the shared volume, and the queue holds only job ids:
 *
 * - RedisJobQueue (REDIS_URL set): BullMQ. Several Inferrers share the work; a job whose Inferrer dies
 *   is handed out again when its lock lapses (LOCK_MS, checked every STALLED_CHECK_MS); an Inferrer that
 *   stops hands its jobs back at once. Every RECONCILE_MS (and on start) the jobs the store says are queued
 *   or running are put back into Redis when Redis lost them (a restart without its append-only file).
 * - EmbeddedJobQueue (no REDIS_URL): an in-process FIFO filled from the store on start. One Inferrer only.
 */
import { Queue, WaitingError, Worker, type Job } from 'bullmq';
import type { Logger } from '@inferrer/telemetry';
import type { JobStore } from './job-store.ts';
import { ACTIVE_STATES } from './types.ts';

/** Runs one job to its end; resolves when it finished, failed, was cancelled, or `signal` aborted. */
export type JobProcessor = (id: string, signal: AbortSignal) => Promise<void>;

export interface JobQueue {
  readonly kind: 'redis' | 'embedded';
  /** One line for the logs and the launcher's banner. */
  readonly description: string;
  start(process: JobProcessor): Promise<void>;
  enqueue(id: string): Promise<void>;
  /** Drops a job that waits (after a cancel); a running one stops through its own check. */
  remove(id: string): Promise<void>;
  /** Stops taking jobs; running ones are aborted and handed back (Redis) or resumed at the next start (embedded). */
  close(): Promise<void>;
}

const POLL_MS = 5000;

export class EmbeddedJobQueue implements JobQueue {
  readonly kind = 'embedded';
  readonly description: string;
  readonly #store: JobStore;
  readonly #max: number;
  readonly #log: Logger;
  readonly #pending: string[] = [];
  readonly #running = new Map<string, AbortController>();
  #process: JobProcessor | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(store: JobStore, maxRunning: number, logger: Logger) {
    this.#store = store;
    this.#max = Math.max(1, maxRunning);
    this.#log = logger.child({ module: 'jobs-queue' });
    this.description = `embedded (no REDIS_URL: queue state in ${store.root}; run one Inferrer, or set REDIS_URL for several)`;
  }

  async start(process: JobProcessor): Promise<void> {
    this.#process = process;
    await this.#rescan();
    // Jobs another process put in the store (or whose enqueue was lost) are found again.
    this.#timer = setInterval(() => void this.#rescan().catch((err: unknown) => this.#log.error('jobs rescan failed', { err })), POLL_MS);
    this.#timer.unref();
  }

  async #rescan(): Promise<void> {
    for (const rec of await this.#store.list()) if (rec.state === 'QUEUED' || rec.state === 'RUNNING') this.#add(rec.id);
    this.#pump();
  }

  async enqueue(id: string): Promise<void> {
    this.#add(id);
    this.#pump();
  }

  #add(id: string): void {
    if (!this.#running.has(id) && !this.#pending.includes(id)) this.#pending.push(id);
  }

  async remove(id: string): Promise<void> {
    const k = this.#pending.indexOf(id);
    if (k >= 0) this.#pending.splice(k, 1);
  }

  #pump(): void {
    while (!this.#closed && this.#process && this.#running.size < this.#max && this.#pending.length > 0) {
      const id = this.#pending.shift()!;
      const ac = new AbortController();
      this.#running.set(id, ac);
      void this.#process(id, ac.signal)
        .catch((err: unknown) => this.#log.error('job processing failed; it is tried again on the next scan', { job: id, err }))
        .finally(() => {
          this.#running.delete(id);
          this.#pump();
        });
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    for (const ac of this.#running.values()) ac.abort(new Error('the Inferrer is stopping'));
  }
}

const QUEUE_NAME = 'inferrer-jobs';
/** A job whose Inferrer stopped renewing its lock (it died) goes back to the queue after this (plus ≤ STALLED_CHECK_MS). */
const LOCK_MS = 10_000;
const STALLED_CHECK_MS = 5_000;
const RECONCILE_MS = 10_000;

export class RedisJobQueue implements JobQueue {
  readonly kind = 'redis';
  readonly description: string;
  readonly #store: JobStore;
  readonly #max: number;
  readonly #log: Logger;
  readonly #connection: Record<string, unknown>;
  readonly #queue: Queue;
  #worker: Worker | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly #running = new Map<string, AbortController>();
  #closing = false;
  #lastError = 0;

  constructor(redisUrl: string, store: JobStore, maxRunning: number, logger: Logger) {
    this.#store = store;
    this.#max = Math.max(1, maxRunning);
    this.#log = logger.child({ module: 'jobs-queue' });
    this.#connection = redisOptions(redisUrl);
    const shown = new URL(redisUrl);
    shown.password = '';
    shown.username = '';
    this.description = `Redis (BullMQ) at ${shown.toString().replace(/\/$/, '')}`;
    this.#queue = new Queue(QUEUE_NAME, { connection: { ...this.#connection }, prefix: 'inferrer' });
    this.#queue.on('error', (err) => this.#error('jobs queue: Redis error', err));
  }

  #error(msg: string, err: unknown): void {
    // Redis down: ioredis retries for ever; one line every 10 s is enough.
    if (Date.now() - this.#lastError < 10_000) return;
    this.#lastError = Date.now();
    this.#log.warn(msg, { err: { message: (err as Error).message, code: (err as { code?: unknown }).code } });
  }

  async start(process: JobProcessor): Promise<void> {
    this.#worker = new Worker(
      QUEUE_NAME,
      async (job: Job<{ id: string }>, token?: string) => {
        const id = job.data.id;
        const ac = new AbortController();
        this.#running.set(id, ac);
        try {
          await process(id, ac.signal);
        } finally {
          this.#running.delete(id);
        }
        if (ac.signal.aborted && this.#closing && token) {
          // Stopping: hand the job back now rather than when its lock lapses.
          await job.moveToWait(token);
          throw new WaitingError();
        }
      },
      {
        connection: { ...this.#connection },
        prefix: 'inferrer',
        concurrency: this.#max,
        lockDuration: LOCK_MS,
        stalledInterval: STALLED_CHECK_MS,
        maxStalledCount: 1_000_000,
        autorun: true,
      },
    );
    this.#worker.on('error', (err) => this.#error('jobs worker: Redis error', err));
    this.#worker.on('failed', (job, err) => this.#log.error('job processing failed in the queue', { job: job?.id, err }));
    void this.#reconcile();
    this.#timer = setInterval(() => void this.#reconcile(), RECONCILE_MS);
    this.#timer.unref();
  }

  /** The store is the truth: a job it calls queued or running that Redis does not know is added again. */
  async #reconcile(): Promise<void> {
    try {
      for (const rec of await this.#store.list()) {
        if (!ACTIVE_STATES.has(rec.state) || rec.state === 'RECEIVING' || this.#running.has(rec.id)) continue;
        const job = await withTimeout(this.#queue.getJob(rec.id), 5000);
        if (!job) {
          this.#log.info('job back into the Redis queue', { job: rec.id, state: rec.state });
          await this.enqueue(rec.id);
        }
      }
    } catch (err) {
      this.#error('jobs reconcile with Redis failed (retried)', err);
    }
  }

  async enqueue(id: string): Promise<void> {
    await withTimeout(
      this.#queue.add('run', { id }, { jobId: id, removeOnComplete: true, removeOnFail: true, attempts: 5, backoff: { type: 'exponential', delay: 2000 } }),
      5000,
    );
  }

  async remove(id: string): Promise<void> {
    this.#running.get(id)?.abort(new Error('cancelled'));
    await withTimeout(this.#queue.remove(id), 2000).catch(() => undefined);
  }

  async close(): Promise<void> {
    this.#closing = true;
    if (this.#timer) clearInterval(this.#timer);
    for (const ac of this.#running.values()) ac.abort(new Error('the Inferrer is stopping'));
    await withTimeout(this.#worker?.close() ?? Promise.resolve(), 5000).catch(() => undefined);
    await withTimeout(this.#queue.close(), 2000).catch(() => undefined);
  }
}

function redisOptions(url: string): Record<string, unknown> {
  const u = new URL(url);
  const db = Number(u.pathname.replace(/^\//, '') || 0);
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(Number.isInteger(db) && db > 0 ? { db } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    // BullMQ's workers need this; commands wait while Redis is away rather than fail.
    maxRetriesPerRequest: null,
    retryStrategy: (times: number) => Math.min(2000, 100 * times),
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`Redis did not answer within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}
