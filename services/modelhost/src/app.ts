/**
 * The modelhost's HTTP surface (internal: only the load balancer and the metrics service talk to it).
 * Inference takes a lean path on node:http; everything else goes through express.
 *
 *   POST /v1/models/:name/predict   FRACTAL v1 body → v1 answer (query: version, output, outputs=all)
 *   POST /v1/models/:name/predict-images   multipart images → labels or boxes (query: version, top_k, raw,
 *                                   score_threshold, iou_threshold)
 *   GET  /v1/models                 models loaded here and their state
 *   GET  /v1/models/:name           metadata as this worker sees it
 *   GET  /v1/test/echo?data=…       which worker answered (for /api/test/sendtomodelhost)
 *   GET  /v1/drift                  cumulative drift statistics and profile captures (for the metrics service)
 *   GET  /v1/drift/profile/:name/:version   the reference profile those statistics are counted against
 *   GET  /health/live, /health/ready, /metrics
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import express from 'express';
import { InferrerError, parseJson, parseVersion, readStream } from '@inferrer/core';
import { type Logger, REQUEST_ID_HEADER, requestIdFrom } from '@inferrer/telemetry';
import type { ModelhostConfig } from './config.ts';
import type { BatchFacts, DataPlane } from './dataplane.ts';
import type { DriftMonitor } from './drift.ts';
import type { ModelhostMetrics } from './metrics.ts';
import type { ModelRegistry } from './registry.ts';
import { receiveImages } from './images.ts';
import { sendError, sendJson } from './protocol/http.ts';

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

export function createApp(deps: ModelhostDeps): RequestListener {
  const { config, dataplane, registry, metrics } = deps;
  const log = deps.logger.child({ module: 'http' });
  const access = deps.logger.child({ module: 'access' });
  const logAccess = config.accessLog && access.isInfoEnabled();
  /** One line per inference, success or not, so a request id greps to its whole path. */
  const inferenceLine = (reqId: string, res: ServerResponse, model: string, started: number, batch?: { version: number; batchRequests: number; batchRows: number; queueMs: number; computeMs: number }): void => {
    if (!logAccess) return;
    access.info('inference', {
      reqId,
      model,
      version: batch?.version ?? null,
      status: res.statusCode,
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
    q: URLSearchParams;
    length: number | undefined;
  }

  /**
   * The one frame around every inference route: request id, deadline, the access line, and errors. While
   * the worker drains (SIGTERM), requests that still arrive on open connections are served, with
   * `Connection: close` so the balancer stops reusing the connection; nothing is refused for draining.
   */
  async function serve(req: IncomingMessage, res: ServerResponse, name: string, query: string, work: (ctx: Ctx) => Promise<BatchFacts>): Promise<void> {
    const reqId = requestIdFrom(req.headers[REQUEST_ID_HEADER]);
    const started = performance.now();
    try {
      if (deps.draining()) res.setHeader('connection', 'close');
      const timeout = Math.min(Number(req.headers['x-request-timeout-ms']) || config.requestTimeoutMs, config.requestTimeoutMs);
      const length = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
      const answer = await work({ reqId, started, deadline: started + timeout, q: new URLSearchParams(query), length });
      inferenceLine(reqId, res, answer.model, started, answer);
    } catch (err) {
      // Drain what is left of the body so the keep-alive connection stays usable.
      req.unpipe();
      req.resume();
      sendError(res, err, log, req, reqId);
      inferenceLine(reqId, res, name, started);
    }
  }

  const batchHeaders = (a: BatchFacts & { preprocessMs: number }): Record<string, string> => ({
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
      if (m) return void serve(req, res, decodeURIComponent(m[1]!), m[2] ?? '', (ctx) => predict(req, res, decodeURIComponent(m[1]!), ctx));
      const mi = PREDICT_IMAGES.exec(url);
      if (mi) return void serve(req, res, decodeURIComponent(mi[1]!), mi[2] ?? '', (ctx) => predictImages(req, res, decodeURIComponent(mi[1]!), ctx));
      const v2 = V2_INFER.exec(url);
      if (v2) {
        const version = v2[2] === undefined ? undefined : decodeURIComponent(v2[2]);
        return void serve(req, res, decodeURIComponent(v2[1]!), '', (ctx) => inferV2(req, res, decodeURIComponent(v2[1]!), version, ctx));
      }
    }
    app(req, res);
  };

  async function inferV2(req: IncomingMessage, res: ServerResponse, name: string, rawVersion: string | undefined, ctx: Ctx): Promise<BatchFacts> {
    const body = await readStream(req, config.maxBodyBytes, ctx.length);
    const header = req.headers['inference-header-content-length'];
    const answer = await dataplane.inferV2(name, body, header === undefined ? undefined : Number(header), { ...versionOf(rawVersion), deadline: ctx.deadline });
    if (answer.binary.length === 0) {
      sendJson(res, 200, answer.json, batchHeaders(answer));
    } else {
      const json = Buffer.from(answer.json);
      const total = answer.binary.reduce((n, b) => n + b.length, json.length);
      res.writeHead(200, { ...batchHeaders(answer), 'content-type': 'application/octet-stream', 'content-length': total, 'inference-header-content-length': json.length });
      res.write(json);
      for (const b of answer.binary) res.write(b);
      res.end();
    }
    return answer;
  }

  async function predictImages(req: IncomingMessage, res: ServerResponse, name: string, { q, length, reqId, deadline }: Ctx): Promise<BatchFacts> {
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
    });
    sendJson(res, 200, answer.body, batchHeaders(answer));
    return answer;
  }

  async function predict(req: IncomingMessage, res: ServerResponse, name: string, { q, length, deadline }: Ctx): Promise<BatchFacts> {
    const body = parseJson(await readStream(req, config.maxBodyBytes, length));
    const output = q.get('output') ?? undefined;
    const answer = await dataplane.predictV1(name, body, { ...versionOf(q.get('version')), ...(output ? { output } : {}), all: q.get('outputs') === 'all', deadline });
    sendJson(res, 200, answer.body, batchHeaders(answer));
    return answer;
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
