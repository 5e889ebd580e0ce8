/**
 * The keep-alive client from the Inferrer to the load balancer. Bodies stream through untouched; error
 * answers from a modelhost come back as InferrerErrors (matched by code), and a balancer that answers
 * for itself (no worker reachable, gateway timeout) maps to UPSTREAM_UNAVAILABLE / DEADLINE_EXCEEDED.
 */
import type { Readable } from 'node:stream';
import { Pool } from 'undici';
import { InferrerError, fromWire, parseJson } from '@inferrer/core';
import { STORE_GENERATION_HEADER } from '@inferrer/model-store';

type UpstreamHeaders = Record<string, string | string[] | undefined>;

/** A modelhost's answer: streamed (its own HTTP response), or read whole (one frame of a group). */
export type UpstreamResponse =
  | {
      status: number;
      headers: UpstreamHeaders;
      body: Readable & { text(): Promise<string>; arrayBuffer(): Promise<ArrayBuffer>; dump(): Promise<void> };
      bytes?: undefined;
    }
  | { status: number; headers: UpstreamHeaders; bytes: Buffer; body?: undefined };

/** The whole body of an answer as text. */
export function answerText(res: UpstreamResponse): Promise<string> {
  return res.bytes ? Promise.resolve(res.bytes.toString('utf8')) : res.body.text();
}

export interface UpstreamRequest {
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
  /** Buffer[]: parts sent one after the other (undici writes an iterable body as it comes). */
  body?: Readable | Buffer | Buffer[] | string | null;
  /** Longest wait for the answer's headers, and between chunks of its body. */
  timeoutMs: number;
  /**
   * When the answer's headers are due (performance.now() clock), counted from before the request waits
   * for a connection: past it the request is abandoned with DEADLINE_EXCEEDED (504).
   */
  deadline?: number | undefined;
  /**
   * The client's: when it fires (the client went away), the request is abandoned with REQUEST_CANCELLED and
   * its connection closed, so the balancer closes its own to the modelhost, which drops the request.
   */
  signal?: AbortSignal | undefined;
}

/**
 * Times a request is sent when its connection closes before any answer. The balancer closes its idle
 * keep-alive connections when it reloads (nginx on a new modelhost address, a config change), and one the
 * Inferrer has just written a request on fails with ECONNRESET or "other side closed" though nothing was
 * served; every request the Inferrer sends upstream is a prediction or a read, which have no side effects
 * (the reasoning that lets nginx send a POST to the next modelhost, proxy_next_upstream non_idempotent), so
 * it goes again on another connection, within its deadline. Three, as nginx's proxy_next_upstream_tries:
 * the next idle connection may belong to the same old nginx worker.
 */
const MAX_SENDS = 3;

/** A connection closed or reset under a request before any of its answer came (undici's and the socket's codes). */
function closedBeforeAnswer(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'EPIPE';
}

/** A body that can be sent again: not a stream, which the first send has consumed. */
function resendable(body: UpstreamRequest['body']): boolean {
  return body === undefined || body === null || typeof body === 'string' || Buffer.isBuffer(body) || Array.isArray(body);
}

/** A prediction whose client went away before its answer. */
export function cancelledError(): InferrerError {
  return new InferrerError('REQUEST_CANCELLED', 'the client went away before the answer');
}

export class Upstream {
  readonly #pool: Pool;
  readonly url: string;
  readonly #written: () => number;

  /**
   * `written`: the store generation this Inferrer last wrote (ModelStore.written). Every request carries
   * it (X-Store-Generation) and a worker that has not read the store that far does so before it answers,
   * so a change made here is in force for the next request, whether or not the workers saw it yet.
   */
  constructor(url: string, connections: number, written: () => number = () => 0) {
    this.url = url;
    this.#written = written;
    this.#pool = new Pool(url, { connections, pipelining: 1, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 600_000 });
  }

  /** Sends a request; resolves with any 2xx answer, throws the InferrerError an error answer carries. */
  async request(req: UpstreamRequest): Promise<UpstreamResponse & { body: object }> {
    let res: UpstreamResponse & { body: object };
    // undici's headersTimeout only starts once the request has a connection; a request queued behind
    // busy connections waited without one. The deadline covers the queue too.
    let timer: NodeJS.Timeout | undefined;
    let abort: AbortController | undefined;
    let headersTimeout = req.timeoutMs;
    if (req.signal?.aborted) throw cancelledError();
    if (req.deadline !== undefined) {
      const left = req.deadline - performance.now();
      if (left <= 0) throw deadlineError();
      abort = new AbortController();
      timer = setTimeout(() => abort!.abort(), left);
      headersTimeout = Math.min(headersTimeout, Math.ceil(left));
    }
    // The client going away abandons the request (and its body, once the answer streams back).
    if (req.signal) {
      abort ??= new AbortController();
      const a = abort;
      req.signal.addEventListener('abort', () => a.abort(), { once: true });
    }
    try {
      for (let sent = 1; ; sent++) {
        try {
          const written = this.#written();
          res = (await this.#pool.request({
            method: req.method,
            path: req.path,
            headers: written > 0 ? { ...req.headers, [STORE_GENERATION_HEADER]: String(written) } : req.headers,
            // undici takes any iterable of chunks; its types list only the single-chunk forms.
            body: (req.body ?? null) as Readable | Buffer | string | null,
            headersTimeout,
            bodyTimeout: req.timeoutMs,
            ...(abort ? { signal: abort.signal } : {}),
          })) as unknown as UpstreamResponse & { body: object };
          (res as { status: number }).status = (res as unknown as { statusCode: number }).statusCode;
          break;
        } catch (err) {
          if (req.signal?.aborted) throw cancelledError();
          if (abort?.signal.aborted) throw deadlineError();
          if (sent < MAX_SENDS && closedBeforeAnswer(err) && resendable(req.body)) {
            // The next send waits for its headers only as long as the deadline has left.
            if (req.deadline !== undefined) headersTimeout = Math.max(1, Math.min(headersTimeout, Math.ceil(req.deadline - performance.now())));
            continue;
          }
          throw mapTransportError(err);
        }
      }
    } finally {
      if (timer) clearTimeout(timer);
    }
    if (res.status < 300) return res;
    throw errorFromAnswer(res.status, res.headers, await res.body.text().catch(() => ''));
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }
}

/** Which modelhost (and model version) gave an error answer, for the access line; unknown for transport errors. */
const answeredBy = new WeakMap<InferrerError, { modelhost?: string; version?: number }>();

export function answeredByOf(err: unknown): { modelhost?: string; version?: number } | undefined {
  return err instanceof InferrerError ? answeredBy.get(err) : undefined;
}

/** The InferrerError an error answer carries: a modelhost's own error, or what the balancer's status means. */
export function errorFromAnswer(status: number, headers: UpstreamHeaders, text: string): InferrerError {
  const err = errorOfAnswer(status, headers, text);
  const modelhost = headers['x-modelhost-id'];
  const version = headers['x-inferrer-model-version'];
  if (typeof modelhost === 'string') answeredBy.set(err, { modelhost, ...(typeof version === 'string' ? { version: Number(version) } : {}) });
  return err;
}

function errorOfAnswer(status: number, headers: UpstreamHeaders, text: string): InferrerError {
  const type = String(headers['content-type'] ?? '');
  if (type.includes('application/json')) {
    try {
      const body = parseJson(text) as { error?: unknown };
      const err = fromWire(body.error);
      if (err.code !== 'INTERNAL' || status >= 500) return err;
    } catch {
      // fall through: not one of ours
    }
  }
  const res = { status };
  // The balancer answered for itself.
  if (res.status === 504) return new InferrerError('DEADLINE_EXCEEDED', 'no modelhost answered in time', { upstreamStatus: res.status });
  if (res.status === 413) return new InferrerError('BODY_TOO_LARGE', 'the load balancer refused the body as too large', { upstreamStatus: res.status });
  if (res.status === 404) return new InferrerError('ROUTE_NOT_FOUND', 'the load balancer has no such route', { upstreamStatus: res.status });
  return new InferrerError(
    'UPSTREAM_UNAVAILABLE',
    `no modelhost could serve the request (load balancer answered ${res.status})`,
    { upstreamStatus: res.status },
    { retryAfter: 1 },
  );
}

/** A transport failure as an InferrerError; undici's errors are told apart by their stable `code`. */
function deadlineError(): InferrerError {
  return new InferrerError('DEADLINE_EXCEEDED', 'no modelhost answered before the deadline');
}

export function mapTransportError(err: unknown): InferrerError {
  if (err instanceof InferrerError) return err;
  const code = (err as { code?: string }).code;
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT')
    return new InferrerError('DEADLINE_EXCEEDED', 'the modelhosts did not answer before the deadline');
  if (code === 'UND_ERR_ABORTED') return new InferrerError('INVALID_REQUEST', 'the request was aborted');
  return new InferrerError(
    'UPSTREAM_UNAVAILABLE',
    `the load balancer could not be reached (${code ?? (err as Error).message})`,
    { cause: code },
    { retryAfter: 1, cause: err },
  );
}
