/**
 * The Inferrer's HTTP app. Predictions (FRACTAL v1 `…/prediction`, Open Inference Protocol `…/infer`) take
 * a lean path on node:http: request id → dataplane → the body streams to the load balancer and the
 * modelhost's answer streams back. Every other route goes through express. Errors from either path are
 * shaped by protocol/errors.ts alone, in the body format of the protocol the client spoke.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import helmet from 'helmet';
import type { Auth } from './auth.ts';
import { InferrerError, parseJson, readStream } from '@inferrer/core';
import { type Logger, REQUEST_ID_HEADER, requestIdFrom } from '@inferrer/telemetry';
import type { InferrerConfig } from './config.ts';
import type { JobService } from './jobs/job-service.ts';
import { jobRoutes } from './protocol/jobs/routes.ts';
import type { DataPlane } from './dataplane.ts';
import type { Management } from './management.ts';
import type { InferrerMetrics } from './metrics.ts';
import { type Protocol, sendError } from './protocol/errors.ts';
import { driftRoutes } from './protocol/fractal-v1/drift.ts';
import { metricsSummaryRoutes } from './protocol/fractal-v1/metrics-summary.ts';
import { fractalV1Routes } from './protocol/fractal-v1/routes.ts';
import { docsRoutes } from './protocol/openapi.ts';
import { oipV2Routes } from './protocol/oip-v2/routes.ts';
import { relay } from './protocol/relay.ts';
import { importRoutes } from './protocol/fractal-v1/import-route.ts';
import { ModelImporter } from './model-import.ts';
import type { UpstreamResponse } from './upstream.ts';

export interface InferrerDeps {
  config: InferrerConfig;
  logger: Logger;
  management: Management;
  dataplane: DataPlane;
  metrics: InferrerMetrics;
  ready: () => Promise<boolean>;
  /** Batch jobs; without it the job routes answer 503 JOBS_UNAVAILABLE. */
  jobs?: JobService | undefined;
  auth: Auth;
}

/** A prediction route served on the lean path. */
interface FastRoute {
  route: string;
  /** Other path templates the pattern also serves (for the route list). */
  also?: string[];
  protocol: Protocol;
  methods: string[];
  pattern: RegExp;
  /** Starts the upstream request for a match. */
  forward(req: IncomingMessage, match: RegExpExecArray, reqId: string): Promise<UpstreamResponse>;
  /** Starts it for a multipart body (images), where the route takes one; else multipart goes to express. */
  multipart?(req: IncomingMessage, match: RegExpExecArray, reqId: string): Promise<UpstreamResponse>;
}

export interface RouteEntry {
  method: string;
  path: string;
}

/** The app's request listener; `routes()` lists every method and path it serves (for the OpenAPI test). */
export type InferrerApp = RequestListener & { routes(): RouteEntry[] };

export function createApp(deps: InferrerDeps): InferrerApp {
  const { config, dataplane, metrics } = deps;
  const log = deps.logger.child({ module: 'http' });
  const access = deps.logger.child({ module: 'access' });
  const logAccess = config.accessLog && access.isInfoEnabled();
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('trust proxy', false);

  app.use((req: Request, res: Response, next: NextFunction) => {
    const reqId = requestIdFrom(req.headers[REQUEST_ID_HEADER]);
    res.setHeader('x-request-id', reqId);
    const started = performance.now();
    res.on('finish', () => {
      const route = routeTemplate(req);
      const protocol = protocolOf(req.path);
      const ms = performance.now() - started;
      const bytesIn = Number(req.headers['content-length']) || 0;
      const bytesOut = Number(res.getHeader('content-length')) || 0;
      metrics.requests.inc({ route, protocol, status: String(res.statusCode) });
      metrics.duration.observe({ route, protocol }, ms / 1000);
      metrics.requestBytes.inc({ route, protocol }, bytesIn);
      metrics.responseBytes.inc({ route, protocol }, bytesOut);
      // Probes and scrapes would drown the access log: those lines only at debug.
      const quiet = route === '/metrics' || route.startsWith('/health') || route.startsWith('/v2/health');
      if (logAccess && !quiet) access.info('request', { reqId, method: req.method, path: req.path, route, protocol, status: res.statusCode, ms: Number(ms.toFixed(2)), bytesIn, bytesOut });
      else if (quiet && access.isDebugEnabled()) access.debug('request', { reqId, method: req.method, path: req.path, status: res.statusCode });
    });
    next();
  });
  app.use(helmet({ crossOriginResourcePolicy: { policy: 'same-site' } }));
  app.use((req: Request, res: Response, next: NextFunction) => {
    deps.auth.check(req, req.method, req.path).then((principal) => {
      // Batch-job quotas count per principal (protocol/jobs/routes.ts).
      res.locals.principal = principal;
      next();
    }, next);
  });
  app.get('/health/live', (_req, res) => void res.json({ live: true }));
  app.get('/health/ready', async (_req, res) => {
    const ok = await deps.ready();
    res.status(ok ? 200 : 503).json({ ready: ok });
  });
  app.get('/metrics', async (_req, res) => {
    res.set('content-type', metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  app.use(metricsSummaryRoutes(config.metricsUrl));
  app.use(driftRoutes({ management: deps.management, metricsUrl: config.metricsUrl, logger: deps.logger }));
  app.use(docsRoutes());
  app.use(oipV2Routes({ management: deps.management, ready: deps.ready }));
  app.use(jobRoutes({ jobs: deps.jobs }));
  app.use(importRoutes(new ModelImporter(config, deps.management)));
  app.use(fractalV1Routes({ config, management: deps.management, dataplane, publicUrl: (req) => `${req.protocol}://${req.headers.host ?? `127.0.0.1:${config.port}`}` }));
  app.use((req: Request) => {
    throw new InferrerError('ROUTE_NOT_FOUND', `no route ${req.method} ${req.path.slice(0, 200)}; GET /help lists the routes`);
  });
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    sendError(res, expressError(err), protocolOf(req.path), log, { reqId: String(res.getHeader('x-request-id')), method: req.method, path: req.path });
  });

  const fast: FastRoute[] = [
    {
      route: '/api/v1/models/:name/prediction',
      protocol: 'v1',
      methods: ['POST', 'GET'],
      pattern: /^\/api\/v1\/models\/([^/?]+)\/prediction\/?(?:\?(.*))?$/,
      forward: async (req, m, reqId) => {
        const q = m[2] === undefined ? NO_QUERY : new URLSearchParams(m[2]);
        const { body, contentLength } = v1Body(req, q, config.maxBodyBytes);
        return dataplane.predictV1(decodeURIComponent(m[1]!), q, { reqId, body: await smallBody(body, contentLength), contentLength, contentType: 'application/json' });
      },
      multipart: (req, m, reqId) =>
        dataplane.predictImages(decodeURIComponent(m[1]!), new URLSearchParams(m[2] ?? ''), {
          reqId,
          body: req,
          contentLength: declaredLength(req, config.maxBodyBytes),
          contentType: String(req.headers['content-type']),
        }),
    },
    {
      route: '/v2/models/:model/infer',
      also: ['/v2/models/:model/versions/:version/infer'],
      protocol: 'v2',
      methods: ['POST'],
      pattern: /^\/v2\/models\/([^/?]+)(?:\/versions\/([^/?]+))?\/infer(?:\?.*)?$/,
      forward: async (req, m, reqId) => {
        const contentLength = declaredLength(req, config.maxBodyBytes);
        const header = req.headers['inference-header-content-length'];
        return dataplane.inferV2(decodeURIComponent(m[1]!), m[2] === undefined ? undefined : decodeURIComponent(m[2]), {
          reqId,
          body: await smallBody(req, contentLength),
          contentLength,
          contentType: String(req.headers['content-type'] ?? 'application/json'),
          headerLength: Array.isArray(header) ? header[0] : header,
        });
      },
    },
  ];

  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? '/';
    for (const f of fast) {
      if (!f.methods.includes(req.method ?? '')) continue;
      const m = f.pattern.exec(url);
      if (!m) continue;
      // Multipart predictions (images) stream to the modelhost too; other multipart bodies go through express.
      const multipart = String(req.headers['content-type'] ?? '').startsWith('multipart/');
      if (!multipart) {
        void serveFast(f, req, res, m);
        return;
      }
      if (f.multipart && req.method === 'POST') {
        void serveFast({ ...f, forward: f.multipart }, req, res, m);
        return;
      }
    }
    app(req, res);
  };
  return Object.assign(listener, { routes: () => [...expressRoutes(app), ...fast.flatMap((f) => [f.route, ...(f.also ?? [])].flatMap((path) => f.methods.map((method) => ({ method, path }))))] });

  async function serveFast(f: FastRoute, req: IncomingMessage, res: ServerResponse, m: RegExpExecArray): Promise<void> {
    const reqId = requestIdFrom(req.headers[REQUEST_ID_HEADER]);
    const started = performance.now();
    let bytesOut = 0;
    let written: Record<string, string> | undefined;
    try {
      await deps.auth.check(req, req.method ?? 'POST', (req.url ?? '/').split('?')[0]!);
      const extra: Record<string, string> = Object.assign({ 'x-request-id': reqId }, SECURITY_HEADERS);
      ({ bytes: bytesOut, headers: written } = await relay(await f.forward(req, m, reqId), res, extra));
    } catch (err) {
      const e = err instanceof InferrerError ? err : undefined;
      if (e && (e.kind === 'unavailable' || e.kind === 'timeout' || e.kind === 'internal')) metrics.upstreamErrors.inc({ code: e.code });
      req.resume();
      if (!res.headersSent) {
        res.setHeader('x-request-id', reqId);
        for (const h in SECURITY_HEADERS) res.setHeader(h, SECURITY_HEADERS[h as keyof typeof SECURITY_HEADERS]);
      }
      sendError(res, err, f.protocol, log, { reqId, method: req.method, path: req.url?.split('?')[0] });
      bytesOut = Number(res.getHeader('content-length')) || 0;
    }
    const ms = performance.now() - started;
    const bytesIn = Number(req.headers['content-length']) || 0;
    metrics.observe(f.route, f.protocol, res.statusCode, ms / 1000, bytesIn, bytesOut);
    if (logAccess) {
      const version = written?.['x-inferrer-model-version'];
      access.info('request', {
        reqId,
        method: req.method,
        path: req.url?.split('?')[0],
        route: f.route,
        protocol: f.protocol,
        model: safeDecode(m[1]!),
        version: version === undefined ? null : Number(version),
        modelhost: written?.['x-modelhost-id'] ?? null,
        status: res.statusCode,
        ms: Number(ms.toFixed(2)),
        bytesIn,
        bytesOut,
      });
    }
  }
}

/** The query of a request without one (only read). */
const NO_QUERY = new URLSearchParams();

/** Headers every answer carries on the lean path (express answers get them from helmet). */
const SECURITY_HEADERS = { 'x-content-type-options': 'nosniff', 'x-frame-options': 'DENY', 'referrer-policy': 'no-referrer', 'cache-control': 'no-store' };

/** Bodies up to this size are read whole and sent as one buffer; larger ones stream through. */
const SMALL_BODY = 65536;

/**
 * A small body read into memory: one write upstream instead of a stream pipe (cheaper per request, and the
 * tensor is still not parsed here). Larger bodies and bodies of unknown length stream.
 */
async function smallBody<B>(body: B | IncomingMessage, length: number | undefined): Promise<B | IncomingMessage | Buffer> {
  if (length === undefined || length > SMALL_BODY || typeof body === 'string') return body;
  return readStream(body as IncomingMessage, SMALL_BODY, length);
}

/** The declared body length, refusing one over the limit before anything is read. */
function declaredLength(req: IncomingMessage, limit: number): number | undefined {
  const length = req.headers['content-length'];
  if (length === undefined) return undefined;
  const n = Number(length);
  if (n > limit) throw new InferrerError('BODY_TOO_LARGE', `the request body is larger than the limit of ${limit} bytes`, { limit, got: n });
  return n;
}

/** A v1 prediction body: the request itself, or `?values=[…]` (FRACTAL's GET form without a body). */
function v1Body(req: IncomingMessage, q: URLSearchParams, limit: number): { body: IncomingMessage | string; contentLength: number | undefined } {
  const length = req.headers['content-length'];
  const hasBody = length !== undefined ? Number(length) > 0 : req.headers['transfer-encoding'] !== undefined;
  if (hasBody) return { body: req, contentLength: declaredLength(req, limit) };
  const values = q.get('values');
  if (values === null) throw new InferrerError('INVALID_REQUEST', 'send {"values": [...]} as the body, or ?values=[...] in the query');
  let parsed: unknown;
  try {
    parsed = parseJson(values);
  } catch (err) {
    if ((err as InferrerError).code !== 'INVALID_JSON') throw err;
    throw new InferrerError('INVALID_JSON', 'the values query parameter is not valid JSON');
  }
  const body = JSON.stringify({ values: parsed });
  return { body, contentLength: Buffer.byteLength(body) };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s).slice(0, 200);
  } catch {
    return s.slice(0, 200);
  }
}

/** Routes registered on express (and on routers mounted on it), as METHOD + path template. */
function expressRoutes(app: express.Express): RouteEntry[] {
  const out: RouteEntry[] = [];
  type Layer = { route?: { path: string; methods: Record<string, boolean> }; handle?: { stack?: Layer[] } };
  const walk = (stack: Layer[]): void => {
    for (const layer of stack) {
      if (layer.route) {
        for (const [method, on] of Object.entries(layer.route.methods)) if (on && method !== '_all') out.push({ method: method.toUpperCase(), path: layer.route.path });
      } else if (layer.handle?.stack) walk(layer.handle.stack);
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack);
  return out;
}

function protocolOf(path: string): Protocol {
  return path.startsWith('/v2') ? 'v2' : 'v1';
}

function routeTemplate(req: Request): string {
  const p = req.route?.path;
  return typeof p === 'string' ? p : req.path === '/' ? '/' : 'unmatched';
}

/** express / body-parser errors (bad JSON, too large) as InferrerErrors. */
function expressError(err: unknown): unknown {
  if (err instanceof InferrerError) return err;
  const e = err as { type?: string; status?: number; message?: string };
  if (e.type === 'entity.too.large') return new InferrerError('BODY_TOO_LARGE', 'the request body is too large');
  if (e.type === 'entity.parse.failed') return new InferrerError('INVALID_JSON', `the body is not valid JSON: ${e.message}`);
  if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) return new InferrerError('INVALID_REQUEST', e.message ?? 'bad request');
  return err;
}
