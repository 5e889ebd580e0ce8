/**
 * Job items run below online requests. The modelhosts' batchers put job requests (X-Inferrer-Priority:
 * batch) behind online ones; here, at the source, job requests also go out through a small adaptive
 * window, so they do not fill the workers' queues in the first place.
 *
 * - With no online traffic the window grows by one per success up to JOBS_CONCURRENCY.
 * - While online predictions are in flight on this Inferrer (or one finished in the last ONLINE_QUIET_MS)
 *   the window is one request, and each job request waits for a short gap that grows with the online load,
 *   so an online request never queues behind more than one job request on a worker.
 * - An overloaded answer (503 QUEUE_FULL / not ready, 502, 504) halves the window and backs off
 *   exponentially (100 ms … 5 s, or the Retry-After the answer carried).
 */
import type { OnlineLoad } from '../dataplane.ts';

export const ONLINE_QUIET_MS = 250;
const MAX_BACKOFF_MS = 5000;

export class Pacer {
  readonly #online: OnlineLoad;
  readonly #max: number;
  #window: number;
  #inFlight = 0;
  #waiters: (() => void)[] = [];
  #backoffMs = 0;
  #pausedUntil = 0;

  constructor(online: OnlineLoad, maxConcurrency: number) {
    this.#online = online;
    this.#max = Math.max(1, maxConcurrency);
    this.#window = 1;
  }

  get window(): number {
    return this.#limit();
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  #limit(): number {
    return this.#online.active(ONLINE_QUIET_MS) ? 1 : Math.max(1, Math.floor(this.#window));
  }

  /** Runs `fn` inside the window (waiting for room, for a back-off, and for a gap while online traffic runs). */
  async run<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    await this.#acquire(signal);
    try {
      return await fn();
    } finally {
      this.#inFlight--;
      this.#wake();
    }
  }

  /** A job request succeeded: grow the window (only while no online traffic competes). */
  success(): void {
    this.#backoffMs = 0;
    if (!this.#online.active(ONLINE_QUIET_MS)) this.#window = Math.min(this.#max, this.#window + 1);
  }

  /** The workers are overloaded: halve the window and pause for a while. */
  overloaded(retryAfterS?: number): void {
    this.#window = Math.max(1, this.#window / 2);
    this.#backoffMs = Math.min(MAX_BACKOFF_MS, this.#backoffMs ? this.#backoffMs * 2 : 100);
    const pause = retryAfterS !== undefined ? Math.min(MAX_BACKOFF_MS, Math.max(this.#backoffMs, retryAfterS * 1000)) : this.#backoffMs;
    this.#pausedUntil = Math.max(this.#pausedUntil, performance.now() + pause);
  }

  async #acquire(signal?: AbortSignal): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      const wait = this.#pausedUntil - performance.now();
      if (wait > 0) {
        await sleep(wait, signal);
        continue;
      }
      if (this.#inFlight < this.#limit()) {
        // Online traffic: leave a gap so that online requests find the workers' queues (nearly) empty.
        if (this.#online.active(ONLINE_QUIET_MS)) {
          this.#inFlight++;
          const gap = Math.min(50, 2 + this.#online.inFlight);
          await sleep(gap, signal).catch((err: unknown) => {
            this.#inFlight--;
            this.#wake();
            throw err;
          });
          return;
        }
        this.#inFlight++;
        return;
      }
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        // Re-check now and then: the limit also moves with online traffic that has gone quiet.
        setTimeout(resolve, ONLINE_QUIET_MS).unref();
      });
    }
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const r of w) r();
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
