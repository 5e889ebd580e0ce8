/**
 * Batch job routes, answered in the FRACTAL v1 envelope ({"http_status": {…}, …}) like the rest of /api/v1.
 *   POST   /api/v1/models/{name}/jobs     body: NDJSON or CSV rows, or a zip/tar of images → 202 + Location
 *   GET    /api/v1/jobs                   every job (?model=, ?state=)
 *   GET    /api/v1/jobs/{id}              state, items done/failed/total, rate, ETA
 *   GET    /api/v1/jobs/{id}/results      NDJSON in input order (a prefix while the job runs)
 *   DELETE /api/v1/jobs/{id}              cancel (?purge=true: remove a finished job and its files)
 */
import type { Request, Response } from 'express';
import { Router } from 'express';
import { InferrerError, v1Envelope } from '@inferrer/core';
import type { JobService } from '../../jobs/job-service.ts';

export interface JobRouteDeps {
  /** Undefined while jobs are not running here: every route answers 503 JOBS_UNAVAILABLE. */
  jobs: JobService | undefined;
}

/**
 * Whose quota a submission counts against: the API key's principal when the auth middleware left one in
 * `res.locals.principal`, else the client address.
 */
export function clientOf(req: Request, res: Response): string {
  const p = (res.locals as { principal?: { id?: unknown } }).principal;
  if (p && typeof p.id === 'string' && p.id.startsWith('key:')) return p.id;
  return `ip:${req.socket.remoteAddress ?? 'unknown'}`;
}

export function jobRoutes(deps: JobRouteDeps): Router {
  const r = Router();
  const ok = (res: Response, status: number, fields: Record<string, unknown>): void => void res.status(status).json(v1Envelope(status, fields));
  const jobs = (): JobService => {
    if (!deps.jobs) throw new InferrerError('JOBS_UNAVAILABLE', 'batch jobs are not running on this Inferrer', {}, { retryAfter: 5 });
    return deps.jobs;
  };
  const one = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

  r.post('/api/v1/models/:name/jobs', async (req, res) => {
    const job = await jobs().submit({
      model: req.params.name!,
      version: one(req.query.version),
      format: one(req.query.format),
      body: req,
      contentType: req.headers['content-type'],
      client: clientOf(req, res),
    });
    res.setHeader('location', `/api/v1/jobs/${job.id}`);
    ok(res, 202, { message: `job ${job.id} queued: ${job.items.total} items for model ${job.model}`, job });
  });
  r.get('/api/v1/jobs', async (req, res) => ok(res, 200, { jobs: await jobs().list({ model: one(req.query.model), state: one(req.query.state) }) }));
  r.get('/api/v1/jobs/:id', async (req, res) => ok(res, 200, { job: await jobs().status(req.params.id!) }));
  r.get('/api/v1/jobs/:id/results', async (req, res) => {
    const { record, items, complete, lines } = await jobs().results(req.params.id!);
    res.writeHead(200, {
      'content-type': 'application/x-ndjson',
      'x-job-state': record.state,
      'x-job-items': String(items),
      'x-job-complete': String(complete),
    });
    for await (const b of lines) {
      if (res.destroyed) return;
      if (!res.write(b)) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            res.off('drain', done);
            res.off('close', done);
            resolve();
          };
          res.once('drain', done);
          res.once('close', done);
        });
      }
    }
    res.end();
  });
  r.delete('/api/v1/jobs/:id', async (req, res) => {
    if (req.query.purge === 'true') {
      await jobs().remove(req.params.id!);
      ok(res, 200, { message: `job ${req.params.id} removed` });
      return;
    }
    ok(res, 200, { job: await jobs().cancel(req.params.id!) });
  });
  return r;
}
