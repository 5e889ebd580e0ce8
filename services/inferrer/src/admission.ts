/**
 * Edge admission: once the modelhosts have refused a model's request as full (QUEUE_FULL: their queues
 * would not reach it before its deadline), the Inferrer refuses that model's further requests itself, at
 * once, while as many are in flight as the modelhosts were holding. Such a request is answered 503 with
 * the modelhosts' Retry-After before its body is read, so under deep overload the cluster spends its CPU
 * on the requests it can serve instead of carrying bodies through the balancer only to be refused there,
 * and the refusals and deadlines stay prompt.
 *
 * The limit is learned, never configured: a refusal from a modelhost (for the model's queue being full,
 * not for a request's own short deadline) sets it to what was in flight then,
 * and each result raises it by 1/limit (additive increase: about one more request per limit's worth of
 * results), so it follows the capacity up as well as down, probing with about one request per window.
 * A model with nothing in flight forgets its limit: the next burst finds out afresh.
 */
import { InferrerError } from '@inferrer/core';
import { answerBy, modelhostBudgetMs } from './deadline.ts';

interface Entry {
  inFlight: number;
  /** Requests let through at once (its whole part); Infinity until a modelhost has refused one as full. */
  limit: number;
  /** Seconds, from the modelhosts' last QUEUE_FULL. */
  retryAfter: number;
}

export class Admission {
  readonly #models = new Map<string, Entry>();
  /** How long a modelhost's queue must be for a refusal to say the model is full for every request. */
  readonly #fullWaitMs: number;

  /** `requestTimeoutMs`: REQUEST_TIMEOUT_MS, the deadline of a request that does not set a shorter one. */
  constructor(requestTimeoutMs: number) {
    this.#fullWaitMs = modelhostBudgetMs(answerBy(0, requestTimeoutMs)) / 2;
  }

  /**
   * Lets a request for `model` through, or throws QUEUE_FULL (503 + Retry-After) when the modelhosts have
   * said they are full and as many requests as they were holding are in flight. Call the returned function
   * once when the request has ended: with nothing for a result, else with what it failed with.
   */
  enter(model: string): (failure?: unknown) => void {
    let e = this.#models.get(model);
    if (e && e.inFlight >= Math.floor(e.limit)) {
      throw new InferrerError(
        'QUEUE_FULL',
        `model '${model.slice(0, 200)}' is at capacity: the modelhosts refused requests beyond ${Math.floor(e.limit)} in flight`,
        { inFlight: e.inFlight },
        { retryAfter: e.retryAfter },
      );
    }
    if (!e) {
      e = { inFlight: 0, limit: Infinity, retryAfter: 1 };
      this.#models.set(model, e);
    }
    e.inFlight++;
    const entry = e;
    let done = false;
    return (failure) => {
      if (done) return;
      done = true;
      if (failure instanceof InferrerError && this.#full(failure)) {
        // What the modelhosts held besides this one.
        entry.limit = Math.max(1, Math.min(entry.limit, entry.inFlight - 1));
        if (failure.retryAfter !== undefined) entry.retryAfter = Math.max(1, failure.retryAfter);
      } else if (failure === undefined && Number.isFinite(entry.limit)) {
        entry.limit += 1 / entry.limit;
      }
      entry.inFlight--;
      if (entry.inFlight === 0) this.#models.delete(model);
    };
  }

  /** Runs `send` as an admitted request for `model` (enter, then leave with its outcome). */
  async admitted<T>(model: string, send: () => Promise<T>): Promise<T> {
    const leave = this.enter(model);
    try {
      const answer = await send();
      leave();
      return answer;
    } catch (err) {
      leave(err ?? 'failed');
      throw err;
    }
  }

  /** The learned limit for `model` (Infinity when none), for tests and the logs. */
  limitOf(model: string): number {
    return this.#models.get(model)?.limit ?? Infinity;
  }

  /**
   * Whether a modelhost's refusal says the model is full for every request: its queue was at its count
   * limit, or longer than half of what a request with the whole REQUEST_TIMEOUT_MS has there. A request
   * refused only because its own deadline was short (a gRPC deadline, a schedule-policy timeout) says
   * nothing about the others.
   */
  #full(err: InferrerError): boolean {
    if (err.code !== 'QUEUE_FULL') return false;
    const d = err.details as { limit?: unknown; waitMs?: unknown };
    return d.limit !== undefined || Number(d.waitMs) >= this.#fullWaitMs;
  }
}
