/**
 * The metrics service's HTTP surface.
 *
 *   GET /                       status page: charts of the per-model summary (nothing loaded from elsewhere)
 *   GET /vendor/uplot/*         the chart library the page draws with, from node_modules
 *   GET /api/v1/stats           the per-model summary across the cluster, modelhosts, nginx, host (JSON)
 *   GET /api/v1/history         the summary's last HISTORY_S seconds, one point per scrape (?since=ms: newer only)
 *   GET /api/v1/targets         the modelhosts as Prometheus HTTP service discovery (http_sd_configs)
 *   GET /api/v1/inference-stats every modelhost's inference statistics, asked now and summed (fanout.ts)
 *   GET /api/v1/models/:name/loaded-on   which workers have the model loaded now (every modelhost asked)
 *   POST /api/v1/models/:name/versions/:version/warm   every modelhost loads and warms a version; ready
 *                               when all that answer have it (the Inferrer's model readiness)
 *   GET /api/v1/drift           drift scores per model version and feature (?model=name to pick one)
 *   GET /api/v1/drift/captures  profile captures the workers hold (?model=&version=), for the Inferrer
 *   GET /metrics                the same figures for Prometheus, plus this process's own
 *   GET /health/live, /health/ready
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import express, { type NextFunction, type Request, type Response } from 'express';
import { parseModelName, parseVersion } from '@inferrer/core';
import { type Logger, type client, errorFields } from '@inferrer/telemetry';
import type { Monitor } from './monitor.ts';

export interface MetricsDeps {
  logger: Logger;
  monitor: Monitor;
  registry: client.Registry;
}

export const STATUS_PAGE_DIR = path.join(import.meta.dirname, 'status-page');
/** uPlot's built files (uPlot.iife.min.js, uPlot.min.css), served as they are installed. */
const UPLOT_DIR = path.join(path.dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist');

export function createApp(deps: MetricsDeps): express.Express {
  const { monitor, registry } = deps;
  const log = deps.logger.child({ module: 'http' });
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.get('/health/live', (_req, res) => void res.json({ live: true }));
  app.get('/health/ready', (_req, res) => {
    const ok = monitor.ticks > 0;
    res.status(ok ? 200 : 503).json({ ready: ok });
  });
  app.get('/metrics', async (_req, res) => {
    res.set('content-type', registry.contentType).send(await registry.metrics());
  });
  app.get('/api/v1/stats', (_req, res) => {
    res.set('cache-control', 'no-store').json(monitor.stats());
  });
  app.get('/api/v1/history', (req, res) => {
    const since = typeof req.query.since === 'string' && req.query.since !== '' ? Number(req.query.since) : undefined;
    if (since !== undefined && !Number.isFinite(since)) {
      res.status(400).json({ error: { code: 'INVALID_REQUEST', message: 'since must be a time in milliseconds since the epoch' } });
      return;
    }
    res.set('cache-control', 'no-store').json(monitor.history.columns(since));
  });
  app.get('/api/v1/drift', (req, res) => {
    const model = typeof req.query.model === 'string' ? req.query.model : undefined;
    res
      .set('cache-control', 'no-store')
      .json({ time: new Date().toISOString(), models: monitor.drift.models().filter((m) => model === undefined || m.model === model) });
  });
  app.get('/api/v1/drift/captures', (req, res) => {
    const model = typeof req.query.model === 'string' ? req.query.model : undefined;
    const version = typeof req.query.version === 'string' ? Number(req.query.version) : undefined;
    res.set('cache-control', 'no-store').json({ time: new Date().toISOString(), captures: monitor.drift.captures(model, version) });
  });
  app.get('/api/v1/inference-stats', async (_req, res) => {
    res.set('cache-control', 'no-store').json(await monitor.fanout.inferenceStats());
  });
  app.get('/api/v1/models/:name/loaded-on', async (req, res) => {
    let name: string;
    try {
      name = parseModelName(String(req.params.name));
    } catch (err) {
      res.status(400).json({ error: { code: 'INVALID_MODEL_NAME', message: (err as Error).message } });
      return;
    }
    res.set('cache-control', 'no-store').json(await monitor.fanout.loadedOn(name));
  });
  app.post('/api/v1/models/:name/versions/:version/warm', async (req, res) => {
    let name: string;
    let version: number;
    try {
      name = parseModelName(String(req.params.name));
      version = parseVersion(String(req.params.version));
    } catch (err) {
      res.status(400).json({ error: { code: 'INVALID_MODEL_NAME', message: (err as Error).message } });
      return;
    }
    res.set('cache-control', 'no-store').json(await monitor.fanout.warm(name, version));
  });
  app.get('/api/v1/targets', (_req, res) => {
    res.json(monitor.workers().map((w) => ({ targets: [new URL(w.url).host], labels: { modelhost: w.id } })));
  });
  app.use('/vendor/uplot', express.static(UPLOT_DIR, { index: false, maxAge: '1h' }));
  app.use(express.static(STATUS_PAGE_DIR, { index: 'index.html', maxAge: 0 }));
  app.use((req: Request, res: Response) => {
    res.status(404).json({ error: { code: 'ROUTE_NOT_FOUND', message: `no route ${req.method} ${req.path.slice(0, 200)}` } });
  });
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    // The router's own refusals (a path parameter with an invalid percent-encoding) carry a 4xx status.
    const status = (err as { status?: unknown } | null)?.status;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      const message = err instanceof URIError ? `the request path has an invalid percent-encoding (${JSON.stringify(req.path.slice(0, 200))})` : 'bad request';
      res.status(status).json({ error: { code: 'INVALID_REQUEST', message } });
      return;
    }
    log.error('request failed', { method: req.method, path: req.path, status: 500, err: err instanceof Error ? errorFields(err) : { message: String(err) } });
    if (!res.headersSent) res.status(500).json({ error: { code: 'INTERNAL', message: 'internal error' } });
  });
  return app;
}
