/**
 * Runs one job: every chunk without a result file is read from items.ndjson, its items go through the
 * Inferrer's DataPlane (→ load balancer → modelhosts' batcher, like any online request, marked as batch
 * priority and paced by the Pacer), and its results are written at once (temp + rename). A job picked up
 * again after a crash starts at the first chunk without results: no item is lost, none is written twice.
 *
 * Errors: an overloaded or unreachable cluster is waited out (retried with back-off, never an item
 * failure); a row the model refuses fails that item (a group that fails is retried row by row, so only the
 * bad rows fail); a model that is gone fails the job. A job ends SUCCEEDED, PARTIAL or FAILED by how many
 * of its items failed (types.ts finishedState).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseLossless, stringify as stringifyLossless } from 'lossless-json';
import { InferrerError, toInferrerError } from '@inferrer/core';
import type { Logger } from '@inferrer/telemetry';
import type { DataPlane } from '../dataplane.ts';
import { answerText } from '../upstream.ts';
import { chunkSize, type JobStore } from './job-store.ts';
import { type Pacer, sleep } from './pacer.ts';
import { FINAL_STATES, finishedState, type ItemLine, type JobRecord, type ResultLine } from './types.ts';

export interface RunnerDeps {
  store: JobStore;
  dataplane: DataPlane;
  pacer: Pacer;
  /** Rows sent in one request (they share a batch on the worker). */
  rowsPerRequest: number;
  /** Chunks of one job in progress at once. */
  chunksInFlight?: number;
  logger: Logger;
}

/** Errors that say the cluster is busy or briefly away: wait and send again. */
const TRANSIENT = new Set(['QUEUE_FULL', 'MODEL_NOT_READY', 'SERVER_DRAINING', 'UPSTREAM_UNAVAILABLE', 'RATE_LIMITED']);
/** Transient too, but a few attempts only (they may be about the item: a model that cannot load, a row too slow). */
const RETRY_A_FEW = new Set(['DEADLINE_EXCEEDED', 'MODEL_LOAD_FAILED', 'INTERNAL']);
const FEW = 4;
/** The job cannot go on. */
const FATAL = new Set(['MODEL_NOT_FOUND', 'VERSION_NOT_FOUND']);

class JobFatal extends Error {
  constructor(readonly error: InferrerError) {
    super(error.message);
  }
}

/** An answer for `rows` items: per-item outputs, or undefined when it cannot be split by row. */
interface Answer {
  version: number | undefined;
  perItem: unknown[] | undefined;
  whole: unknown;
  exact: boolean;
}

export class JobRunner {
  readonly #d: RunnerDeps;
  readonly #log: Logger;

  constructor(deps: RunnerDeps) {
    this.#d = deps;
    this.#log = deps.logger.child({ module: 'jobs' });
  }

  /** Runs the job to its end (or until `signal` aborts: a cancel, or the Inferrer stopping). */
  async run(id: string, signal: AbortSignal): Promise<JobRecord | undefined> {
    const { store } = this.#d;
    let rec = await store.read(id);
    if (!rec || FINAL_STATES.has(rec.state) || rec.state === 'RECEIVING') return rec;
    const now = new Date().toISOString();
    rec = await store.update(id, (r) => ({ state: 'RUNNING', startedAt: r.startedAt ?? now }));
    if (rec.state !== 'RUNNING') return rec;
    const offsets = await store.offsets(rec);
    const { chunks: finished } = await store.progress(rec);
    this.#log.info('job running', { job: id, model: rec.model, total: rec.total, chunksLeft: rec.chunks - finished.size, resumed: finished.size > 0 });
    const state = { rowsPerRequest: this.#d.rowsPerRequest, next: 0, lastCheck: Date.now(), endedElsewhere: false };
    const job = rec;
    const local = new AbortController();
    const both = AbortSignal.any([signal, local.signal]);
    const worker = async (): Promise<void> => {
      for (;;) {
        const c = state.next++;
        if (c >= job.chunks) return;
        if (finished.has(c)) continue;
        both.throwIfAborted();
        if (Date.now() - state.lastCheck > 1000) {
          // Another Inferrer may have cancelled it (the record on the shared volume is the truth).
          state.lastCheck = Date.now();
          const cur = await store.read(id);
          if (!cur || FINAL_STATES.has(cur.state)) {
            state.endedElsewhere = true;
            local.abort(new Error('job ended elsewhere'));
            both.throwIfAborted();
          }
        }
        const items = await store.readChunk(job, c, offsets);
        if (items.length !== chunkSize(job, c)) throw new Error(`job ${id} chunk ${c}: ${items.length} items read, ${chunkSize(job, c)} expected`);
        const results = await this.#chunk(job, items, state, both);
        const failed = results.filter((r) => r.error).length;
        await store.writeChunk(
          job,
          c,
          results.map((r) => r.text),
          failed,
        );
      }
    };
    const guarded = async (): Promise<void> => {
      try {
        await worker();
      } catch (err) {
        // One chunk worker failing stops the others.
        local.abort(err);
        throw err;
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.max(1, this.#d.chunksInFlight ?? 2) }, guarded));
    } catch (err) {
      if (err instanceof JobFatal) {
        this.#log.warn('job failed', { job: id, err: { code: err.error.code, message: err.error.message } });
        const p = await store.progress(job);
        return store.update(id, () => ({
          state: 'FAILED',
          finishedAt: new Date().toISOString(),
          done: p.done,
          failed: p.failed,
          error: { code: err.error.code, message: err.error.message },
        }));
      }
      if (signal.aborted || state.endedElsewhere) return store.read(id);
      throw err;
    }
    const p = await store.progress(job);
    if (p.chunks.size < job.chunks) return store.read(id);
    const final = finishedState(job.total, p.failed);
    const done = await store.update(id, () => ({ state: final, finishedAt: new Date().toISOString(), done: p.done, failed: p.failed }));
    this.#log.info('job finished', { job: id, state: done.state, total: job.total, failed: p.failed });
    return done;
  }

  /** One chunk's items → result lines in item order. */
  async #chunk(job: JobRecord, items: ItemLine[], state: { rowsPerRequest: number }, signal: AbortSignal): Promise<{ text: string; error: boolean }[]> {
    const out: { text: string; error: boolean }[] = new Array(items.length);
    const put = (k: number, r: ResultLine, exact = false): void => {
      out[k] = { text: exact ? (stringifyLossless(r) ?? '') : JSON.stringify(r), error: r.error !== undefined };
    };
    const base = (it: ItemLine): ResultLine => (it.file !== undefined ? { index: it.i, file: it.name ?? it.file } : { index: it.i, line: it.line! });
    const groups: number[][] = [];
    let group: number[] = [];
    for (let k = 0; k < items.length; k++) {
      const it = items[k]!;
      if (it.err) {
        put(k, { ...base(it), error: it.err });
        continue;
      }
      // Arrays (one row each) share a request; images and rows keyed by input go one per request.
      const alone = it.file !== undefined || !it.v!.startsWith('[');
      if (alone) {
        groups.push([k]);
        continue;
      }
      group.push(k);
      if (group.length >= state.rowsPerRequest) {
        groups.push(group);
        group = [];
      }
    }
    if (group.length) groups.push(group);

    const sendGroup = async (g: number[]): Promise<void> => {
      const its = g.map((k) => items[k]!);
      try {
        const a = await this.#send(job, its, signal);
        if (a.perItem && a.perItem.length === g.length) {
          g.forEach((k, j) =>
            put(k, { ...base(items[k]!), ...(a.version !== undefined ? { model_version: a.version } : {}), outputs: a.perItem![j] }, a.exact),
          );
          return;
        }
        if (g.length === 1) {
          put(g[0]!, { ...base(its[0]!), ...(a.version !== undefined ? { model_version: a.version } : {}), outputs: a.whole }, a.exact);
          return;
        }
        throw new InferrerError('INVALID_INPUT', 'the answer does not split by row');
      } catch (err) {
        if (err instanceof JobFatal || signal.aborted) throw err;
        const e = toInferrerError(err);
        if (g.length > 1) {
          // Find the bad rows: each alone. A model that takes one row at a time learns it here.
          const results = await Promise.allSettled(g.map((k) => sendGroup([k])));
          const bad = results.find((r) => r.status === 'rejected');
          if (bad) throw (bad as PromiseRejectedResult).reason;
          if (g.every((k) => !out[k]!.error)) state.rowsPerRequest = 1;
          return;
        }
        put(g[0]!, { ...base(its[0]!), error: { code: e.code, message: e.message } });
      }
    };
    await Promise.all(groups.map(sendGroup));
    return out;
  }

  /** Sends items as one request, waiting out an overloaded cluster; throws the item-level error. */
  async #send(job: JobRecord, items: ItemLine[], signal: AbortSignal): Promise<Answer> {
    const { pacer, dataplane } = this.#d;
    const image = items[0]!.file !== undefined;
    const q = new URLSearchParams(image ? {} : { outputs: 'all' });
    if (job.version !== undefined) q.set('version', String(job.version));
    let few = 0;
    for (let attempt = 0; ; attempt++) {
      signal.throwIfAborted();
      try {
        const text = await pacer.run(async () => {
          const { body, contentType } = await this.#body(job, items);
          const opts = { reqId: `${job.id}-${items[0]!.i}`, body, contentLength: Buffer.byteLength(body), contentType, priority: 'batch' as const };
          // Images go to the same route a multipart image prediction takes (decoded on the modelhost).
          const res = await (image ? dataplane.predictImages(job.model, q, opts) : dataplane.predictV1(job.model, q, opts));
          return answerText(res);
        }, signal);
        pacer.success();
        return image ? parseImageAnswer(text) : parseAnswer(text, items.length);
      } catch (err) {
        if (signal.aborted) throw signal.reason ?? err;
        const e = toInferrerError(err);
        if (FATAL.has(e.code)) throw new JobFatal(e);
        if (TRANSIENT.has(e.code) || (RETRY_A_FEW.has(e.code) && ++few < FEW)) {
          pacer.overloaded(e.retryAfter);
          if (attempt % 20 === 19)
            this.#log.warn('job items still waiting for the cluster', {
              job: job.id,
              item: items[0]!.i,
              attempts: attempt + 1,
              err: { code: e.code, message: e.message },
            });
          await sleep(Math.min(2000, 50 * 2 ** Math.min(attempt, 6)), signal);
          continue;
        }
        throw e;
      }
    }
  }

  async #body(job: JobRecord, items: ItemLine[]): Promise<{ body: Buffer | string; contentType: string }> {
    const first = items[0]!;
    if (first.file !== undefined) {
      // An image: a multipart prediction with the file under "file", as a client would send it.
      const data = await readFile(path.join(this.#d.store.dir(job.id), first.file));
      const boundary = `----inferrer-job-${job.id}`;
      const name = (first.name ?? first.file).replace(/["\r\n]/g, '_');
      const head = Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${path.basename(name)}"\r\nContent-Type: ${imageType(name)}\r\n\r\n`,
      );
      return { body: Buffer.concat([head, data, Buffer.from(`\r\n--${boundary}--\r\n`)]), contentType: `multipart/form-data; boundary=${boundary}` };
    }
    if (items.length === 1 && !first.v!.startsWith('[')) return { body: `{"values":${first.v}}`, contentType: 'application/json' };
    return { body: `{"values":[${items.map((it) => it.v).join(',')}]}`, contentType: 'application/json' };
  }
}

function imageType(name: string): string {
  const ext = path.extname(name).toLowerCase();
  return ext === '.png'
    ? 'image/png'
    : ext === '.webp'
      ? 'image/webp'
      : ext === '.tif' || ext === '.tiff'
        ? 'image/tiff'
        : ext === '.jpg' || ext === '.jpeg'
          ? 'image/jpeg'
          : 'application/octet-stream';
}

/** An image answer: everything but the envelope, as the item's outputs. */
export function parseImageAnswer(text: string): Answer {
  const exact = /\d{16,}/.test(text);
  const body = (exact ? parseLossless(text) : JSON.parse(text)) as Record<string, unknown>;
  const version = Number(body.model_version);
  const whole: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) if (!['http_status', 'model_name', 'model_version'].includes(k)) whole[k] = v;
  return { version: Number.isFinite(version) ? version : undefined, perItem: [whole], whole, exact };
}

/** A v1 answer ({model_version, values, outputs}) split into one `outputs` object per row. */
export function parseAnswer(text: string, rows: number): Answer {
  const exact = /\d{16,}/.test(text);
  const body = (exact ? parseLossless(text) : JSON.parse(text)) as { model_version?: unknown; values?: unknown; outputs?: Record<string, unknown> };
  const version = body.model_version === undefined ? undefined : Number(body.model_version);
  const named = body.outputs && typeof body.outputs === 'object' ? body.outputs : { values: body.values };
  // Image answers may carry other fields (classes, boxes …): keep them whole for a one-image request.
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) if (!['http_status', 'model_name', 'model_version', 'values', 'outputs'].includes(k)) extra[k] = v;
  const whole = { ...named, ...extra };
  const names = Object.keys(named);
  let perItem: unknown[] | undefined;
  if (names.length > 0 && names.every((n) => Array.isArray(named[n]) && (named[n] as unknown[]).length === rows)) {
    perItem = Array.from({ length: rows }, (_, r) => Object.fromEntries(names.map((n) => [n, (named[n] as unknown[])[r]])));
    if (rows === 1 && Object.keys(extra).length > 0) perItem = [{ ...(perItem[0] as object), ...extra }];
  }
  return { version: Number.isFinite(version) ? version : undefined, perItem, whole, exact };
}
