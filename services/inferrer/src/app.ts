/**
 * The Inferrer's HTTP app. Predictions take a lean path on node:http (request id → dataplane → stream the
 * modelhost's answer back); every other route goes through express. Errors from either path are shaped
 * by protocol/errors.ts alone.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import { InferrerError } from '@inferrer/core';
import { type Logger, REQUEST_ID_HEADER, requestIdFrom } from '@inferrer/telemetry';
import type { InferrerConfig } from './config.ts';
import type { DataPlane } from './dataplane.ts';
import type { Management } from './management.ts';
import type { InferrerMetrics } from './metrics.ts';
import { sendError } from './protocol/errors.ts';
import { fractalV1Routes } from './protocol/fractal-v1/routes.ts';
import type { UpstreamResponse } from './upstream.ts';

export interface InferrerDeps {
  config: InferrerConfig;
  logger: Logger;
  management: Management;
  dataplane: DataPlane;
  metrics: InferrerMetrics;
  ready: () => Promise<boolean>;
}

const V1_PREDICT = /^\/api\/v1\/models\/([^/?]+)\/prediction\/?(?:\?(.*))?$/;
const PASS_HEADERS = ['x-modelhost-id', 'x-inferrer-batch', 'x-inferrer-model-version', 'server-timing'];

export function createApp(deps: InferrerDeps): RequestListener {
  const { config, dataplane, metrics } = deps;
  const log = deps.logger.child({ module: 'http' });
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
      metrics.requests.inc({ route, protocol: 'v1', status: String(res.statusCode) });
      metrics.duration.observe({ route, protocol: 'v1' }, (performance.now() - started) / 1000);
    });
    next();
  });
  app.get('/health/live', (_req, res) => void res.json({ live: true }));
  app.get('/health/ready', async (_req, res) => {
    const ok = await deps.ready();
    res.status(ok ? 200 : 503).json({ ready: ok });
  });
  app.get('/metrics', async (_req, res) => {
    res.set('content-type', metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  app.use(fractalV1Routes({ config, management: deps.management, dataplane, publicUrl: (req) => `${req.protocol}://${req.headers.host ?? `127.0.0.1:${config.port}`}` }));
  app.use((req: Request) => {
    throw new InferrerError('ROUTE_NOT_FOUND', `no route ${req.method} ${req.path.slice(0, 200)}; GET /help lists the routes`);
  });
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    sendError(res, expressError(err), 'v1', log, { reqId: String(res.getHeader('x-request-id')), method: req.method, path: req.path });
  });

  return (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    if (req.method === 'POST' || req.method === 'GET') {
      const m = V1_PREDICT.exec(url);
      if (m && !String(req.headers['content-type'] ?? '').startsWith('multipart/')) {
        void predictV1(req, res, m[1]!, m[2] ?? '');
        return;
      }
    }
    app(req, res);
  };

  async function predictV1(req: IncomingMessage, res: ServerResponse, rawName: string, query: string): Promise<void> {
    const reqId = requestIdFrom(req.headers[REQUEST_ID_HEADER]);
    const started = performance.now();
    try {
      const q = new URLSearchParams(query);
      const length = req.headers['content-length'];
      const hasBody = length !== undefined ? Number(length) > 0 : req.headers['transfer-encoding'] !== undefined;
      let body: IncomingMessage | string = req;
      let contentLength = length === undefined ? undefined : Number(length);
      if (!hasBody) {
        // GET …/prediction?values=[…] (FRACTAL's GET form without a body).
        const values = q.get('values');
        if (values === null) throw new InferrerError('INVALID_REQUEST', 'send {"values": [...]} as the body, or ?values=[...] in the query');
        let parsed: unknown;
        try {
          parsed = JSON.parse(values);
        } catch {
          throw new InferrerError('INVALID_JSON', 'the values query parameter is not valid JSON');
        }
        body = JSON.stringify({ values: parsed });
        contentLength = Buffer.byteLength(body);
      } else if (contentLength !== undefined && contentLength > config.maxBodyBytes) {
        throw new InferrerError('BODY_TOO_LARGE', `the request body is larger than the limit of ${config.maxBodyBytes} bytes`, { limit: config.maxBodyBytes, got: contentLength });
      }
      const up = await dataplane.predictV1(decodeURIComponent(rawName), q, {
        reqId,
        body,
        contentLength,
        contentType: 'application/json',
      });
      await relay(up, res, reqId);
      observe(200);
    } catch (err) {
      const e = err instanceof InferrerError ? err : undefined;
      if (e && (e.kind === 'unavailable' || e.kind === 'timeout' || e.kind === 'internal')) metrics.upstreamErrors.inc({ code: e.code });
      req.resume();
      sendError(res, err, 'v1', log, { reqId, method: req.method, path: req.url?.split('?')[0] });
      observe(res.statusCode);
    }
    function observe(status: number): void {
      metrics.requests.inc({ route: '/api/v1/models/:name/prediction', protocol: 'v1', status: String(status) });
      metrics.duration.observe({ route: '/api/v1/models/:name/prediction', protocol: 'v1' }, (performance.now() - started) / 1000);
    }
  }
}

/** Copies a modelhost answer to the client: status, the headers that matter, the body as it streams. */
async function relay(up: UpstreamResponse, res: ServerResponse, reqId: string): Promise<void> {
  const headers: Record<string, string> = { 'content-type': String(up.headers['content-type'] ?? 'application/json'), 'x-request-id': reqId };
  for (const h of PASS_HEADERS) {
    const v = up.headers[h];
    if (typeof v === 'string') headers[h] = v;
  }
  const length = up.headers['content-length'];
  if (typeof length === 'string' && Number(length) <= 65536) {
    const buf = Buffer.from(await up.body.arrayBuffer());
    headers['content-length'] = String(buf.length);
    res.writeHead(up.status, headers);
    res.end(buf);
    return;
  }
  if (typeof length === 'string') headers['content-length'] = length;
  res.writeHead(up.status, headers);
  for await (const chunk of up.body) res.write(chunk);
  res.end();
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
