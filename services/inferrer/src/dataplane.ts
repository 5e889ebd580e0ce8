/**
 * The Inferrer's dataplane: it names the model (normalised and checked), sets the deadline and request id,
 * and streams the body to the load balancer. It never parses a tensor: the modelhost does that once.
 */
import type { Readable } from 'node:stream';
import { InferrerError, parseModelName, parseVersion } from '@inferrer/core';
import type { InferrerConfig } from './config.ts';
import { Admission } from './admission.ts';
import { BodyGate } from './body-gate.ts';
import { answerBy, modelhostBudgetMs, takenAt } from './deadline.ts';
import { Grouping } from './grouping.ts';
import { KeyHomes, PLACEMENT_HEADER, Placement } from './placement.ts';
import { type Upstream, type UpstreamResponse, cancelledError } from './upstream.ts';

export interface ForwardOptions {
  reqId: string;
  /** Buffer[]: a body in parts, sent one after the other (contentLength is then required). */
  body: Readable | Buffer | Buffer[] | string;
  contentLength?: number | undefined;
  contentType?: string | undefined;
  /** Batch-job items: not counted as online load, and marked for the workers. */
  priority?: 'online' | 'batch';
  /** This request's deadline from now, when shorter than REQUEST_TIMEOUT_MS (a gRPC deadline). */
  timeoutMs?: number | undefined;
  /** When the answer is due (performance.now() clock); default REQUEST_TIMEOUT_MS from now. */
  deadline?: number | undefined;
  /** Fires when the client goes away: the request is abandoned upstream (grouping.ts, upstream.ts). */
  signal?: AbortSignal | undefined;
}

/** Query options a v1 prediction passes on. */
const V1_QUERY = ['version', 'output', 'outputs'] as const;
/** Bodies up to this size (read whole already) may travel in a group with others for the same model. */
const GROUPED_BODY = 65536;

/** Query options an image prediction passes on. */
const IMAGE_QUERY = ['version', 'top_k', 'raw', 'score_threshold', 'iou_threshold', 'output', 'outputs'] as const;

/** Online predictions in flight on this Inferrer, counted by the dataplane. */
export class OnlineLoad {
  inFlight = 0;
  lastAt = 0;

  begin(): void {
    this.inFlight++;
    this.lastAt = performance.now();
  }

  end(): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
    this.lastAt = performance.now();
  }

  /** Online traffic now or within the last `quietMs`. */
  active(quietMs: number): boolean {
    return this.inFlight > 0 || performance.now() - this.lastAt < quietMs;
  }
}

export class DataPlane {
  readonly #upstream: Upstream;
  readonly #config: InferrerConfig;
  /** Online predictions in flight (batch jobs back off while there are any). */
  readonly online = new OnlineLoad();
  /** Which replica key each prediction carries to the balancer (placement.ts). */
  readonly placement: Placement;
  /** Refuses a model's requests at the edge while its modelhosts are full (admission.ts). */
  readonly admission: Admission;
  /** Large prediction bodies wait here, unread, until their model has room upstream (body-gate.ts). */
  readonly gate: BodyGate;
  readonly #grouping: Grouping;
  readonly #homes: KeyHomes | undefined;

  constructor(upstream: Upstream, config: InferrerConfig, onGroup?: (size: number) => void) {
    this.#upstream = upstream;
    this.#config = config;
    // Where placement keys land, learned from the answers: a model's keys are chosen to cover different
    // workers, and predictions for different models bound for one worker travel as one group.
    const homes = config.placement.enabled ? new KeyHomes() : undefined;
    this.#homes = homes;
    this.placement = new Placement(config.placement, undefined, homes);
    this.admission = new Admission(config.requestTimeoutMs);
    this.gate = new BodyGate(config.bodyGate);
    this.#grouping = new Grouping(upstream, {
      maxRequests: config.groupMaxRequests,
      timeoutMs: config.requestTimeoutMs,
      place: (model) => this.placement.key(model),
      spread: (model) => this.placement.spreads(model),
      homes,
      ...(onGroup ? { onGroup } : {}),
    });
  }

  /** FRACTAL v1 prediction: forwards `{"values": …}` to a modelhost; resolves with its 2xx answer. */
  predictV1(rawName: string, query: URLSearchParams, opts: ForwardOptions): Promise<UpstreamResponse> {
    const name = parseModelName(rawName);
    const q = new URLSearchParams();
    for (const k of V1_QUERY) {
      const v = query.get(k);
      if (v === null) continue;
      if (k === 'version') parseVersion(v);
      if (v.length > 256) throw new InferrerError('INVALID_REQUEST', `query parameter ${k} is too long`);
      q.set(k, v);
    }
    const qs = q.toString();
    return this.#forward(name, `/v1/models/${encodeURIComponent(name)}/predict${qs ? `?${qs}` : ''}`, opts);
  }

  /**
   * FRACTAL v1 prediction with images (multipart files): the body streams to a modelhost's
   * predict-images route untouched, boundary and all; the modelhost decodes the images.
   */
  predictImages(rawName: string, query: URLSearchParams, opts: ForwardOptions): Promise<UpstreamResponse> {
    const name = parseModelName(rawName);
    const q = new URLSearchParams();
    for (const k of IMAGE_QUERY) {
      const v = query.get(k);
      if (v === null) continue;
      if (k === 'version') parseVersion(v);
      if (v.length > 256) throw new InferrerError('INVALID_REQUEST', `query parameter ${k} is too long`);
      q.set(k, v);
    }
    const qs = q.toString();
    return this.#forward(name, `/v1/models/${encodeURIComponent(name)}/predict-images${qs ? `?${qs}` : ''}`, opts);
  }

  /** Open Inference Protocol infer: forwards the JSON or binary body as it came. */
  inferV2(rawName: string, rawVersion: string | undefined, opts: ForwardOptions & { headerLength?: string | undefined }): Promise<UpstreamResponse> {
    const name = parseModelName(rawName);
    const version = rawVersion === undefined ? '' : `/versions/${parseVersion(rawVersion)}`;
    const extra: Record<string, string> = {};
    if (opts.headerLength !== undefined) {
      if (!/^\d{1,12}$/.test(opts.headerLength)) throw new InferrerError('INVALID_REQUEST', 'Inference-Header-Content-Length must be a byte count');
      extra['inference-header-content-length'] = opts.headerLength;
    }
    return this.#forward(name, `/v2/models/${encodeURIComponent(name)}${version}/infer`, opts, extra);
  }

  /**
   * How the modelhosts run a model: batching and instances, its config over their defaults, and the
   * execution plan where it is loaded (a modelhost's answer: with placement on, one its predictions go to).
   */
  async modelSettings<T>(name: string): Promise<T> {
    const model = parseModelName(name);
    const key = this.placement.key(model);
    const headers: Record<string, string> = key !== undefined ? { [PLACEMENT_HEADER]: key } : {};
    const res = await this.#upstream.request({
      method: 'GET',
      path: `/v1/models/${encodeURIComponent(model)}/settings`,
      headers,
      timeoutMs: this.#config.requestTimeoutMs,
    });
    return JSON.parse(await res.body.text()) as T;
  }

  /** Which modelhost answers a request (shows the balancing). */
  async whoAnswers(item: string, reqId: string): Promise<string> {
    const res = await this.#upstream.request({
      method: 'GET',
      path: `/v1/test/echo?data=${encodeURIComponent(item)}`,
      headers: { 'x-request-id': reqId },
      timeoutMs: this.#config.requestTimeoutMs,
    });
    const body = JSON.parse(await res.body.text()) as { modelhost?: string };
    return String(body.modelhost ?? res.headers['x-modelhost-id'] ?? 'unknown');
  }

  #forward(model: string, path: string, opts: ForwardOptions, extra: Record<string, string> = {}): Promise<UpstreamResponse> {
    this.placement.begin(model);
    const online = opts.priority !== 'batch';
    if (online) this.online.begin();
    else extra['x-inferrer-priority'] = 'batch';
    return this.#send(model, path, opts, extra).then(
      (res) => {
        this.placement.end(model, res.headers);
        if (online) this.online.end();
        return res;
      },
      (err: unknown) => {
        this.placement.end(model);
        if (online) this.online.end();
        throw err;
      },
    );
  }

  #send(model: string, path: string, opts: ForwardOptions, extra: Record<string, string>): Promise<UpstreamResponse> {
    if (opts.signal?.aborted) return Promise.reject(cancelledError());
    // The deadline runs from here, whatever the request then waits for (a connection to the balancer, a
    // group, a modelhost's queue): the modelhost gets what is left, and the Inferrer answers 504 at it.
    const now = performance.now();
    // A shorter deadline of the client's own (gRPC's) counts from here too.
    const timeoutMs =
      opts.timeoutMs !== undefined && opts.timeoutMs < this.#config.requestTimeoutMs ? Math.max(1, opts.timeoutMs) : this.#config.requestTimeoutMs;
    const deadline = Math.min(opts.deadline ?? Infinity, answerBy(takenAt(now), timeoutMs));
    if (deadline <= now) return Promise.reject(new InferrerError('DEADLINE_EXCEEDED', 'the request passed its deadline before it was sent to a modelhost'));
    const headers: Record<string, string> = {
      'content-type': opts.contentType ?? 'application/json',
      'x-request-id': opts.reqId,
      'x-request-timeout-ms': String(modelhostBudgetMs(deadline - now)),
    };
    for (const k in extra) headers[k] = extra[k]!;
    // Online predictions read whole travel with those that arrive with them (grouping.ts); batch-job
    // requests already carry many rows each, and streamed bodies go through as they come.
    // A body in parts (a gRPC request's header and tensors) is joined only when small; a large one goes as its parts.
    const raw = Array.isArray(opts.body) && (opts.contentLength ?? GROUPED_BODY + 1) <= GROUPED_BODY ? Buffer.concat(opts.body) : opts.body;
    const body = typeof raw === 'string' ? Buffer.from(raw) : raw;
    if (Buffer.isBuffer(body) && body.length <= GROUPED_BODY && opts.priority !== 'batch')
      return this.#grouping.send({ model, path, headers, body, deadline, signal: opts.signal });
    const key = this.placement.key(model);
    if (key !== undefined) headers[PLACEMENT_HEADER] = key;
    if (opts.contentLength !== undefined) headers['content-length'] = String(opts.contentLength);
    const sent = this.#upstream.request({ method: 'POST', path, headers, body, timeoutMs: this.#config.requestTimeoutMs, deadline, signal: opts.signal });
    const homes = this.#homes;
    if (homes === undefined || key === undefined) return sent;
    const expected = homes.get(key)?.worker;
    return sent.then((res) => {
      homes.learn(key, res.headers['x-modelhost-id'], expected);
      return res;
    });
  }
}
