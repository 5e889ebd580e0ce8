/**
 * Batch jobs, transport-neutral: submit (input streamed to the store, checked, split into items and
 * chunks, queued), status, list, results, cancel, remove; the queue's processor; retention.
 * A job belongs to the API key that submitted it (`owner`): status, list, results, cancel and remove take
 * the viewer, and a job the viewer may not see is JOB_NOT_FOUND exactly as one that does not exist.
 */
import type { Readable } from 'node:stream';
import { rm } from 'node:fs/promises';
import { InferrerError, parseModelName, parseVersion, storageError, writeAtomic } from '@inferrer/core';
import { ownerTag } from '@inferrer/model-store';
import type { Logger } from '@inferrer/telemetry';
import type { Management } from '../management.ts';
import { detectFormat, prepareArchive, receiveBody } from './job-input.ts';
import { RowsThread } from './rows-thread.ts';
import type { JobRunner } from './job-runner.ts';
import { JobStore, jobNotFound } from './job-store.ts';
import type { JobQueue } from './queue.ts';
import { ACTIVE_STATES, FINAL_STATES, type JobRecord, type JobState, type JobStatus, type JobViewer } from './types.ts';

export interface JobLimits {
  maxBytes: number;
  maxItems: number;
  maxActivePerClient: number;
  retentionHours: number;
}

export interface SubmitOptions {
  model: string;
  version?: string | undefined;
  body: Readable & { headers: Record<string, string | string[] | undefined> };
  contentType: string | undefined;
  format?: string | undefined;
  /** The API key (its owner, as `owner`) or `ip:<address>`: whose quota the job counts against. */
  client: string;
  /** The API key the job belongs to (JobRecord.owner); undefined without a key. */
  owner: string | undefined;
}

/** Whether `viewer` may see and manage the job. */
function visible(rec: JobRecord, viewer: JobViewer): boolean {
  return viewer.all || (viewer.owner !== undefined && rec.owner === viewer.owner);
}

export class JobService {
  readonly store: JobStore;
  readonly queue: JobQueue;
  readonly #runner: JobRunner;
  readonly #management: Management;
  readonly #limits: JobLimits;
  readonly #log: Logger;
  readonly #running = new Map<string, { done: Promise<void>; ac: AbortController }>();
  /** Submissions of one client are checked against the quota one at a time. */
  readonly #quotaLocks = new Map<string, Promise<unknown>>();
  /** NDJSON and CSV rows are read and checked off the event loop (rows-thread.ts). */
  readonly #rows = new RowsThread();
  #sweeper: NodeJS.Timeout | undefined;
  #started = false;

  constructor(deps: { store: JobStore; queue: JobQueue; runner: JobRunner; management: Management; limits: JobLimits; logger: Logger }) {
    this.store = deps.store;
    this.queue = deps.queue;
    this.#runner = deps.runner;
    this.#management = deps.management;
    this.#limits = deps.limits;
    this.#log = deps.logger.child({ module: 'jobs' });
  }

  async start(): Promise<void> {
    await this.store.init();
    await this.#sweep();
    await this.queue.start((id, signal) => this.#process(id, signal));
    this.#sweeper = setInterval(() => void this.#sweep(), Math.min(3600_000, Math.max(1000, (this.#limits.retentionHours * 3600_000) / 4)));
    this.#sweeper.unref();
    this.#started = true;
    this.#log.info(`batch jobs: queue ${this.queue.description}`, {
      queue: this.queue.kind,
      store: this.store.root,
      retentionHours: this.#limits.retentionHours,
    });
  }

  async stop(): Promise<void> {
    this.#started = false;
    if (this.#sweeper) clearInterval(this.#sweeper);
    for (const r of this.#running.values()) r.ac.abort(new Error('the Inferrer is stopping'));
    await this.queue.close();
    await this.#rows.close();
  }

  async #sweep(): Promise<void> {
    try {
      const removed = await this.store.sweep(this.#limits.retentionHours * 3600_000);
      if (removed.length) this.#log.info('jobs past their retention removed', { jobs: removed.length, retentionHours: this.#limits.retentionHours });
    } catch (err) {
      this.#log.error('jobs retention sweep failed', { err });
    }
  }

  /** The queue's processor: one run per job per process, however often the queue hands it out. */
  #process(id: string, signal: AbortSignal): Promise<void> {
    const existing = this.#running.get(id);
    if (existing) return existing.done;
    const ac = new AbortController();
    const both = AbortSignal.any([signal, ac.signal]);
    const done = this.#runner
      .run(id, both)
      .then(() => undefined)
      .finally(() => this.#running.delete(id));
    this.#running.set(id, { done, ac });
    return done;
  }

  async submit(opts: SubmitOptions): Promise<JobStatus> {
    if (!this.#started) throw new InferrerError('JOBS_UNAVAILABLE', 'batch jobs are not running on this Inferrer yet', {}, { retryAfter: 1 });
    const model = parseModelName(opts.model);
    const version = opts.version === undefined ? undefined : parseVersion(opts.version);
    const described = await this.#management.describe(model);
    if (version !== undefined && !described.versions.includes(version)) {
      throw new InferrerError('VERSION_NOT_FOUND', `model ${model} version ${version} not found`, { model, version, versions: described.versions });
    }
    const rec: JobRecord = {
      id: JobStore.newId(),
      model: described.name,
      ...(version !== undefined ? { version } : {}),
      state: 'RECEIVING',
      format: 'ndjson',
      kind: 'rows',
      total: 0,
      chunkItems: 1,
      chunks: 0,
      inputBytes: 0,
      client: opts.client,
      ...(opts.owner !== undefined ? { owner: opts.owner } : {}),
      receiver: ownerTag(),
      createdAt: new Date().toISOString(),
    };
    await this.#withQuota(opts.client, async () => {
      const active = (await this.store.list()).filter((r) => r.client === opts.client && ACTIVE_STATES.has(r.state)).length;
      if (active >= this.#limits.maxActivePerClient) {
        throw new InferrerError(
          'QUOTA_EXCEEDED',
          `${opts.client.startsWith('ip:') ? 'this client address' : 'this API key'} already has ${active} batch jobs queued or running (JOBS_MAX_ACTIVE_PER_CLIENT=${this.#limits.maxActivePerClient}); retry when one finishes`,
          { limit: this.#limits.maxActivePerClient, active },
          { retryAfter: 10 },
        );
      }
      await this.store.create(rec);
    });
    const dir = this.store.dir(rec.id);
    try {
      const input = this.store.file(rec.id, 'input');
      rec.inputBytes = await receiveBody(opts.body as never, input, this.#limits.maxBytes);
      rec.format = await detectFormat(input, opts.contentType, opts.format);
      const limits = { maxBytes: this.#limits.maxBytes, maxItems: this.#limits.maxItems };
      const prepared =
        rec.format === 'zip' || rec.format === 'tar'
          ? await prepareArchive(input, dir, rec.format, limits)
          : await this.#rows.prepare(input, this.store.file(rec.id, 'items.ndjson'), rec.format, limits);
      await writeAtomic(this.store.file(rec.id, 'chunks.json'), JSON.stringify(prepared.offsets));
      Object.assign(rec, {
        kind: rec.format === 'zip' || rec.format === 'tar' ? 'images' : 'rows',
        total: prepared.total,
        chunkItems: prepared.chunkItems,
        chunks: prepared.chunks,
        state: 'QUEUED' as JobState,
      });
      await this.store.write(rec);
    } catch (err) {
      opts.body.resume();
      await rm(dir, { recursive: true, force: true });
      // A full volume is 507 STORAGE_FULL, and the job is gone as if never submitted.
      throw storageError(err);
    }
    this.#log.info('job submitted', { job: rec.id, model: rec.model, format: rec.format, items: rec.total, bytes: rec.inputBytes, client: rec.client });
    // The store says QUEUED: if the queue cannot take it now (Redis away), the queue's reconcile will.
    await this.queue
      .enqueue(rec.id)
      .catch((err: unknown) =>
        this.#log.warn('job not queued yet (it will be when the queue is back)', { job: rec.id, err: { message: (err as Error).message } }),
      );
    return this.#status(await this.store.get(rec.id));
  }

  async #withQuota<T>(client: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#quotaLocks.get(client) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.#quotaLocks.set(client, tail);
    void tail.then(() => {
      if (this.#quotaLocks.get(client) === tail) this.#quotaLocks.delete(client);
    });
    return run;
  }

  /** The job's record, when `viewer` may see it; else JOB_NOT_FOUND, the same answer as for no such job. */
  async #get(id: string, viewer: JobViewer): Promise<JobRecord> {
    const rec = await this.store.get(id);
    if (!visible(rec, viewer)) throw jobNotFound(id);
    return rec;
  }

  async status(id: string, viewer: JobViewer): Promise<JobStatus> {
    return this.#status(await this.#get(id, viewer));
  }

  async #status(rec: JobRecord): Promise<JobStatus> {
    const p = FINAL_STATES.has(rec.state) && rec.done !== undefined ? { done: rec.done, failed: rec.failed ?? 0 } : await this.store.progress(rec);
    const started = rec.startedAt ? Date.parse(rec.startedAt) : undefined;
    const end = rec.finishedAt ? Date.parse(rec.finishedAt) : Date.now();
    const seconds = started !== undefined ? Math.max(0.001, (end - started) / 1000) : undefined;
    const rate = seconds !== undefined && p.done > 0 ? p.done / seconds : null;
    const eta = rec.state === 'RUNNING' && rate ? (rec.total - p.done) / rate : FINAL_STATES.has(rec.state) && rec.state !== 'CANCELLED' ? 0 : null;
    return {
      id: rec.id,
      model: rec.model,
      version: rec.version ?? null,
      state: rec.state,
      format: rec.format,
      items: { total: rec.total, done: p.done, succeeded: p.done - p.failed, failed: p.failed },
      rate: rate === null ? null : Number(rate.toFixed(2)),
      eta_s: eta === null ? null : Number(eta.toFixed(1)),
      created_at: rec.createdAt,
      started_at: rec.startedAt ?? null,
      finished_at: rec.finishedAt ?? null,
      ...(rec.error ? { error: rec.error } : {}),
      results: `/api/v1/jobs/${rec.id}/results`,
    };
  }

  /** The jobs `viewer` may see, newest last (?model=, ?state= narrow that further). */
  async list(viewer: JobViewer, filter: { model?: string | undefined; state?: string | undefined } = {}): Promise<JobStatus[]> {
    const model = filter.model === undefined ? undefined : parseModelName(filter.model);
    const recs = (await this.store.list()).filter(
      (r) => visible(r, viewer) && (model === undefined || r.model === model) && (filter.state === undefined || r.state === filter.state.toUpperCase()),
    );
    return Promise.all(recs.map((r) => this.#status(r)));
  }

  /** Cancels a queued or running job (results so far are kept); a finished job is left as it is. */
  async cancel(id: string, viewer: JobViewer): Promise<JobStatus> {
    const before = await this.#get(id, viewer);
    if (!FINAL_STATES.has(before.state)) {
      const p = await this.store.progress(before);
      await this.store.update(id, () => ({ state: 'CANCELLED', finishedAt: new Date().toISOString(), done: p.done, failed: p.failed }));
      this.#running.get(id)?.ac.abort(new Error('cancelled'));
      await this.queue.remove(id).catch(() => undefined);
      this.#log.info('job cancelled', { job: id, done: p.done, total: before.total });
    }
    return this.#status(await this.store.get(id));
  }

  /** Removes a finished job and its files. */
  async remove(id: string, viewer: JobViewer): Promise<void> {
    const rec = await this.#get(id, viewer);
    if (!FINAL_STATES.has(rec.state)) throw new InferrerError('INVALID_REQUEST', `job ${id} is ${rec.state}: cancel it first`, { job: id, state: rec.state });
    await this.store.remove(id);
  }

  /** The results so far (all of them once the job has finished), in input order. */
  async results(id: string, viewer: JobViewer): Promise<{ record: JobRecord; items: number; complete: boolean; lines: AsyncGenerator<Buffer> }> {
    const record = await this.#get(id, viewer);
    const items = await this.store.prefixItems(record);
    return { record, items, complete: items === record.total && record.total > 0, lines: this.store.results(record) };
  }
}
