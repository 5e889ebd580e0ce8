/**
 * Model-aware placement: which workers a model's requests go to. The Inferrer knows each model's traffic;
 * the load balancer knows the workers. So the Inferrer gives every model `k` replica keys
 * (`name#0` … `name#k-1`) and puts one of them on each prediction, round-robin, in the
 * X-Inferrer-Placement header; the balancer hashes that header consistently (nginx `hash
 * $http_x_inferrer_placement consistent`, BALANCE=placement; the built-in balancer the same way). A
 * model's requests then land on the few workers its keys map to, which keep it loaded, instead of loading
 * it everywhere; a worker that dies moves only its own keys to the next workers on the ring.
 *
 * `k` follows the model's traffic: the largest of its request rate over PLACEMENT_RATE_PER_REPLICA, its
 * requests in flight over PLACEMENT_INFLIGHT_PER_REPLICA (both smoothed), and, for a model whose requests
 * are costly, the compute its requests in flight now ask for over WORK_PER_REPLICA_MS (a burst of 24 for a
 * model that runs 75 ms each once went to one worker: smoothed, the burst was too short to count), at most
 * PLACEMENT_MAX_REPLICAS. It grows at once and shrinks one key per PLACEMENT_COOL_S while the traffic
 * stays below it (or all the way after a quiet spell that long), so a model spreads as it heats up and
 * gathers back as it cools. Keys are taken in order (`#0` stays while `#5` comes and goes), so growing
 * only adds workers and shrinking only takes the last ones away.
 *
 * Consistent hashing puts two keys on one worker as often as not when the workers are few (two keys on
 * two workers: half the time), which spread a hot model over fewer workers than its traffic asked for.
 * So where the pairings of keys and workers are known (KeyHomes, learned from the answers), a key that
 * lands on a worker an earlier key of the model already covers is passed over for the next one: `k` keys
 * cover `k` workers, or every worker there is. A key not learned yet is used, which is how it is learned.
 *
 * Placement also keeps what a model's requests cost to run (the compute time of each answer's batch over
 * the requests in it, from the modelhost's Server-Timing and X-Inferrer-Batch). Predictions that arrive
 * together travel as one group (grouping.ts); for a costly model they are spread over its keys instead
 * (`spreads`), so a burst is run by as many workers as the model has keys, not by the one a single key lands on.
 */

export interface PlacementOptions {
  /** Off: no header (the balancer spreads by its own rule). */
  enabled: boolean;
  maxReplicas: number;
  /** Requests per second one replica key takes before the model gets another. */
  ratePerReplica: number;
  /** Requests in flight per replica key before the model gets another. */
  inflightPerReplica: number;
  /** How long traffic must stay low before a key is taken away, ms. */
  coolMs: number;
}

export const PLACEMENT_HEADER = 'x-inferrer-placement';

/** Time constant of the rate and in-flight averages, ms. */
const SMOOTHING_MS = 5000;
/** Models tracked before idle ones are forgotten. */
const MAX_TRACKED = 10_000;
/** How long a model's keys in use (`#spread`) are kept before they are chosen again from what is known, ms. */
const SPREAD_MS = 250;
/** Keys looked at per key wanted, for keys on workers not yet covered. */
const SCAN_PER_KEY = 4;
/**
 * A model whose requests each cost at least this much compute, ms, has the predictions that arrive together
 * spread over its keys. Below it, one more group upstream (a tenth of a millisecond or two of CPU along the
 * way) and smaller batches cost more than running the burst on one worker loses: iris at 128 clients ran
 * at half the rate with its groups split.
 */
const SPREAD_COST_MS = 1;
/** A model gets a key per this much compute in flight, ms (its requests in flight now × what one costs). */
const WORK_PER_REPLICA_MS = 250;
/** Weight of the newest answer in a model's compute cost. */
const COST_WEIGHT = 0.1;

interface Traffic {
  /** Requests per second, exponentially smoothed. */
  rate: number;
  /** Requests in flight now, and smoothed. */
  inflight: number;
  inflightAvg: number;
  last: number;
  replicas: number;
  /** Since when the traffic has asked for fewer replicas (0: it has not). */
  lowSince: number;
  turn: number;
  /** The keys in use, chosen for `spreadFor` replicas at `spreadAt`. */
  spread: string[];
  spreadFor: number;
  spreadAt: number;
  /** Compute per request, ms, smoothed over the answers (-1: none yet). */
  costMs: number;
}

export interface PlacementView {
  replicas: number;
  requests_per_second: number;
  in_flight: number;
  /** What a request of the model costs to run, ms (smoothed over its answers); absent before the first. */
  compute_ms_per_request?: number;
}

export class Placement {
  readonly #opts: PlacementOptions;
  readonly #models = new Map<string, Traffic>();
  readonly #now: () => number;
  readonly #homes: KeyHomes | undefined;

  /** `homes`: where keys were seen to land, so that a model's keys cover different workers. */
  constructor(opts: PlacementOptions, now: () => number = () => performance.now(), homes?: KeyHomes) {
    this.#opts = opts;
    this.#now = now;
    this.#homes = homes;
  }

  get enabled(): boolean {
    return this.#opts.enabled;
  }

  /** A prediction for `model` starts: counted into its traffic; `end(model)` must follow when it is answered. */
  begin(model: string): void {
    if (!this.#opts.enabled) return;
    const now = this.#now();
    let t = this.#models.get(model);
    if (!t) {
      if (this.#models.size >= MAX_TRACKED) this.#forget();
      t = { rate: 0, inflight: 0, inflightAvg: 0, last: now, replicas: 1, lowSince: 0, turn: 0, spread: [], spreadFor: 0, spreadAt: 0, costMs: -1 };
      this.#models.set(model, t);
    }
    const decay = Math.exp(-Math.max(0, now - t.last) / SMOOTHING_MS);
    t.rate = t.rate * decay + 1000 / SMOOTHING_MS;
    t.inflight++;
    t.inflightAvg = t.inflightAvg * decay + t.inflight * (1 - decay || 1 / 64);
    const quiet = now - t.last;
    t.last = now;
    const want = Math.min(
      this.#opts.maxReplicas,
      Math.max(
        1,
        Math.ceil(t.rate / this.#opts.ratePerReplica),
        Math.ceil(t.inflightAvg / this.#opts.inflightPerReplica),
        Math.ceil((t.inflight * t.costMs) / WORK_PER_REPLICA_MS),
      ),
    );
    if (want >= t.replicas || quiet >= this.#opts.coolMs) {
      t.replicas = want;
      t.lowSince = 0;
    } else if (t.lowSince === 0) {
      t.lowSince = now;
    } else if (now - t.lowSince >= this.#opts.coolMs) {
      t.replicas--;
      t.lowSince = t.replicas > want ? now : 0;
    }
  }

  /**
   * The placement key for the next request (or group of requests) of `model`, round-robin over its
   * replica keys; undefined when placement is off.
   */
  key(model: string): string | undefined {
    if (!this.#opts.enabled) return undefined;
    const t = this.#models.get(model);
    if (!t) return `${model}#0`;
    const now = this.#now();
    if (t.spreadFor !== t.replicas || now - t.spreadAt > SPREAD_MS) {
      t.spread = this.#spread(model, t.replicas);
      t.spreadFor = t.replicas;
      t.spreadAt = now;
    }
    const i = t.turn % t.spread.length;
    t.turn = (t.turn + 1) % 1_000_000;
    return t.spread[i];
  }

  /** `replicas` keys of `model`, in order, passing over those known to land where an earlier one does. */
  #spread(model: string, replicas: number): string[] {
    const homes = this.#homes;
    const keys: string[] = [];
    const covered = new Set<string>();
    for (let i = 0; keys.length < replicas && i < replicas * SCAN_PER_KEY; i++) {
      const key = `${model}#${i}`;
      const worker = homes?.get(key)?.worker;
      if (worker !== undefined && covered.has(worker)) continue;
      if (worker !== undefined) covered.add(worker);
      keys.push(key);
    }
    return keys;
  }

  /** A prediction for `model` is done; `headers`: its answer's, when it was answered. */
  end(model: string, headers?: Record<string, string | string[] | undefined>): void {
    const t = this.#models.get(model);
    if (!t) return;
    t.inflight = Math.max(0, t.inflight - 1);
    const cost = headers === undefined ? undefined : computePerRequest(headers);
    if (cost !== undefined) t.costMs = t.costMs < 0 ? cost : t.costMs + COST_WEIGHT * (cost - t.costMs);
  }

  /** Whether predictions for `model` that arrive together should go by their own keys (a costly model). */
  spreads(model: string): boolean {
    return (this.#models.get(model)?.costMs ?? -1) >= SPREAD_COST_MS;
  }

  /** What placement does for a model now (for its metadata); undefined when it has had no traffic. */
  view(model: string): PlacementView | undefined {
    const t = this.#models.get(model);
    if (!t || !this.#opts.enabled) return undefined;
    const decay = Math.exp(-Math.max(0, this.#now() - t.last) / SMOOTHING_MS);
    return {
      replicas: t.replicas,
      requests_per_second: Number((t.rate * decay).toFixed(3)),
      in_flight: t.inflight,
      ...(t.costMs >= 0 ? { compute_ms_per_request: Number(t.costMs.toFixed(3)) } : {}),
    };
  }

  /** Drops the models with nothing in flight that were idle longest (half of them). */
  #forget(): void {
    const idle = [...this.#models].filter(([, t]) => t.inflight === 0).sort((a, b) => a[1].last - b[1].last);
    for (const [name] of idle.slice(0, Math.max(1, idle.length >> 1))) this.#models.delete(name);
  }
}

/**
 * The compute an answer's batch took over the requests in it, ms, from the modelhost's headers
 * (`Server-Timing: …, compute;dur=12.50` and `X-Inferrer-Batch: requests=4;rows=4`); undefined for an
 * answer without them (a cache hit runs in no batch).
 */
export function computePerRequest(headers: Record<string, string | string[] | undefined>): number | undefined {
  const timing = headers['server-timing'];
  const batch = headers['x-inferrer-batch'];
  if (typeof timing !== 'string' || typeof batch !== 'string') return undefined;
  const ms = /(?:^|[ ,])compute;dur=(\d+(?:\.\d+)?)/.exec(timing);
  const requests = /(?:^|;)requests=(\d+)/.exec(batch);
  if (ms === null || requests === null || Number(requests[1]) < 1) return undefined;
  return Number(ms[1]) / Number(requests[1]);
}

/** What KeyHomes knows of a key: the worker that last answered it, and when. */
export interface KeyHome {
  worker: string;
  at: number;
}

/** How long a learned key → worker pairing is trusted without being seen again, ms. */
const HOME_TTL_MS = 10_000;
/** Pairings kept; the oldest go first. */
const MAX_HOMES = 20_000;

/**
 * Which worker each placement key's requests land on, learned from the answers (each carries its
 * X-Modelhost-Id). The balancer's ring is not the Inferrer's to compute, but it is stable: a key keeps its
 * worker until the set of workers changes. Knowing it, the Inferrer sends predictions for different models
 * that arrive together and are bound for the same worker as one group (grouping.ts), routed by one of
 * their keys. A pairing is trusted for HOME_TTL_MS after it was last seen; when a request routed by a key
 * comes back from another worker than the one expected, the ring has changed (or the balancer retried
 * elsewhere), and everything learned about the expected worker is forgotten.
 */
export class KeyHomes {
  readonly #homes = new Map<string, KeyHome>();
  /** The keys learned per worker, so forgetting a worker costs its own keys only. */
  readonly #byWorker = new Map<string, Set<string>>();
  readonly #now: () => number;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /** Where `key` lands, when that was seen within HOME_TTL_MS. */
  get(key: string): KeyHome | undefined {
    const home = this.#homes.get(key);
    if (home === undefined) return undefined;
    if (this.#now() - home.at <= HOME_TTL_MS) return home;
    this.#drop(key);
    return undefined;
  }

  /**
   * A request routed by `key` was answered by `worker` (its X-Modelhost-Id; nothing is learned without
   * one). `expected`: the worker it was sent to on what was known.
   */
  learn(key: string, worker: string | string[] | undefined, expected?: string): void {
    if (typeof worker !== 'string' || worker === '') return;
    if (expected !== undefined && expected !== worker) this.forget(expected);
    this.#drop(key);
    this.#homes.set(key, { worker, at: this.#now() });
    let keys = this.#byWorker.get(worker);
    if (keys === undefined) this.#byWorker.set(worker, (keys = new Set()));
    keys.add(key);
    if (this.#homes.size > MAX_HOMES) this.#drop(this.#homes.keys().next().value!);
  }

  /** Forgets every key learned to land on `worker`. */
  forget(worker: string): void {
    const keys = this.#byWorker.get(worker);
    if (keys === undefined) return;
    for (const key of keys) this.#homes.delete(key);
    this.#byWorker.delete(worker);
  }

  get size(): number {
    return this.#homes.size;
  }

  #drop(key: string): void {
    const home = this.#homes.get(key);
    if (home === undefined) return;
    this.#homes.delete(key);
    const keys = this.#byWorker.get(home.worker);
    keys?.delete(key);
    if (keys?.size === 0) this.#byWorker.delete(home.worker);
  }
}
