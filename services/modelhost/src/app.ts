/**
 * The modelhost's HTTP surface (internal: only the load balancer and the metrics service talk to it).
 * Inference takes a lean path on node:http; everything else goes through express.
 *
 *   POST /v1/models/:name/predict   FRACTAL v1 body → v1 answer (query: version, output, outputs=all)
 *   POST /v1/models/:name/predict-images   multipart images → labels or boxes (query: version, top_k, raw,
 *                                   score_threshold, iou_threshold)
 *   POST /v1/models/:name/group     several v1 predict / v2 infer requests as frames (@inferrer/core frames.ts);
 *                                   answers come back as frames, each as soon as it is ready
 *   GET  /v1/models                 models loaded here and their state
 *   GET  /v1/models/:name           metadata as this worker sees it
 *   GET  /v1/test/echo?data=…       which worker answered (for /api/test/sendtomodelhost)
 *   GET  /v1/drift                  cumulative drift statistics and profile captures (for the metrics service)
 *   GET  /v1/drift/profile/:name/:version   the reference profile those statistics are counted against
 *   GET  /health/live, /health/ready, /metrics
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import express from 'express';
import { DEFAULT_FRAME_LIMITS, FRAMES_CONTENT_TYPE, type FrameHeader, InferrerError, MAX_GROUP_MEMBERS, decodeFrames, encodeFrame, parseVersion, readStream } from '@inferrer/core';
import { type Logger, REQUEST_ID_HEADER, requestIdFrom } from '@inferrer/telemetry';
import type { ModelhostConfig } from './config.ts';
import type { BatchFacts, DataPlane } from './dataplane.ts';
import type { DriftMonitor } from './drift.ts';
import type { Priority } from '@inferrer/runtime';
import type { ModelhostMetrics } from './metrics.ts';
import type { ModelRegistry } from './registry.ts';
import { receiveImages } from './images.ts';
import { errorReply, sendError } from './protocol/http.ts';

export interface ModelhostDeps {
  config: ModelhostConfig;
  logger: Logger;
  dataplane: DataPlane;
  registry: ModelRegistry;
  metrics: ModelhostMetrics;
  /** Live drift statistics; absent when DRIFT_ENABLED=false. */
  drift?: DriftMonitor | undefined;
  /** Ready: started, preloaded models warm, not draining. */
  ready: () => boolean;
  draining: () => boolean;
}

const PREDICT = /^\/v1\/models\/([^/?]+)\/predict(?:\?(.*))?$/;
const PREDICT_IMAGES = /^\/v1\/models\/([^/?]+)\/predict-images(?:\?(.*))?$/;
const V2_INFER = /^\/v2\/models\/([^/?]+)(?:\/versions\/([^/?]+))?\/infer(?:\?.*)?$/;
/** The query of a request without one (handlers only read it). */
const NO_QUERY = new URLSearchParams();
const GROUP = /^\/v1\/models\/[^/?]+\/group(?:\?.*)?$/;

export function createApp(deps: ModelhostDeps): RequestListener {
  const { config, dataplane, registry, metrics } = deps;
  const log = deps.logger.child({ module: 'http' });
  const access = deps.logger.child({ module: 'access' });
  const logAccess = config.accessLog && access.isInfoEnabled();
  /** One line per inference, success or not, so a request id greps to its whole path. */
  const inferenceLine = (reqId: string, status: number, model: string, started: number, batch?: { version: number; batchRequests: number; batchRows: number; queueMs: number; computeMs: number }, priority: Priority = 'online'): void => {
    if (!logAccess) return;
    access.info('inference', {
      reqId,
      model,
      version: batch?.version ?? null,
      status,
      ...(priority === 'batch' ? { priority } : {}),
      ms: Number((performance.now() - started).toFixed(2)),
      ...(batch ? { batch: batch.batchRequests, rows: batch.batchRows, queueMs: Number(batch.queueMs.toFixed(2)), computeMs: Number(batch.computeMs.toFixed(2)) } : {}),
    });
  };
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.get('/health/live', (_req, res) => void res.json({ live: true, modelhost: config.id }));
  app.get('/health/ready', (_req, res) => {
    const ok = deps.ready();
    res.status(ok ? 200 : 503).json({ ready: ok, draining: deps.draining(), modelhost: config.id });
  });
  app.get('/metrics', async (_req, res) => {
    res.set('content-type', metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  app.get('/v1/test/echo', (req, res) => {
    const data = typeof req.query.data === 'string' ? req.query.data.slice(0, 256) : null;
    res.json({ data, modelhost: config.id });
  });
  app.get('/v1/drift', (_req, res) => {
    res.set('cache-control', 'no-store').json(deps.drift?.view() ?? { modelhost: config.id, time: new Date().toISOString(), disabled: true, trackers: [], captures: [] });
  });
  app.get('/v1/drift/profile/:name/:version', (req, res) => {
    const v = registry.record(req.params.name)?.versions.find((x) => String(x.version) === req.params.version);
    if (!v?.profile) sendError(res, new InferrerError('PROFILE_NOT_FOUND', `model ${req.params.name} version ${req.params.version} has no drift profile here`), log, req, requestIdFrom(req.headers[REQUEST_ID_HEADER]));
    else res.json(v.profile);
  });
  app.get('/v1/models', (_req, res) => {
    res.json({
      modelhost: config.id,
      models: registry.entries().map((e) => ({ name: e.name, version: e.version, state: e.state, queue_depth: e.batcher.depth, instances: e.session.instances, batching: e.batcher.options })),
    });
  });
  app.get('/v1/models/:name', async (req, res) => {
    const reqId = requestIdFrom(req.headers[REQUEST_ID_HEADER]);
    try {
      const version = req.query.version === undefined ? undefined : parseVersion(req.query.version);
      res.json(await dataplane.metadata(req.params.name, version));
    } catch (err) {
      sendError(res, err, log, req, reqId);
    }
  });
  app.use((req, res) => sendError(res, new InferrerError('ROUTE_NOT_FOUND', `no route ${req.method} ${req.path}`), log, req, requestIdFrom(req.headers[REQUEST_ID_HEADER])));

  /** What every inference handler gets: its request id, start time, deadline, query and declared length. */
  interface Ctx {
    reqId: string;
    started: number;
    deadline: number;
    /** `X-Inferrer-Priority: batch` (batch-job requests) waits behind online requests in the batcher. */
    priority: Priority;
    q: URLSearchParams;
    length: number | undefined;
  }

  /** An inference answer before it is written: to its own HTTP response, or as one frame of a group. */
  interface Reply {
    status: number;
    headers: Record<string, string>;
    body: string | Buffer[];
  }

  /** A handler's answer, and the batch facts for the access line. */
  interface Answered {
    reply: Reply;
    facts: BatchFacts;
  }

  /** The parts of a request an inference handler reads: whole-body routes get the body read already. */
  interface Item {
    path: string;
    headers: Record<string, string | string[] | undefined>;
    body: Buffer;
  }

  /**
   * The one frame around every inference: request id, deadline, the access line, and errors, which become
   * error replies (never throws).
   */
  async function serve(headers: Item['headers'], path: string, name: string, query: string, work: (ctx: Ctx) => Promise<Answered>): Promise<Reply> {
    const reqId = requestIdFrom(headers[REQUEST_ID_HEADER]);
    const started = performance.now();
    const priority: Priority = headers['x-inferrer-priority'] === 'batch' ? 'batch' : 'online';
    try {
      const timeout = Math.min(Number(headers['x-request-timeout-ms']) || config.requestTimeoutMs, config.requestTimeoutMs);
      const length = headers['content-length'] === undefined ? undefined : Number(headers['content-length']);
      const { reply, facts } = await work({ reqId, started, deadline: started + timeout, priority, q: query === '' ? NO_QUERY : new URLSearchParams(query), length });
      inferenceLine(reqId, reply.status, facts.model, started, facts, priority);
      return reply;
    } catch (err) {
      const reply = errorReply(err, log, { reqId, method: 'POST', path: path.split('?')[0] });
      inferenceLine(reqId, reply.status, name, started, undefined, priority);
      return reply;
    }
  }

  /**
   * Writes a reply to its own response. While the worker drains (SIGTERM), requests that still arrive on
   * open connections are served, with `Connection: close` so the balancer stops reusing the connection;
   * nothing is refused for draining.
   */
  function send(req: IncomingMessage, res: ServerResponse, reply: Reply): void {
    if (reply.status >= 300) {
      // Drain what is left of the body so the keep-alive connection stays usable.
      req.unpipe();
      req.resume();
    }
    if (deps.draining()) res.setHeader('connection', 'close');
    if (typeof reply.body === 'string') {
      res.writeHead(reply.status, { ...reply.headers, 'content-length': Buffer.byteLength(reply.body) });
      res.end(reply.body);
      return;
    }
    res.writeHead(reply.status, { ...reply.headers, 'content-length': reply.body.reduce((n, b) => n + b.length, 0) });
    for (const b of reply.body) res.write(b);
    res.end();
  }

  /** Routes an inference request that carries its whole body (v1 predict, v2 infer) to its handler. */
  function inference(item: Item): Promise<Reply> | undefined {
    const m = PREDICT.exec(item.path);
    if (m) return serve(item.headers, item.path, decodeURIComponent(m[1]!), m[2] ?? '', (ctx) => predict(item, decodeURIComponent(m[1]!), ctx));
    const v2 = V2_INFER.exec(item.path);
    if (v2) {
      const version = v2[2] === undefined ? undefined : decodeURIComponent(v2[2]);
      return serve(item.headers, item.path, decodeURIComponent(v2[1]!), '', (ctx) => inferV2(item, decodeURIComponent(v2[1]!), version, ctx));
    }
    return undefined;
  }

  /** Reads the body, then answers (errors reading it are answered the same way as errors inferring). */
  async function whole(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    const path = req.url ?? '';
    const started = performance.now();
    let reply: Reply | undefined;
    try {
      const length = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
      const body = await readStream(req, config.maxBodyBytes, length);
      reply = await inference({ path, headers: req.headers, body });
    } catch (err) {
      const reqId = requestIdFrom(req.headers[REQUEST_ID_HEADER]);
      reply = errorReply(err, log, { reqId, method: 'POST', path: path.split('?')[0] });
      inferenceLine(reqId, reply.status, name, started);
    }
    send(req, res, reply!);
  }

  /**
   * A group of predictions in one framed body (the Inferrer sends those that arrive together for one
   * model): each runs as if it came alone, and its answer goes back as a frame as soon as it is ready.
   * Answers ready in the same turn of the event loop share one write.
   */
  async function group(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let items: { header: FrameHeader; body: Buffer }[];
    try {
      const length = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
      items = decodeFrames(await readStream(req, config.maxBodyBytes, length), { ...DEFAULT_FRAME_LIMITS, maxBodyBytes: config.maxBodyBytes });
      if (items.length === 0 || items.length > MAX_GROUP_MEMBERS) throw new InferrerError('INVALID_REQUEST', `a group carries 1 to ${MAX_GROUP_MEMBERS} requests (got ${items.length})`);
    } catch (err) {
      return send(req, res, errorReply(err, log, { reqId: requestIdFrom(undefined), method: 'POST', path: (req.url ?? '').split('?')[0] }));
    }
    if (deps.draining()) res.setHeader('connection', 'close');
    res.writeHead(200, { 'content-type': FRAMES_CONTENT_TYPE });
    let left = items.length;
    let out: Buffer[] = [];
    let scheduled = false;
    const flush = (): void => {
      scheduled = false;
      const chunk = out.length === 1 ? out[0]! : Buffer.concat(out);
      out = [];
      if (left === 0) res.end(chunk);
      else res.write(chunk);
    };
    items.forEach(({ header, body }, i) => {
      const path = typeof header.path === 'string' ? header.path : '';
      const headers = (typeof header.headers === 'object' && header.headers !== null ? header.headers : {}) as Item['headers'];
      const reply =
        inference({ path, headers, body }) ??
        Promise.resolve(errorReply(new InferrerError('ROUTE_NOT_FOUND', `a group carries only predictions (v1 predict, v2 infer), not ${path.slice(0, 200)}`), log, { reqId: requestIdFrom(headers[REQUEST_ID_HEADER]), method: 'POST', path: path.slice(0, 200) }));
      void reply.then((r) => {
        left--;
        r.headers['x-modelhost-id'] = config.id;
        out.push(encodeFrame({ i, status: r.status, headers: r.headers }, typeof r.body === 'string' ? r.body : Buffer.concat(r.body)));
        if (!scheduled) {
          scheduled = true;
          setImmediate(flush);
        }
      });
    });
  }

  const batchHeaders = (a: BatchFacts, contentType: string): Record<string, string> => ({
    'content-type': contentType,
    'x-inferrer-batch': `requests=${a.batchRequests};rows=${a.batchRows}`,
    'x-inferrer-model-version': String(a.version),
    'server-timing': serverTiming(a),
  });

  const versionOf = (raw: string | null | undefined): { version?: number } => (raw === null || raw === undefined ? {} : { version: parseVersion(raw) });

  return (req: IncomingMessage, res: ServerResponse) => {
    res.setHeader('x-modelhost-id', config.id);
    if (req.method === 'POST') {
      const url = req.url ?? '';
      const m = PREDICT.exec(url);
      if (m) return void whole(req, res, decodeURIComponent(m[1]!));
      const v2 = V2_INFER.exec(url);
      if (v2) return void whole(req, res, decodeURIComponent(v2[1]!));
      if (GROUP.test(url)) return void group(req, res);
      const mi = PREDICT_IMAGES.exec(url);
      if (mi) {
        const name = decodeURIComponent(mi[1]!);
        return void serve(req.headers, url, name, mi[2] ?? '', (ctx) => predictImages(req, name, ctx)).then((reply) => send(req, res, reply));
      }
    }
    app(req, res);
  };

  async function inferV2(item: Item, name: string, rawVersion: string | undefined, ctx: Ctx): Promise<Answered> {
    const header = item.headers['inference-header-content-length'];
    const answer = await dataplane.inferV2(name, item.body, header === undefined ? undefined : Number(header), { ...versionOf(rawVersion), deadline: ctx.deadline, priority: ctx.priority });
    if (answer.binary.length === 0) return { reply: { status: 200, headers: batchHeaders(answer, 'application/json'), body: answer.json }, facts: answer };
    const json = Buffer.from(answer.json);
    const headers = batchHeaders(answer, 'application/octet-stream');
    headers['inference-header-content-length'] = String(json.length);
    return { reply: { status: 200, headers, body: [json, ...answer.binary] }, facts: answer };
  }

  async function predictImages(req: IncomingMessage, name: string, { q, length, reqId, deadline, priority }: Ctx): Promise<Answered> {
    if (length !== undefined && length > config.maxBodyBytes) throw new InferrerError('BODY_TOO_LARGE', `the request body is larger than the limit of ${config.maxBodyBytes} bytes`, { limit: config.maxBodyBytes, got: length });
    const images = await receiveImages(req, { maxFiles: config.maxImagesPerRequest, maxBytes: config.maxBodyBytes });
    const answer = await dataplane.predictImages(name, images, {
      ...versionOf(q.get('version')),
      uid: reqId,
      topK: queryInt(q, 'top_k', 5, 1, 1000),
      raw: q.get('raw') === 'true' || q.get('raw') === '1',
      ...(q.has('score_threshold') ? { scoreThreshold: queryFraction(q, 'score_threshold') } : {}),
      ...(q.has('iou_threshold') ? { iouThreshold: queryFraction(q, 'iou_threshold') } : {}),
      deadline,
      priority,
    });
    return { reply: { status: 200, headers: batchHeaders(answer, 'application/json'), body: answer.body }, facts: answer };
  }

  async function predict(item: Item, name: string, { q, deadline, priority }: Ctx): Promise<Answered> {
    const output = q.get('output') ?? undefined;
    const answer = await dataplane.predictV1(name, item.body, { ...versionOf(q.get('version')), ...(output ? { output } : {}), all: q.get('outputs') === 'all', deadline, priority });
    return { reply: { status: 200, headers: batchHeaders(answer, 'application/json'), body: answer.body }, facts: answer };
  }
}

/** Where the time went on this worker: decoding the request (JSON, binary tensors, images), queueing, running. */
function serverTiming(a: { preprocessMs: number; queueMs: number; computeMs: number }): string {
  return `preprocess;dur=${a.preprocessMs.toFixed(2)}, queue;dur=${a.queueMs.toFixed(2)}, compute;dur=${a.computeMs.toFixed(2)}`;
}

function queryInt(q: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
  const v = q.get(name);
  if (v === null) return fallback;
  const n = Number(v);
  if (!/^\d{1,6}$/.test(v) || n < min || n > max) throw new InferrerError('INVALID_REQUEST', `query parameter ${name} must be an integer from ${min} to ${max}`, { parameter: name, got: v.slice(0, 32) });
  return n;
}

function queryFraction(q: URLSearchParams, name: string): number {
  const v = q.get(name) ?? '';
  const n = Number(v);
  if (v === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new InferrerError('INVALID_REQUEST', `query parameter ${name} must be a number from 0 to 1`, { parameter: name, got: v.slice(0, 32) });
  return n;
}
