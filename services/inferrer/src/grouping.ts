/**
 * Groups predictions on their way to the modelhosts. Predictions for one model that arrive in the same
 * turn of the event loop go to the load balancer as one framed request (@inferrer/core frames.ts) to
 * `/v1/models/{name}/group`; the modelhost runs each as if it came alone (the batcher puts them in one
 * batch) and streams back one frame per answer as soon as it is ready. Under load this turns N HTTP
 * exchanges through nginx and the modelhost's HTTP layer into one; at low load a group has one member,
 * which goes out as an ordinary request. Nothing waits to fill a group: it is cut when the turn ends.
 *
 * With placement (placement.ts), members for different models travel together too when their placement
 * keys were learned to land on the same worker (KeyHomes): with many models, two requests for one model
 * seldom arrive together, but requests for one worker do. Such a group goes to `/v1/models/{one of its
 * models}/group` with the key of the member whose pairing was seen longest ago, and its answer refreshes
 * that pairing. A member whose key's worker is not known goes with its own model's members that took the
 * same key. The members of a costly model each take its next key, so a burst spreads over its keys' workers
 * as its requests alone would; a cheap model's members all take one.
 *
 * Each member keeps its own request id (the group's X-Request-Id lists them all, so nginx's access line
 * names every one), deadline, status and headers. A group that breaks off part-way (a modelhost killed
 * while answering) is sent once more for the members not yet answered: inference has no side effects,
 * the same reasoning that lets nginx retry a POST.
 *
 * Cancellation: a member whose client goes away before the group is sent leaves it. Once the group is on
 * its way, a member whose client goes away is answered REQUEST_CANCELLED at once and its frame, if one
 * comes, is dropped; when every member still unanswered has been given up, the group's request is
 * abandoned: its connection closes, nginx closes its own to the modelhost, and the modelhost takes the
 * members still queued out of its queue unrun. While some member of the group is still wanted, the
 * others run with it: the members of a group arrived together and run in the same batch, which costs
 * about as much with them as without (for a large model a batch's cost grows with its rows; a member that
 * is a large share of a batch is seldom grouped, since only bodies up to 64 KiB travel in groups).
 */
import { FRAMES_CONTENT_TYPE, FrameReader, InferrerError, encodeFrame } from '@inferrer/core';
import { modelhostBudgetMs } from './deadline.ts';
import { type KeyHome, type KeyHomes, PLACEMENT_HEADER } from './placement.ts';
import { type Upstream, type UpstreamResponse, cancelledError, errorFromAnswer, mapTransportError } from './upstream.ts';

export interface GroupMember {
  /** The model: members are grouped by it (consistent hashing in nginx keys on it too). */
  model: string;
  /** The modelhost route the member would take alone, query included. */
  path: string;
  /** x-request-id, content-type, x-request-timeout-ms and any protocol header. */
  headers: Record<string, string>;
  body: Buffer;
  /** When its answer is due (performance.now() clock): it is answered DEADLINE_EXCEEDED then if none came. */
  deadline?: number | undefined;
  /** Fires when the member's client goes away. */
  signal?: AbortSignal | undefined;
}

export interface GroupingOptions {
  /** Most members in one group; 1 turns grouping off. */
  maxRequests: number;
  timeoutMs: number;
  /** Called with each group's size as it is sent (a metric). */
  onGroup?: (size: number) => void;
  /** The placement key of the next request or group for a model (placement.ts); each dispatch takes one. */
  place?: (model: string) => string | undefined;
  /**
   * Whether a model's members that arrive together each take the model's next key, spreading over the
   * workers its keys land on (a costly model), instead of all taking one (placement.ts `spreads`).
   */
  spread?: (model: string) => boolean;
  /**
   * Where the keys land, learned from the answers (placement.ts): with it, members for different models
   * whose keys land on the same worker travel in one group.
   */
  homes?: KeyHomes | undefined;
}

/** A group's body stays under this; a member that would cross it starts the next group. */
const MAX_GROUP_BYTES = 1024 * 1024;
/** The group's X-Request-Id (every member's id, comma-separated) stays under this (nginx's header buffer is 8k). */
const MAX_ID_LIST = 4096;

/** Where a dispatch goes: the placement key that routes it, and the worker that key was learned to land on. */
interface GroupRoute {
  /** Names the group's path (the members may be for other models too). */
  model: string;
  key: string | undefined;
  worker?: string | undefined;
}

/** A group being filled. */
interface Filling {
  route: GroupRoute;
  /** When the route's key was last seen to land on its worker. */
  at: number;
  members: Pending[];
  bytes: number;
  ids: number;
}

interface Pending extends GroupMember {
  resolve(answer: UpstreamResponse): void;
  reject(err: unknown): void;
  /** What the member's client going away does now (leave the pending list, or the group in flight). */
  onCancel?: (() => void) | undefined;
}

export class Grouping {
  readonly #upstream: Upstream;
  readonly #opts: GroupingOptions;
  #pending = new Map<string, Pending[]>();
  #scheduled = false;

  constructor(upstream: Upstream, opts: GroupingOptions) {
    this.#upstream = upstream;
    this.#opts = opts;
  }

  /** Sends a member, alone or in the group it arrives with; resolves with its 2xx answer, throws its error. */
  send(member: GroupMember): Promise<UpstreamResponse> {
    if (member.signal?.aborted) return Promise.reject(cancelledError());
    if (this.#opts.maxRequests <= 1) return this.#alone(member);
    return new Promise((resolve, reject) => {
      const list = this.#pending.get(member.model);
      const signal = member.signal;
      const onAbort = (): void => p.onCancel?.();
      const settled = (): void => {
        p.onCancel = undefined;
        signal?.removeEventListener('abort', onAbort);
      };
      const p: Pending = {
        model: member.model,
        path: member.path,
        headers: member.headers,
        body: member.body,
        deadline: member.deadline,
        signal,
        resolve: (a) => {
          settled();
          resolve(a);
        },
        reject: (e) => {
          settled();
          reject(e);
        },
      };
      // Not sent yet: it leaves the members waiting for this turn to end.
      p.onCancel = () => {
        const waiting = this.#pending.get(member.model);
        const i = waiting?.indexOf(p) ?? -1;
        if (i !== -1) waiting!.splice(i, 1);
        p.reject(cancelledError());
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      if (list) list.push(p);
      else this.#pending.set(member.model, [p]);
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(this.#flush);
      }
    });
  }

  readonly #flush = (): void => {
    this.#scheduled = false;
    const all = this.#pending;
    this.#pending = new Map();
    const homes = this.#opts.homes;
    /**
     * Groups being filled: for a known worker, members of any model whose key lands there; otherwise the
     * members of one model that took the same key (or of one model, with placement off).
     */
    const filling = new Map<string, Filling>();
    for (const [model, members] of all) {
      // A costly model's members each take its next key, so a burst spreads over every worker its keys land
      // on (one key for the whole turn once sent 40 requests for a slow model to one worker while the other
      // had none); a cheap model's go together, the largest batch for the least overhead.
      const spread = this.#opts.spread?.(model) === true;
      let key: string | undefined;
      let home: KeyHome | undefined;
      let slot = '';
      for (let i = 0; i < members.length; i++) {
        const m = members[i]!;
        // The key, where it lands and the group it goes to are looked up once per key taken.
        if (i === 0 || spread) {
          key = this.#opts.place?.(model);
          home = key === undefined ? undefined : homes?.get(key);
          slot = home !== undefined ? `w\0${home.worker}` : `k\0${key ?? model}`;
        }
        let g = filling.get(slot);
        if (g !== undefined && !this.#fits(g, m)) {
          this.#dispatch(g.route, g.members);
          g = undefined;
        }
        if (g === undefined) {
          g = { route: { model, key, worker: home?.worker }, at: home?.at ?? 0, members: [], bytes: 0, ids: 0 };
          filling.set(slot, g);
        }
        this.#add(g, m);
        // A group for a worker is routed by the key seen there longest ago, so the pairings in use stay fresh.
        if (home !== undefined && home.at < g.at) {
          g.route = { model, key, worker: home.worker };
          g.at = home.at;
        }
      }
    }
    for (const g of filling.values()) this.#dispatch(g.route, g.members);
  };

  #fits(g: Filling, m: Pending): boolean {
    return (
      g.members.length < this.#opts.maxRequests && g.bytes + m.body.length <= MAX_GROUP_BYTES && g.ids + m.headers['x-request-id']!.length + 1 <= MAX_ID_LIST
    );
  }

  #add(g: Filling, m: Pending): void {
    g.members.push(m);
    g.bytes += m.body.length;
    g.ids += m.headers['x-request-id']!.length + 1;
  }

  #dispatch(route: GroupRoute, group: Pending[]): void {
    if (group.length === 0) return;
    this.#opts.onGroup?.(group.length);
    if (group.length === 1) {
      const m = group[0]!;
      // Alone, it goes as an ordinary request that its own signal abandons.
      m.onCancel = undefined;
      this.#alone(m, route).then(m.resolve, m.reject);
      return;
    }
    void this.#sendGroup(route, group, false);
  }

  /** The placement header of one dispatch (a group or a member alone), when placement is on. */
  static #placement(key: string | undefined): Record<string, string> {
    return key === undefined ? {} : { [PLACEMENT_HEADER]: key };
  }

  /** A member on its own: by the route it was given, else with its model's next key. */
  #alone(m: GroupMember, route?: GroupRoute): Promise<UpstreamResponse> {
    const key = route ? route.key : this.#opts.place?.(m.model);
    const headers = Object.assign({}, m.headers, Grouping.#placement(key));
    headers['content-length'] = String(m.body.length);
    const sent = this.#upstream.request({
      method: 'POST',
      path: m.path,
      headers,
      body: m.body,
      timeoutMs: this.#opts.timeoutMs,
      deadline: m.deadline,
      signal: m.signal,
    });
    const homes = this.#opts.homes;
    if (homes === undefined || key === undefined) return sent;
    return sent.then((res) => {
      homes.learn(key, res.headers['x-modelhost-id'], route?.worker);
      return res;
    });
  }

  async #sendGroup(route: GroupRoute, group: Pending[], retry: boolean): Promise<void> {
    /** Per member: 0 waiting, 1 answered by its frame, 2 answered DEADLINE_EXCEEDED at its deadline, 3 given up (its client went away). */
    const answered = new Uint8Array(group.length);
    let left = group.length;
    let begun = false;
    let failure: unknown;
    // When no member is wanted any more, the request is abandoned (the modelhost drops what is still queued).
    const abandon = new AbortController();
    group.forEach((m, i) => {
      m.onCancel = () => {
        if (answered[i]) return;
        answered[i] = 3;
        left--;
        m.reject(cancelledError());
        if (left === 0) abandon.abort();
      };
      if (m.signal?.aborted) m.onCancel();
    });
    if (left === 0) return;
    // Each member is answered by its own deadline, whatever the group still waits for.
    const now = performance.now();
    const timers = group.map((m, i) =>
      m.deadline === undefined
        ? undefined
        : setTimeout(
            () => {
              if (answered[i]) return;
              answered[i] = 2;
              left--;
              m.reject(new InferrerError('DEADLINE_EXCEEDED', 'no modelhost answered before the deadline'));
            },
            Math.max(0, m.deadline - now),
          ),
    );
    const deadlines = group.map((m) => m.deadline);
    const deadline = deadlines.every((d) => d !== undefined) ? Math.max(...(deadlines as number[])) : undefined;
    const reader = new FrameReader((header, body) => {
      const i = header.i;
      if (typeof i === 'number' && answered[i]! >= 2) return;
      if (typeof i !== 'number' || !Number.isInteger(i) || i < 0 || i >= group.length || answered[i])
        throw new InferrerError('INTERNAL', `a modelhost answered a group with a frame for member ${String(i)}`);
      const status = typeof header.status === 'number' ? header.status : 500;
      const headers = (typeof header.headers === 'object' && header.headers !== null ? header.headers : {}) as Record<string, string>;
      answered[i] = 1;
      left--;
      if (status < 300) group[i]!.resolve({ status, headers, bytes: body });
      else group[i]!.reject(errorFromAnswer(status, headers, body.toString('utf8')));
    });
    try {
      const body = Buffer.concat(group.map((m) => encodeFrame({ path: m.path, headers: m.headers }, m.body)));
      const res = await this.#upstream.request({
        method: 'POST',
        path: `/v1/models/${encodeURIComponent(route.model)}/group`,
        headers: {
          'content-type': FRAMES_CONTENT_TYPE,
          'content-length': String(body.length),
          'x-request-id': group.map((m) => m.headers['x-request-id']).join(','),
          'x-request-timeout-ms': deadline === undefined ? String(this.#opts.timeoutMs) : String(modelhostBudgetMs(deadline - performance.now())),
          ...Grouping.#placement(route.key),
        },
        body,
        timeoutMs: this.#opts.timeoutMs,
        deadline,
        signal: abandon.signal,
      });
      begun = true;
      if (route.key !== undefined) this.#opts.homes?.learn(route.key, res.headers['x-modelhost-id'], route.worker);
      for await (const chunk of res.body) reader.push(chunk as Buffer);
    } catch (err) {
      failure = err instanceof InferrerError ? err : mapTransportError(err);
    }
    for (const t of timers) if (t) clearTimeout(t);
    if (left === 0) return;
    const rest = group.filter((_, i) => !answered[i]);
    // A modelhost that does not know groups yet (a rolling upgrade): each member goes on its own.
    if (!begun && (failure as InferrerError | undefined)?.code === 'ROUTE_NOT_FOUND') {
      for (const m of rest) {
        m.onCancel = undefined;
        this.#alone(m).then(m.resolve, m.reject);
      }
      return;
    }
    if (begun && !retry) return this.#sendGroup(route, rest, true);
    const err =
      failure ??
      new InferrerError(
        'UPSTREAM_UNAVAILABLE',
        'a modelhost stopped answering part-way through a group of predictions',
        { answered: group.length - rest.length, of: group.length },
        { retryAfter: 1 },
      );
    for (const m of rest) m.reject(err);
  }
}
