/**
 * The frame around every inference on the modelhost: request id, deadline, priority, the access line, and
 * errors, which become error replies (never thrown). A request with its own connection is answered on it;
 * a member of a group (group.ts) gets its reply back as a frame.
 */
import { setMaxListeners } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type InferrerError, readBodyParts } from '@inferrer/core';
import { type ErrorBody, errorReply } from '@inferrer/http';
import type { Priority } from '@inferrer/runtime';
import { type Logger, REQUEST_ID_HEADER, requestIdFrom, sampleAccess } from '@inferrer/telemetry';
import type { ModelhostConfig } from '../config.ts';
import type { BatchFacts } from '../dataplane.ts';
import type { Answered, Ctx, Item, Reply } from './route.ts';

/** The modelhost's one error body, `{"error": WireError}`: the Inferrer rebuilds the InferrerError from it by code. */
export const WIRE_ERROR: ErrorBody = (err: InferrerError) => ({ error: err.toJSON() });

/** The query of a request without one (handlers only read it). */
const NO_QUERY = new URLSearchParams();

/**
 * A signal that fires when the connection of `res` closes before the answer is written: the client (the
 * balancer, which closes its connection when its own client leaves) went away.
 */
export function closeSignal(res: ServerResponse): AbortSignal {
  const c = new AbortController();
  // A group's members share it, one listener each in the batcher's queue: no cap on listeners (node warns past 10).
  setMaxListeners(0, c.signal);
  res.once('close', () => {
    if (!res.writableFinished) c.abort();
  });
  return c.signal;
}

export class InferenceFrame {
  readonly #config: ModelhostConfig;
  readonly #log: Logger;
  readonly #access: Logger | undefined;
  readonly #draining: () => boolean;

  constructor(config: ModelhostConfig, logger: Logger, draining: () => boolean) {
    this.#config = config;
    this.#log = logger.child({ module: 'http' });
    const access = logger.child({ module: 'access' });
    this.#access = config.accessLog && access.isInfoEnabled() ? access : undefined;
    this.#draining = draining;
  }

  /** Runs one inference in the frame; resolves with its reply, an error reply when it fails. */
  async serve(
    headers: Item['headers'],
    path: string,
    name: string,
    query: string,
    work: (ctx: Ctx) => Promise<Answered>,
    signal?: AbortSignal,
  ): Promise<Reply> {
    const reqId = requestIdFrom(headers[REQUEST_ID_HEADER]);
    const started = performance.now();
    const priority: Priority = headers['x-inferrer-priority'] === 'batch' ? 'batch' : 'online';
    try {
      const timeout = Math.min(Number(headers['x-request-timeout-ms']) || this.#config.requestTimeoutMs, this.#config.requestTimeoutMs);
      const length = headers['content-length'] === undefined ? undefined : Number(headers['content-length']);
      const { reply, facts } = await work({
        reqId,
        started,
        deadline: started + timeout,
        priority,
        q: query === '' ? NO_QUERY : new URLSearchParams(query),
        length,
        signal,
      });
      this.line(reqId, reply.status, facts.model, started, facts, priority);
      return reply;
    } catch (err) {
      const reply = this.error(err, reqId, path);
      this.line(reqId, reply.status, name, started, undefined, priority, err);
      return reply;
    }
  }

  /** Reads the whole body, then serves; a body that cannot be read is answered like any other error. */
  async whole(
    req: IncomingMessage,
    path: string,
    name: string,
    query: string,
    work: (item: Item, ctx: Ctx) => Promise<Answered>,
    signal?: AbortSignal,
  ): Promise<Reply> {
    let body: Buffer | Buffer[];
    const started = performance.now();
    try {
      const length = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
      body = await readBodyParts(req, this.#config.maxBodyBytes, length);
    } catch (err) {
      const reqId = requestIdFrom(req.headers[REQUEST_ID_HEADER]);
      const reply = this.error(err, reqId, path);
      this.line(reqId, reply.status, name, started, undefined, 'online', err);
      return reply;
    }
    const item: Item = { path, headers: req.headers, body };
    return this.serve(req.headers, path, name, query, (ctx) => work(item, ctx), signal);
  }

  error(err: unknown, reqId: string, path: string): Reply {
    return errorReply(err, WIRE_ERROR, this.#log, { reqId, method: 'POST', path });
  }

  /**
   * Writes a reply to its own response. While the worker drains (SIGTERM), requests that still arrive on
   * open connections are served, with `Connection: close` so the balancer stops reusing the connection;
   * nothing is refused for draining.
   */
  send(req: IncomingMessage, res: ServerResponse, reply: Reply): void {
    // The client went away: nothing to write to.
    if (res.destroyed) return;
    if (reply.status >= 300) {
      // Drain what is left of the body so the keep-alive connection stays usable.
      req.unpipe();
      req.resume();
    }
    if (this.#draining()) res.setHeader('connection', 'close');
    if (typeof reply.body === 'string') {
      res.writeHead(reply.status, { ...reply.headers, 'content-length': Buffer.byteLength(reply.body) });
      res.end(reply.body);
      return;
    }
    res.writeHead(reply.status, { ...reply.headers, 'content-length': reply.body.reduce((n, b) => n + b.length, 0) });
    for (const b of reply.body) res.write(b);
    res.end();
  }

  /**
   * One line per inference, success or not (successes sampled by ACCESS_LOG_SAMPLE), so a request id greps
   * to its whole path; a refusal names its error code, and fields that are not known are left out.
   */
  line(reqId: string, status: number, model: string, started: number, batch?: BatchFacts, priority: Priority = 'online', err?: unknown): void {
    if (!this.#access || !sampleAccess(status, this.#config.accessLogSample)) return;
    const code = (err as { code?: unknown } | undefined)?.code;
    this.#access.info('inference', {
      reqId,
      model,
      ...(batch ? { version: batch.version } : {}),
      status,
      ...(status >= 400 ? { error: typeof code === 'string' ? code : 'INTERNAL' } : {}),
      ...(priority === 'batch' ? { priority } : {}),
      ms: Number((performance.now() - started).toFixed(2)),
      ...(batch
        ? { batch: batch.batchRequests, rows: batch.batchRows, queueMs: Number(batch.queueMs.toFixed(2)), computeMs: Number(batch.computeMs.toFixed(2)) }
        : {}),
      ...(batch && batch.loadMs > 0 ? { loadMs: Number(batch.loadMs.toFixed(2)) } : {}),
    });
  }
}
