/**
 * AdaptiveBatcher: the per-model, per-worker dynamic batcher. Requests wait in one bounded FIFO queue;
 * whenever an execution slot is free, a batch is cut from the head of the queue once it holds
 * `maxBatchSize` rows or its oldest request has waited `maxQueueDelayMs`. A batch is cut after the
 * requests that arrive together (in one run of microtasks) are all in, so a burst shares its first batch.
 * Requests start in arrival order (FIFO): a batch is the oldest request and those right behind it that
 * stack with it (same input names, types and non-batch dims) and fit; the first that does not ends the
 * batch, so no request waits behind one that arrived after it. With several slots free at once the
 * requests waiting are shared out evenly between them, so no slot takes a batch much longer than the
 * others' (its requests, the oldest, would finish last). Batch-job requests (priority 'batch') wait behind online ones and
 * fill the room online requests leave in a batch, until they have waited BATCH_PROMOTION_MS. A full
 * queue refuses new work with QUEUE_FULL. A request whose AbortSignal fires while it waits (its client
 * went away) leaves the queue at once with REQUEST_CANCELLED and is never run; one already running finishes.
 *
 * Deadlines: the batcher times every batch it runs (ServiceTimes: a batch of r rows takes about a + b·r
 * ms) and never answers a request with a result after its deadline. A request that would wait behind
 * the queue past its deadline is refused at once (QUEUE_FULL, 503 with Retry-After): the queue's bound is
 * the deadline and the measured service time, not only a count. One whose deadline comes before the batch
 * it would join could finish leaves with DEADLINE_EXCEEDED (504) instead of taking the slot, and one still
 * running at its deadline is answered DEADLINE_EXCEEDED then (its run's result is dropped).
 *
 * A request much larger than a batch (more than SLICE_ELEMENTS input elements and maxBatchSize rows) runs
 * in slices along the batch axis, each slice queued after the last one ends, so requests that arrive
 * meanwhile run between slices instead of waiting for one long run; the outputs are put back together as
 * the slices finish.
 */
import { InferrerError, type NamedTensors, type NumericArray, type Tensor } from '@inferrer/core';
import type { RunResult } from '../onnx-session.ts';
import { concatInputs, splitOutputs, stackKey } from './tensors.ts';

export interface BatcherOptions {
  /** Most rows per batch; 1 runs every request alone. */
  maxBatchSize: number;
  maxQueueDelayMs: number;
  /** Requests waiting before QUEUE_FULL. */
  maxQueueSize: number;
  /** False for models without a dynamic batch axis: one request per run. */
  batchable: boolean;
  /** A batch-job request that has waited this long is served as if it were online (default BATCH_PROMOTION_MS). */
  batchPromotionMs?: number;
  /**
   * Slice a request of more rows than a batch into runs of a batch each, however few elements its rows hold
   * (a model that runs on the worker's own thread: one long run would hold every other request).
   */
  sliceByBatch?: boolean;
}

/** What the batcher runs batches on (an OnnxSession). */
export interface BatchRunner {
  /** Execution slots in all. */
  readonly instances: number;
  /** Slots free now. */
  readonly idle: number;
  run(feeds: NamedTensors, fetches?: string[]): Promise<RunResult>;
  onIdle: (() => void) | undefined;
}

export interface InferResult {
  outputs: NamedTensors;
  /** Requests in the batch this one ran in. */
  batchRequests: number;
  /** Rows in that batch. */
  batchRows: number;
  queueMs: number;
  computeMs: number;
}

export interface BatchObserver {
  onBatch?(requests: number, rows: number, computeMs: number): void;
  onQueued?(queueMs: number): void;
  onTimeout?(): void;
  onRejected?(code: 'QUEUE_FULL'): void;
  /** A request left the queue unrun: its client went away. */
  onCancelled?(): void;
}

/** Online requests go first; batch-job requests fill what room is left and wait behind online ones. */
export type Priority = 'online' | 'batch';

/** A batch-job request that has waited this long is served as if it were online: it cannot starve. */
export const BATCH_PROMOTION_MS = 1000;

/** Input elements per slice of a request that runs in slices (256 KiB of FP32: milliseconds for small models). */
export const SLICE_ELEMENTS = 65_536;

interface Pending {
  /** Answered already (at its deadline while its batch still runs): a later result is dropped. */
  settled: boolean;
  inputs: NamedTensors;
  /** A batch-job request (below online ones until it has waited BATCH_PROMOTION_MS). */
  batch: boolean;
  rows: number;
  key: string;
  enqueued: number;
  deadline: number;
  resolve: (r: InferResult) => void;
  reject: (e: unknown) => void;
  /** Its client's signal, and what takes it out of the queue when that fires. */
  signal?: AbortSignal | undefined;
  onAbort?: (() => void) | undefined;
}

/** A request whose client went away before it ran. */
function cancelled(stage: 'queued'): InferrerError {
  return new InferrerError('REQUEST_CANCELLED', 'the client went away before the request ran', { stage });
}

/** Stops listening to a request's signal once it has left the queue. */
function detach(p: Pending): void {
  if (p.onAbort) p.signal!.removeEventListener('abort', p.onAbort);
  p.onAbort = undefined;
}

/** A batch running on a slot: when it started and how many rows it has (for the queue's expected wait). */
interface Running {
  started: number;
  rows: number;
}

/**
 * How long batches take on this model here: an exponentially weighted least-squares fit of wall time
 * (hand-off to the slot until the answer is back) against rows, T(r) = a + b·r, over about the last ten
 * batches. With only one batch size seen it answers that size's mean for any size (b = 0).
 */
export class ServiceTimes {
  #w = 0;
  #r = 0;
  #rr = 0;
  #t = 0;
  #rt = 0;
  readonly #keep: number;

  constructor(keep = 0.9) {
    this.#keep = keep;
  }

  /** Whether any batch has been timed. */
  get known(): boolean {
    return this.#w > 0;
  }

  observe(rows: number, ms: number): void {
    const k = this.#keep;
    this.#w = this.#w * k + 1;
    this.#r = this.#r * k + rows;
    this.#rr = this.#rr * k + rows * rows;
    this.#t = this.#t * k + ms;
    this.#rt = this.#rt * k + rows * ms;
  }

  /** Expected wall time of a batch of `rows` rows, ms (0 before any batch was timed). */
  estimate(rows: number): number {
    if (this.#w === 0) return 0;
    const mr = this.#r / this.#w;
    const mt = this.#t / this.#w;
    const varR = this.#rr / this.#w - mr * mr;
    let b = varR > 1e-6 * Math.max(1, mr * mr) ? (this.#rt / this.#w - mr * mt) / varR : 0;
    if (b < 0) b = 0;
    let a = mt - b * mr;
    if (a < 0) {
      a = 0;
      b = mt / Math.max(mr, 1e-9);
    }
    return a + b * rows;
  }
}

export class AdaptiveBatcher {
  readonly options: BatcherOptions;
  /** Measured batch times (the queue's expected wait and the deadline checks use them). */
  readonly times = new ServiceTimes();
  readonly #runner: BatchRunner;
  readonly #observer: BatchObserver;
  readonly #running = new Set<Running>();
  #queue: Pending[] = [];
  #timer: NodeJS.Timeout | undefined;
  #timerAt = 0;
  #inflight = 0;
  #pumpQueued = false;
  #idleWaiters: (() => void)[] = [];

  constructor(runner: BatchRunner, options: BatcherOptions, observer: BatchObserver = {}) {
    this.#runner = runner;
    this.options = { ...options, maxBatchSize: options.batchable ? Math.max(1, options.maxBatchSize) : 1 };
    this.#observer = observer;
    runner.onIdle = () => this.#pump();
  }

  /** Requests waiting for a slot. */
  get depth(): number {
    return this.#queue.length;
  }

  /** Batches running now. */
  get inflight(): number {
    return this.#inflight;
  }

  /** `signal`: the client's; when it fires while the request waits, the request leaves the queue unrun. */
  infer(inputs: NamedTensors, rows: number, deadline: number, priority: Priority = 'online', signal?: AbortSignal): Promise<InferResult> {
    if (this.options.batchable && rows > this.options.maxBatchSize) {
      let elements = 0;
      for (const name in inputs) elements += inputs[name]!.data.length;
      const sliceRows = this.options.sliceByBatch
        ? this.options.maxBatchSize
        : Math.max(this.options.maxBatchSize, Math.floor(SLICE_ELEMENTS / Math.max(1, elements / rows)));
      if (rows > sliceRows) return this.#sliced(inputs, rows, sliceRows, deadline, priority, signal);
    }
    return this.#enqueue(inputs, rows, deadline, priority, signal);
  }

  /** A large request, slice by slice: each slice joins the queue behind what arrived while the last one ran. */
  async #sliced(
    inputs: NamedTensors,
    rows: number,
    sliceRows: number,
    deadline: number,
    priority: Priority,
    signal: AbortSignal | undefined,
  ): Promise<InferResult> {
    const merged = new OutputAssembly(rows);
    let queueMs = 0;
    let computeMs = 0;
    for (let at = 0; at < rows; at += sliceRows) {
      const n = Math.min(sliceRows, rows - at);
      const r = await this.#enqueue(sliceInputs(inputs, rows, at, n), n, deadline, priority, signal);
      // An output that does not keep the batch axis cannot be put back together: run the request whole.
      if (!merged.add(r.outputs, at, n)) return this.#enqueue(inputs, rows, deadline, priority, signal);
      queueMs += r.queueMs;
      computeMs += r.computeMs;
    }
    return { outputs: merged.outputs, batchRequests: 1, batchRows: rows, queueMs, computeMs };
  }

  #enqueue(inputs: NamedTensors, rows: number, deadline: number, priority: Priority, signal?: AbortSignal): Promise<InferResult> {
    if (signal?.aborted) {
      this.#observer.onCancelled?.();
      return Promise.reject(cancelled('queued'));
    }
    // Requests that idle slots take at the next cut never wait: they do not count against the queue.
    if (this.#queue.length - this.#runner.idle * this.options.maxBatchSize >= this.options.maxQueueSize) {
      this.#observer.onRejected?.('QUEUE_FULL');
      return Promise.reject(
        new InferrerError(
          'QUEUE_FULL',
          `the queue for this model is full (${this.options.maxQueueSize} requests waiting)`,
          { limit: this.options.maxQueueSize },
          { retryAfter: 1 },
        ),
      );
    }
    const now = performance.now();
    if (this.times.known) {
      // Behind what is queued and running, would it finish by its deadline? Only a request that has to
      // wait is refused: one a free slot takes at once runs (and is answered 504 at its deadline if late).
      const wait = this.#expectedWait(now, priority);
      const done = now + wait + this.times.estimate(Math.min(rows, this.options.maxBatchSize));
      if (wait > 0 && done > deadline) {
        this.#observer.onRejected?.('QUEUE_FULL');
        const retryAfter = Math.min(60, Math.max(1, Math.ceil((done - deadline) / 1000)));
        return Promise.reject(
          new InferrerError(
            'QUEUE_FULL',
            `the queue for this model would take about ${Math.round(wait)} ms, and the request has ${Math.max(0, Math.round(deadline - now))} ms left before its deadline`,
            { waitMs: Math.round(wait), deadlineMs: Math.max(0, Math.round(deadline - now)) },
            { retryAfter },
          ),
        );
      }
    }
    return new Promise((resolve, reject) => {
      const p: Pending = {
        settled: false,
        inputs,
        batch: priority === 'batch',
        rows,
        key: this.options.maxBatchSize > 1 ? stackKey(inputs) : '',
        enqueued: now,
        deadline,
        resolve,
        reject,
      };
      if (signal) {
        p.signal = signal;
        p.onAbort = () => this.#cancel(p);
        signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.#queue.push(p);
      // Requests that arrive together (a group from the Inferrer, or several reads in one turn) reach here
      // in the same run of microtasks: cutting the batch after them lets them share it, instead of the
      // first running alone while the rest wait for the slot.
      if (!this.#pumpQueued) {
        this.#pumpQueued = true;
        queueMicrotask(this.#queuedPump);
      }
    });
  }

  /** Takes a request whose client went away out of the queue (one already taken into a batch runs). */
  #cancel(p: Pending): void {
    const i = this.#queue.indexOf(p);
    if (i === -1) return;
    this.#queue.splice(i, 1);
    this.#observer.onCancelled?.();
    settle(p).reject(cancelled('queued'));
    this.#notifyIdle();
  }

  /** Resolves when nothing is queued or running. */
  drained(): Promise<void> {
    if (this.#queue.length === 0 && this.#inflight === 0) return Promise.resolve();
    return new Promise((r) => this.#idleWaiters.push(r));
  }

  readonly #queuedPump = (): void => {
    this.#pumpQueued = false;
    this.#pump();
  };

  /**
   * Expected ms until a request arriving now could start: the running batches' remaining time and the
   * batches queued ahead of it (online requests skip batch-job ones), shared over the slots.
   */
  #expectedWait(now: number, priority: Priority): number {
    const slots = Math.max(1, this.#runner.instances);
    let running = 0;
    let soonest = this.#running.size < slots ? 0 : Infinity;
    for (const r of this.#running) {
      const left = Math.max(0, this.times.estimate(r.rows) - (now - r.started));
      running += left;
      soonest = Math.min(soonest, left);
    }
    let rowsAhead = 0;
    let requestsAhead = 0;
    for (const p of this.#queue) {
      if (priority === 'online' && !this.#urgent(p, now)) continue;
      rowsAhead += p.rows;
      requestsAhead++;
    }
    const per = this.options.maxBatchSize;
    let queued = 0;
    if (per > 1 && rowsAhead > 0) {
      const full = Math.floor(rowsAhead / per);
      queued = full * this.times.estimate(per) + (rowsAhead > full * per ? this.times.estimate(rowsAhead - full * per) : 0);
    } else if (requestsAhead > 0) queued = requestsAhead * this.times.estimate(rowsAhead / requestsAhead);
    // With S slots it starts when the first slot is free after the work ahead is shared out.
    return Math.max(soonest === Infinity ? 0 : soonest, (running + queued) / slots);
  }

  #pump(): void {
    this.#expire(performance.now());
    while (this.#queue.length > 0 && this.#runner.idle > 0) {
      const now = performance.now();
      const first = this.#head(now);
      const head = this.#queue[first]!;
      const take = this.#gather(first, now, this.#share(now));
      const rows = take.reduce((n, i) => n + this.#queue[i]!.rows, 0);
      const waited = now - head.enqueued;
      // Shared out between free slots, a batch may be short on purpose; it waits for company only when
      // fewer rows than a whole batch are waiting.
      if (rows < this.options.maxBatchSize && waited < this.options.maxQueueDelayMs && this.#urgentRows(now) < this.options.maxBatchSize) {
        this.#arm(head.enqueued + this.options.maxQueueDelayMs);
        break;
      }
      // A request whose deadline comes before this batch could finish leaves now (504) rather than take
      // the slot for an answer nobody will get. While nothing runs, the batch runs anyway, so the times
      // are measured again (a stale estimate must not refuse everything for ever).
      if (this.#inflight > 0 && this.times.known) {
        const finish = now + this.times.estimate(rows);
        const doomed = take.filter((i) => this.#queue[i]!.deadline < finish);
        if (doomed.length > 0) {
          const gone = new Set(doomed);
          for (const i of doomed) {
            const p = this.#queue[i]!;
            this.#observer.onTimeout?.();
            settle(p).reject(
              new InferrerError(
                'DEADLINE_EXCEEDED',
                `the request would finish after its deadline (${Math.max(0, Math.round(p.deadline - now))} ms left; its batch takes about ${Math.round(finish - now)} ms)`,
                {
                  queueMs: Math.round(now - p.enqueued),
                },
              ),
            );
          }
          this.#queue = this.#queue.filter((_, i) => !gone.has(i));
          continue;
        }
      }
      const batch = take.map((i) => this.#queue[i]!);
      for (const p of batch) detach(p);
      const taken = new Set(take);
      this.#queue = this.#queue.filter((_, i) => !taken.has(i));
      this.#run(batch, now);
    }
    // Wake up for the head's deadline even if no slot frees before it.
    if (this.#queue.length > 0) this.#arm(this.#queue[0]!.deadline);
    else if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    this.#notifyIdle();
  }

  /** Online, or a batch-job request promoted by its wait. */
  #urgent(p: Pending, now: number): boolean {
    return !p.batch || now - p.enqueued >= (this.options.batchPromotionMs ?? BATCH_PROMOTION_MS);
  }

  /** The queue position the next batch starts from: the oldest urgent request, else the oldest of all. */
  #head(now: number): number {
    for (let i = 0; i < this.#queue.length; i++) if (this.#urgent(this.#queue[i]!, now)) return i;
    return 0;
  }

  /**
   * Rows for the next batch: maxBatchSize, or with several slots free, an even share of the rows waiting
   * (so the free slots start batches of about the same length at once).
   */
  #share(now: number): number {
    const max = this.options.maxBatchSize;
    const idle = this.#runner.idle;
    if (max <= 1 || idle <= 1) return max;
    return Math.max(1, Math.min(max, Math.ceil(this.#urgentRows(now) / idle)));
  }

  /** Rows of the online (and promoted) requests waiting. */
  #urgentRows(now: number): number {
    let rows = 0;
    for (const p of this.#queue) if (this.#urgent(p, now)) rows += p.rows;
    return rows;
  }

  /**
   * Queue positions of the next batch, up to `limit` rows (always at least the head): the urgent requests
   * right behind the head in arrival order, as long as each stacks with the head and fits (the first that
   * does not ends the batch: none waits behind a later one), then batch-job requests, in their order, in
   * the room that is left.
   */
  #gather(first: number, now: number, limit: number): number[] {
    const head = this.#queue[first]!;
    const out = [first];
    let rows = head.rows;
    if (this.options.maxBatchSize <= 1) return out;
    for (const urgent of [true, false]) {
      for (let i = 0; i < this.#queue.length && rows < limit; i++) {
        const p = this.#queue[i]!;
        if (i === first || this.#urgent(p, now) !== urgent) continue;
        if (p.key !== head.key || rows + p.rows > limit) break;
        out.push(i);
        rows += p.rows;
      }
    }
    return out;
  }

  #expire(now: number): void {
    if (!this.#queue.some((p) => p.deadline <= now)) return;
    const keep: Pending[] = [];
    for (const p of this.#queue) {
      if (p.deadline <= now) {
        this.#observer.onTimeout?.();
        settle(p).reject(
          new InferrerError('DEADLINE_EXCEEDED', `the request waited ${Math.round(now - p.enqueued)} ms in the queue, past its deadline`, {
            queueMs: Math.round(now - p.enqueued),
          }),
        );
      } else keep.push(p);
    }
    this.#queue = keep;
  }

  #arm(at: number): void {
    if (this.#timer && this.#timerAt <= at) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#pump();
      },
      Math.max(0, at - performance.now()),
    );
  }

  #run(batch: Pending[], now: number): void {
    this.#inflight++;
    const rows = batch.map((p) => p.rows);
    const totalRows = rows.reduce((a, b) => a + b, 0);
    for (const p of batch) this.#observer.onQueued?.(now - p.enqueued);
    const feeds = concatInputs(
      batch.map((p) => p.inputs),
      rows,
    );
    const running: Running = { started: performance.now(), rows: totalRows };
    this.#running.add(running);
    const watch = new DeadlineWatch(batch, this.#observer);
    this.#runner
      .run(feeds)
      .then(
        (result) => {
          this.times.observe(totalRows, performance.now() - running.started);
          this.#observer.onBatch?.(batch.length, totalRows, result.computeMs);
          const parts = splitOutputs(result.outputs, rows);
          if (!parts) return this.#runAlone(batch, now);
          for (let i = 0; i < batch.length; i++) {
            answer(
              batch[i]!,
              { outputs: parts[i]!, batchRequests: batch.length, batchRows: totalRows, queueMs: now - batch[i]!.enqueued, computeMs: result.computeMs },
              this.#observer,
            );
          }
        },
        (err) => {
          // One bad request must not fail the others: retry a failed batch one request at a time.
          if (batch.length > 1) return this.#runAlone(batch, now);
          if (!batch[0]!.settled) settle(batch[0]!).reject(err);
        },
      )
      .finally(() => {
        watch.stop();
        this.#running.delete(running);
        this.#inflight--;
        this.#notifyIdle();
      });
  }

  async #runAlone(batch: Pending[], now: number): Promise<void> {
    await Promise.all(
      batch.map((p) => {
        if (p.settled) return undefined;
        return this.#runner.run(p.inputs).then(
          (r) => {
            this.#observer.onBatch?.(1, p.rows, r.computeMs);
            answer(p, { outputs: r.outputs, batchRequests: 1, batchRows: p.rows, queueMs: now - p.enqueued, computeMs: r.computeMs }, this.#observer);
          },
          (err) => {
            if (!p.settled) settle(p).reject(err);
          },
        );
      }),
    );
  }

  #notifyIdle(): void {
    if (this.#queue.length === 0 && this.#inflight === 0 && this.#idleWaiters.length > 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const w of waiters) w();
    }
  }
}

/** Marks a request answered (a later result or error for it is dropped) and gives back its callbacks. */
function settle(p: Pending): Pending {
  p.settled = true;
  detach(p);
  return p;
}

/** A result, unless the request was answered already or its deadline passed meanwhile (then 504). */
function answer(p: Pending, result: InferResult, observer: BatchObserver): void {
  if (p.settled) return;
  settle(p);
  if (performance.now() > p.deadline) {
    observer.onTimeout?.();
    p.reject(new InferrerError('DEADLINE_EXCEEDED', 'the request finished running after its deadline', { queueMs: Math.round(result.queueMs) }));
    return;
  }
  p.resolve(result);
}

/**
 * The deadlines of a running batch: each request still running at its deadline is answered
 * DEADLINE_EXCEEDED then, while the run goes on for the others (its slot stays busy until it ends).
 */
class DeadlineWatch {
  readonly #batch: Pending[];
  readonly #observer: BatchObserver;
  #timer: NodeJS.Timeout | undefined;

  constructor(batch: Pending[], observer: BatchObserver) {
    this.#batch = batch;
    this.#observer = observer;
    this.#arm();
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(): void {
    let next = Infinity;
    for (const p of this.#batch) if (!p.settled && p.deadline < next) next = p.deadline;
    if (next === Infinity) return;
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, next - performance.now()));
    this.#timer.unref();
  }

  #fire(): void {
    const now = performance.now();
    for (const p of this.#batch) {
      if (p.settled || p.deadline > now) continue;
      this.#observer.onTimeout?.();
      settle(p).reject(
        new InferrerError('DEADLINE_EXCEEDED', `the request was still running at its deadline (${Math.round(now - p.enqueued)} ms after it was queued)`, {
          queueMs: Math.round(now - p.enqueued),
        }),
      );
    }
    this.#arm();
  }
}

/** Rows [at, at + n) of every input, copied (a slice owns its memory, so it moves to the session thread). */
function sliceInputs(inputs: NamedTensors, rows: number, at: number, n: number): NamedTensors {
  const out: NamedTensors = {};
  for (const name in inputs) {
    const t = inputs[name]!;
    const per = t.data.length / rows;
    out[name] = { type: t.type, dims: [n, ...t.dims.slice(1)], data: t.data.slice(at * per, (at + n) * per) } as Tensor;
  }
  return out;
}

/** The outputs of a sliced request, copied into place as each slice finishes. */
class OutputAssembly {
  readonly #rows: number;
  readonly outputs: NamedTensors = {};

  constructor(rows: number) {
    this.#rows = rows;
  }

  /** Puts one slice's outputs at row `at`; false when an output does not have the slice's rows along dim 0. */
  add(part: NamedTensors, at: number, n: number): boolean {
    for (const name in part) {
      const t = part[name]!;
      if (t.dims.length === 0 || t.dims[0] !== n) return false;
      const per = n === 0 ? 0 : t.data.length / n;
      let whole = this.outputs[name];
      if (!whole) {
        const dims = [this.#rows, ...t.dims.slice(1)];
        const data = Array.isArray(t.data)
          ? new Array<string>(this.#rows * per)
          : new (t.data.constructor as new (n: number) => NumericArray)(this.#rows * per);
        whole = { type: t.type, dims, data } as Tensor;
        this.outputs[name] = whole;
      } else if (whole.type !== t.type || whole.data.length !== this.#rows * per) return false;
      if (Array.isArray(t.data)) for (let i = 0; i < t.data.length; i++) (whole.data as string[])[at * per + i] = t.data[i]!;
      else (whole.data as unknown as { set(a: ArrayLike<number | bigint>, o: number): void }).set(t.data, at * per);
    }
    return true;
  }
}
