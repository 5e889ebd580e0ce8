/**
 * The body gate: a large prediction body is read only when its model has room for it upstream.
 *
 * A request with a large declared body (BODY_GATE_BYTES, 256 KiB by default: a ResNet image as binary is
 * 0.6 MB, as JSON 3 MB) waits here, in arrival order per model, with its body unread: Node stops reading
 * its socket once 64 KB are in, and the kernel holds the rest. Only when fewer of the model's large
 * requests are upstream than its limit is it let through, to be read whole and sent on. So the bodies in
 * the Inferrer's memory, nginx's and the modelhosts' queues are bounded by what the model can use, not by
 * how many clients send. A client that goes away while it waits is found out when its turn comes (its
 * body is delivered before its close): the body is read then and the request dropped before it goes
 * upstream (request-body.ts), so it costs its body's reading, not a trip through nginx to a modelhost's
 * queue. Without the gate, 64 clients that give up on ResNet-50 after 200 ms put about 100 of their images
 * a second into the modelhosts' queues, only to be taken out again; with it, about 10.
 *
 * The limit is learned from the modelhosts' answers (their Server-Timing `queue` and `compute`), never
 * configured: while answers waited in a modelhost's queue no longer than two runs of the model (plus 5 ms),
 * the queues hold little more than keeps every slot busy (a batch running and the next one forming), and
 * the limit grows by 1/limit per answer (additive increase); an answer that waited longer lowers it by a
 * fifth, at most once per limit's worth of answers (multiplicative decrease), never below 2. A model's
 * limit starts at 8 and is forgotten when nothing of it is in flight or waiting.
 *
 * A request let through holds its place while its body is read, up to READ_GRACE_MS: a client that sends
 * slowly gives its place back then and goes on as if there were no gate, so slow senders cannot hold a
 * model's places (and the body guard, http/body-guard.ts, watches a gated body only from when it is let
 * through). A request waits until its deadline (504) or its client is found gone. It is refused at once
 * with 503 QUEUE_FULL when the model already has `maxWaiting` waiting (Retry-After 1), or when, at the pace
 * places have been freeing while requests waited, its turn would come after its deadline (Retry-After:
 * how much later).
 */
import { InferrerError } from '@inferrer/core';

const START_LIMIT = 8;
const MIN_LIMIT = 2;
/** How long a request let through may take to receive its body before it gives its place back. */
const READ_GRACE_MS = 250;
/** An answer that waited no longer than two runs plus this in a modelhost's queue says the queues are short. */
const QUEUE_SLACK_MS = 5;

interface Waiter {
  /** Takes a place for it and lets it go on. */
  admit: () => void;
  fail: (err: InferrerError) => void;
}

interface Entry {
  /** Requests let through and not yet answered (or past their read grace without their whole body). */
  inFlight: number;
  limit: number;
  waiting: Waiter[];
  /** Answers since the limit was last lowered. */
  sinceDecrease: number;
  /** Milliseconds between two places freed while requests waited (a moving average), once measured. */
  interval: number | undefined;
  /** When a place was last freed while requests waited. */
  lastFreed: number | undefined;
}

/** A request's place upstream: `bodyRead` once its body is in, `done` with the answer's Server-Timing (if any). */
export interface GatePass {
  bodyRead(): void;
  done(serverTiming?: string): void;
}

export interface BodyGateOptions {
  /** Bodies declared this large or larger wait at the gate; 0 turns the gate off. */
  minBytes: number;
  /** Requests one model may have waiting; the next is refused with QUEUE_FULL. */
  maxWaiting: number;
}

export class BodyGate {
  readonly #opts: BodyGateOptions;
  readonly #models = new Map<string, Entry>();
  #waiting = 0;

  constructor(opts: BodyGateOptions) {
    this.#opts = opts;
  }

  /** Whether a request that declares `bytes` of body waits at the gate. */
  applies(bytes: number | undefined): boolean {
    return this.#opts.minBytes > 0 && bytes !== undefined && bytes >= this.#opts.minBytes;
  }

  /** Requests waiting now, over every model (a gauge). */
  get waiting(): number {
    return this.#waiting;
  }

  /** The learned limit for `model` (undefined when it has none now), for tests and the logs. */
  limitOf(model: string): number | undefined {
    return this.#models.get(model)?.limit;
  }

  /**
   * Resolves once `model` has room for one more large body upstream. Rejects with DEADLINE_EXCEEDED at
   * `deadline` (performance.now() clock), QUEUE_FULL when too many wait or its turn would come after the
   * deadline, or REQUEST_CANCELLED when `signal` aborts; a request that was refused or left holds nothing.
   */
  enter(model: string, deadline: number, signal: AbortSignal | undefined): Promise<GatePass> {
    let e = this.#models.get(model);
    if (!e) {
      e = { inFlight: 0, limit: START_LIMIT, waiting: [], sinceDecrease: 0, interval: undefined, lastFreed: undefined };
      this.#models.set(model, e);
    }
    const entry = e;
    if (entry.inFlight < Math.floor(entry.limit) && entry.waiting.length === 0) return Promise.resolve(this.#pass(model, entry));
    if (entry.waiting.length >= this.#opts.maxWaiting) {
      return Promise.reject(
        new InferrerError(
          'QUEUE_FULL',
          `model '${model.slice(0, 200)}' has ${entry.waiting.length} large requests waiting for room upstream`,
          { waiting: entry.waiting.length },
          { retryAfter: 1 },
        ),
      );
    }
    // At the pace places free, would it be let through before its deadline? If not, say so now (as a
    // modelhost does for its queue) rather than hold the client until 504.
    const left = deadline - performance.now();
    const expected = entry.interval === undefined ? 0 : (entry.waiting.length + 1) * entry.interval;
    if (expected > left) {
      return Promise.reject(
        new InferrerError(
          'QUEUE_FULL',
          `model '${model.slice(0, 200)}' has ${entry.waiting.length} large requests waiting for room upstream; at one place freed every ${Math.round(entry.interval!)} ms this one would wait about ${Math.round(expected)} ms, past its deadline`,
          { waiting: entry.waiting.length, expectedWaitMs: Math.round(expected) },
          { retryAfter: Math.min(60, Math.max(1, Math.ceil((expected - left) / 1000))) },
        ),
      );
    }
    if (signal?.aborted) return Promise.reject(new InferrerError('REQUEST_CANCELLED', 'the client went away'));
    return new Promise<GatePass>((resolve, reject) => {
      const settle = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const i = entry.waiting.indexOf(waiter);
        if (i >= 0) {
          entry.waiting.splice(i, 1);
          this.#waiting--;
        }
      };
      const waiter: Waiter = {
        admit: () => {
          settle();
          resolve(this.#pass(model, entry));
        },
        fail: (err) => {
          settle();
          reject(err);
          this.#forgetIfIdle(model, entry);
        },
      };
      const onAbort = (): void =>
        waiter.fail(
          signal?.reason instanceof InferrerError ? signal.reason : new InferrerError('REQUEST_CANCELLED', 'the client went away while its request waited'),
        );
      const timer = setTimeout(
        () => waiter.fail(new InferrerError('DEADLINE_EXCEEDED', 'the request waited for room upstream until its deadline')),
        Math.max(0, deadline - performance.now()),
      );
      signal?.addEventListener('abort', onAbort, { once: true });
      entry.waiting.push(waiter);
      this.#waiting++;
    });
  }

  #pass(model: string, entry: Entry): GatePass {
    entry.inFlight++;
    let holding = true;
    const release = (): void => {
      if (!holding) return;
      holding = false;
      entry.inFlight--;
      if (entry.waiting.length > 0) {
        // While requests wait, places free at the pace the modelhosts answer: the gate's throughput.
        const now = performance.now();
        if (entry.lastFreed !== undefined) {
          const gap = now - entry.lastFreed;
          entry.interval = entry.interval === undefined ? gap : 0.9 * entry.interval + 0.1 * gap;
        }
        entry.lastFreed = now;
      } else {
        entry.lastFreed = undefined;
      }
      this.#admitNext(model, entry);
    };
    const grace = setTimeout(release, READ_GRACE_MS);
    grace.unref();
    return {
      bodyRead: () => clearTimeout(grace),
      done: (timing) => {
        clearTimeout(grace);
        if (timing !== undefined) this.#learn(entry, timing);
        release();
      },
    };
  }

  /** Lets waiting requests through while there is room; forgets the model when nothing is left of it. */
  #admitNext(model: string, entry: Entry): void {
    while (entry.inFlight < Math.floor(entry.limit) && entry.waiting.length > 0) entry.waiting[0]!.admit();
    this.#forgetIfIdle(model, entry);
  }

  #forgetIfIdle(model: string, entry: Entry): void {
    if (entry.inFlight === 0 && entry.waiting.length === 0 && this.#models.get(model) === entry) this.#models.delete(model);
  }

  /** Additive increase while the modelhosts' queues stay within one run, multiplicative decrease beyond. */
  #learn(entry: Entry, timing: string): void {
    const queue = durationOf(timing, 'queue');
    const compute = durationOf(timing, 'compute');
    if (queue === undefined || compute === undefined) return;
    entry.sinceDecrease++;
    if (queue <= 2 * compute + QUEUE_SLACK_MS) {
      entry.limit += 1 / entry.limit;
    } else if (entry.sinceDecrease >= entry.limit) {
      entry.limit = Math.max(MIN_LIMIT, entry.limit * 0.8);
      entry.sinceDecrease = 0;
    }
  }
}

/** A metric's `dur` in a Server-Timing header (`queue;dur=1.20, compute;dur=3.40`), or undefined. */
function durationOf(header: string, metric: string): number | undefined {
  const at = header.indexOf(`${metric};dur=`);
  if (at < 0 || (at > 0 && header[at - 1] !== ' ' && header[at - 1] !== ',')) return undefined;
  const n = Number.parseFloat(header.slice(at + metric.length + 5));
  return Number.isFinite(n) ? n : undefined;
}
