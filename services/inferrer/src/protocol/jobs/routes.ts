/**
 * Batch job routes, answered in the FRACTAL v1 envelope ({"http_status": {…}, …}) like the rest of /api/v1.
 *   POST   /api/v1/models/{name}/jobs     body: NDJSON or CSV rows, or a zip/tar of images → 202 + Location
 *   GET    /api/v1/jobs                   the caller's jobs (?model=, ?state=)
 *   GET    /api/v1/jobs/{id}              state, items done/failed/total, rate, ETA
 *   GET    /api/v1/jobs/{id}/results      NDJSON in input order (a prefix while the job runs)
 *   DELETE /api/v1/jobs/{id}              cancel (?purge=true: remove a finished job and its files)
 * With API keys a job is its submitting key's: another key is answered 404 JOB_NOT_FOUND, as for a job
 * that does not exist; a key with the admin scope sees and manages every job (docs/jobs.md#who-sees-a-job).
 */
import type { Request, Response } from 'express';
import { InferrerError } from '@inferrer/core';
import type { Principal } from '../../auth.ts';
import type { ExpressRoute } from '../../http/route.ts';
import type { JobService } from '../../jobs/job-service.ts';
import type { JobViewer } from '../../jobs/types.ts';
import { sendV1 } from '../fractal-v1/routes.ts';
import { TAGS, json, jobIdParam, nameParam, ok, ref, v1Errors } from '../openapi-parts.ts';

export interface JobRouteDeps {
  /** Undefined while jobs are not running here: every route answers 503 JOBS_UNAVAILABLE. */
  jobs: JobService | undefined;
}

/** The principal the auth middleware left in `res.locals` (app.ts). */
const principalOf = (res: Response): Principal | undefined => (res.locals as { principal?: Principal }).principal;

/**
 * Whose quota a submission counts against: the API key, as its jobs' owner (a key without a name by its
 * fingerprint, not by its place in the file), else the client address.
 */
export function clientOf(req: Request, res: Response): string {
  // Without a key, the principal is the client address as the rate limit counts it (an IPv6 client by its /64).
  const p = principalOf(res);
  return p?.owner ?? p?.id ?? `ip:${req.socket.remoteAddress ?? 'unknown'}`;
}

/**
 * Whose jobs a request may see: every job for a key with the admin scope and while the Inferrer runs
 * without API keys (scopes 'all'); else the jobs of its own key (none without a principal).
 */
function viewerOf(res: Response): JobViewer {
  const p = principalOf(res);
  if (p && (p.scopes === 'all' || p.scopes.has('admin'))) return { all: true };
  return { all: false, owner: p?.owner };
}

const one = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

export function jobRoutes(deps: JobRouteDeps): ExpressRoute[] {
  const jobs = (): JobService => {
    if (!deps.jobs) throw new InferrerError('JOBS_UNAVAILABLE', 'batch jobs are not running on this Inferrer', {}, { retryAfter: 5 });
    return deps.jobs;
  };
  const base = { scope: 'predict', protocol: 'v1' } as const;
  const tags = [TAGS.jobs];
  return [
    {
      ...base,
      method: 'POST',
      path: '/api/v1/models/:name/jobs',
      summary: 'Submit a batch job: NDJSON or CSV rows, or a zip/tar of images (streamed to disk); see docs/jobs.md',
      example: `curl -i -X POST $B/api/v1/models/iris/jobs -H 'Content-Type: text/csv' --data-binary @rows.csv`,
      openapi: {
        tags,
        parameters: [
          nameParam,
          { name: 'version', in: 'query', schema: { type: 'integer', minimum: 1 }, description: 'Pin a model version' },
          {
            name: 'format',
            in: 'query',
            schema: { type: 'string', enum: ['ndjson', 'csv', 'zip', 'tar'] },
            description: 'Override the Content-Type (else sniffed)',
          },
        ],
        requestBody: {
          required: true,
          content: {
            'application/x-ndjson': { schema: { type: 'string' }, example: '[5.1, 3.5, 1.4, 0.2]\n[6.7, 2.5, 5.8, 1.8]\n' },
            'text/csv': { schema: { type: 'string' }, example: '5.1,3.5,1.4,0.2\n6.7,2.5,5.8,1.8\n' },
            'application/zip': { schema: { type: 'string', format: 'binary' } },
            'application/x-tar': { schema: { type: 'string', format: 'binary' } },
          },
        },
        responses: {
          '202': { description: 'Queued; `Location` is the job', ...json(ref('V1Job')) },
          ...v1Errors,
          '413': { description: 'Over JOBS_MAX_ITEMS or JOBS_MAX_BYTES', ...json(ref('V1Error')) },
          '429': { description: 'Over JOBS_MAX_ACTIVE_PER_CLIENT (Retry-After)', ...json(ref('V1Error')) },
        },
      },
      handle: async (req, res) => {
        const job = await jobs().submit({
          model: req.params.name!,
          version: one(req.query.version),
          format: one(req.query.format),
          body: req,
          contentType: req.headers['content-type'],
          client: clientOf(req, res),
          owner: principalOf(res)?.owner,
        });
        res.setHeader('location', `/api/v1/jobs/${job.id}`);
        sendV1(res, 202, { message: `job ${job.id} queued: ${job.items.total} items for model ${job.model}`, job });
      },
    },
    {
      ...base,
      method: 'GET',
      path: '/api/v1/jobs',
      summary: "The caller's jobs (an admin key: every job), newest last (?model=, ?state=)",
      openapi: {
        tags,
        parameters: [
          { name: 'model', in: 'query', schema: { type: 'string' } },
          { name: 'state', in: 'query', schema: { type: 'string', enum: ['RECEIVING', 'QUEUED', 'RUNNING', 'SUCCEEDED', 'PARTIAL', 'FAILED', 'CANCELLED'] } },
        ],
        responses: ok('`jobs`', { type: 'object', properties: { http_status: ref('HttpStatus'), jobs: { type: 'array', items: ref('JobStatus') } } }),
      },
      handle: async (req, res) => sendV1(res, 200, { jobs: await jobs().list(viewerOf(res), { model: one(req.query.model), state: one(req.query.state) }) }),
    },
    {
      ...base,
      method: 'GET',
      path: '/api/v1/jobs/:id',
      summary: 'State of a job: items done/failed/total, rate, ETA',
      example: 'curl $B/api/v1/jobs/<id>',
      openapi: { tags, parameters: [jobIdParam], responses: { ...ok('`job`', ref('V1Job')), ...v1Errors } },
      handle: async (req, res) => sendV1(res, 200, { job: await jobs().status(req.params.id!, viewerOf(res)) }),
    },
    {
      ...base,
      method: 'GET',
      path: '/api/v1/jobs/:id/results',
      summary: 'Results as NDJSON in input order (while running: the finished prefix; X-Job-Complete says which)',
      example: 'curl $B/api/v1/jobs/<id>/results',
      openapi: {
        tags,
        parameters: [jobIdParam],
        responses: {
          '200': {
            description:
              'One line per item: {"index", "line" or "file", "model_version", "outputs"} or {"index", "line" or "file", "error": {"code", "message"}}',
            content: {
              'application/x-ndjson': {
                schema: { type: 'string' },
                example: '{"index":0,"line":1,"model_version":1,"outputs":{"label":0,"probabilities":[0.98,0.02,0]}}\n',
              },
            },
          },
          ...v1Errors,
        },
      },
      handle: async (req, res) => {
        const { record, items, complete, lines } = await jobs().results(req.params.id!, viewerOf(res));
        res.writeHead(200, {
          'content-type': 'application/x-ndjson',
          'x-job-state': record.state,
          'x-job-items': String(items),
          'x-job-complete': String(complete),
        });
        for await (const b of lines) {
          if (res.destroyed) return;
          if (!res.write(b)) await drained(res);
        }
        res.end();
      },
    },
    {
      ...base,
      method: 'DELETE',
      path: '/api/v1/jobs/:id',
      summary: 'Cancel a job (results so far are kept); ?purge=true removes a finished job and its files',
      example: 'curl -X DELETE $B/api/v1/jobs/<id>',
      openapi: {
        tags,
        parameters: [jobIdParam, { name: 'purge', in: 'query', schema: { type: 'boolean' } }],
        responses: { ...ok('`job`', ref('V1Job')), ...v1Errors },
      },
      handle: async (req, res) => {
        if (req.query.purge === 'true') {
          await jobs().remove(req.params.id!, viewerOf(res));
          sendV1(res, 200, { message: `job ${req.params.id} removed` });
          return;
        }
        sendV1(res, 200, { job: await jobs().cancel(req.params.id!, viewerOf(res)) });
      },
    },
  ];
}

/** Resolves when the response can take more (or is gone). */
function drained(res: Response): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}
