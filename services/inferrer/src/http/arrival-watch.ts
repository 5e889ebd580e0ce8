/**
 * The frame the HTTP body guard (body-guard.ts) and the gRPC message guard (protocol/grpc/message-guard.ts)
 * share: the requests still arriving, checked on one timer every TICK_MS that runs only while any are;
 * how many of them each client address has stalled, against MAX_PENDING_BODIES_PER_CLIENT; and the rate
 * rule (Apache's mod_reqtimeout): complete within BODY_TIMEOUT_MS plus one second per BODY_MIN_BYTES_PER_S
 * bytes received. What counts as stalled, and what a cut does, is each guard's own.
 */
import { loopLagMs } from '../loop-lag.ts';

export interface BodyLimits {
  timeoutMs: number;
  minBytesPerSecond: number;
  maxPendingPerClient: number;
}

/** What the watch keeps of a request still arriving. */
export interface Arrival {
  client: string;
  /** performance.now() when it began. */
  started: number;
  /** Counted as stalled against its address. */
  pending: boolean;
}

/** How long a request may bring nothing before it counts as stalled. */
export const PENDING_AFTER_MS = 1000;
const TICK_MS = 250;

export class ArrivalWatch<A extends Arrival> {
  readonly limits: BodyLimits;
  readonly #check: (a: A, now: number, lag: number) => void;
  readonly #arriving = new Set<A>();
  readonly #pending = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;

  /**
   * `check` looks at each request on every tick, given the time and the event loop's lag (the time the
   * Inferrer was too busy to read, which counts for nobody: loop-lag.ts).
   */
  constructor(limits: BodyLimits, check: (a: A, now: number, lag: number) => void) {
    this.limits = limits;
    this.#check = check;
  }

  add(a: A): void {
    this.#arriving.add(a);
    this.#timer ??= setInterval(() => this.#tick(), TICK_MS).unref();
  }

  /** Stops watching a request; true when it was still watched. */
  forget(a: A): boolean {
    if (!this.#arriving.delete(a)) return false;
    if (a.pending) {
      const n = (this.#pending.get(a.client) ?? 1) - 1;
      if (n <= 0) this.#pending.delete(a.client);
      else this.#pending.set(a.client, n);
    }
    if (this.#arriving.size === 0 && this.#timer) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
    return true;
  }

  /** Counts a request as stalled against its address; true when that puts the address over its cap. */
  stall(a: A): boolean {
    a.pending = true;
    const n = (this.#pending.get(a.client) ?? 0) + 1;
    this.#pending.set(a.client, n);
    return n > this.limits.maxPendingPerClient;
  }

  /** True when `received` bytes in `elapsed` ms is slower than the rate rule allows. */
  tooSlow(elapsed: number, received: number): boolean {
    return elapsed > this.limits.timeoutMs + (received / this.limits.minBytesPerSecond) * 1000;
  }

  #tick(): void {
    const now = performance.now();
    const lag = loopLagMs();
    for (const a of this.#arriving) this.#check(a, now, lag);
  }
}
