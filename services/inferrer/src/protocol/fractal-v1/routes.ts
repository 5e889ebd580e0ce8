/**
 * FRACTAL v1 (compatible with the FRACTAL ML Server): welcome, help and model management routes. Every
 * answer is wrapped in {"http_status": {"code", "description", "name"}, …}. Predictions are in predict.ts.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Request, Response } from 'express';
import { InferrerError, v1Envelope } from '@inferrer/core';
import type { InferrerConfig } from '../../config.ts';
import type { DataPlane } from '../../dataplane.ts';
import type { ExpressRoute, Route } from '../../http/route.ts';
import type { Management } from '../../management.ts';
import type { MetricsClient } from '../../metrics-client.ts';
import { whereabouts } from '../../whereabouts.ts';
import { TAGS, json, nameParam, ok, ref, v1Errors } from '../openapi-parts.ts';
import { hasBody, jsonBody } from '../request-body.ts';
import { receiveUpload } from '../uploads.ts';

export interface V1Deps {
  config: InferrerConfig;
  management: Management;
  dataplane: DataPlane;
  metrics: MetricsClient;
  /** The whole route table, for /help. */
  routes: () => readonly Route[];
}

const MAX_SENDTOMODELHOST_ITEMS = 1000;
/** Items of one sendtomodelhost request in flight at once. */
const SENDTOMODELHOST_AT_ONCE = 8;

export const sendV1 = (res: Response, status: number, fields: Record<string, unknown>): void => void res.status(status).json(v1Envelope(status, fields));

/** The base URL the client used, for examples and links. */
export const publicUrl = (req: Request, port: number): string => `${req.protocol}://${req.headers.host ?? `127.0.0.1:${port}`}`;

/** One /help entry per route: method, path with `{param}`, what it does, a curl to paste. */
export function helpEntries(routes: readonly Route[], base: string): { method: string; path: string; description: string; example: string }[] {
  return routes.map((r) => ({
    method: r.method,
    path: r.path.replace(/:([A-Za-z_]+)/g, '{$1}'),
    description: r.scope === 'admin' ? `${r.summary} (admin)` : r.summary,
    example: (r.example ?? `curl $B${r.path}`).replaceAll('$B', base),
  }));
}

export function v1Routes(deps: V1Deps): ExpressRoute[] {
  const { management, config, dataplane } = deps;
  const body = (req: Request): Promise<unknown> => jsonBody(req, config.maxBodyBytes);
  const v1 = { scope: 'predict', protocol: 'v1' } as const;
  const admin = { scope: 'admin', protocol: 'v1' } as const;
  const tags = [TAGS.v1];
  const sendToModelhost = async (req: Request, res: Response): Promise<void> => {
    const b = (await body(req)) as { data?: unknown };
    if (!b || !Array.isArray(b.data) || b.data.length === 0) throw new InferrerError('INVALID_REQUEST', 'send {"data": ["ONE", "TWO", …]}');
    if (b.data.length > MAX_SENDTOMODELHOST_ITEMS)
      throw new InferrerError('INVALID_REQUEST', `at most ${MAX_SENDTOMODELHOST_ITEMS} items`, { limit: MAX_SENDTOMODELHOST_ITEMS });
    const reqId = res.getHeader('x-request-id') as string;
    const items = b.data.map((d, i) => {
      if (typeof d !== 'string' && typeof d !== 'number' && typeof d !== 'boolean')
        throw new InferrerError('INVALID_REQUEST', `data[${i}] must be a string (or a number)`, { item: i });
      return String(d).slice(0, 256);
    });
    // A few items at a time: one request of 1,000 items must not take every connection to the balancer.
    const answers: string[] = [];
    let next = 0;
    const sender = async (): Promise<void> => {
      for (let i = next++; i < items.length; i = next++) answers[i] = await dataplane.whoAnswers(items[i]!, reqId);
    };
    await Promise.all(Array.from({ length: Math.min(SENDTOMODELHOST_AT_ONCE, items.length) }, sender));
    sendV1(res, 200, { results: items.map((d, i) => ({ data: d, modelhost: answers[i] })) });
  };
  return [
    {
      method: 'GET',
      path: '/',
      scope: 'public',
      protocol: 'v1',
      summary: 'Welcome message',
      openapi: { tags, responses: ok('Welcome') },
      handle: (req, res) =>
        sendV1(res, 200, {
          message: 'Welcome to Inferrer, a model-serving cluster for ONNX models. GET /help lists the routes.',
          help: `${publicUrl(req, config.port)}/help`,
        }),
    },
    {
      method: 'GET',
      path: '/help',
      scope: 'public',
      protocol: 'v1',
      summary: 'Every route with an example',
      openapi: { tags, responses: ok('Routes') },
      handle: (req, res) => sendV1(res, 200, { routes: helpEntries(deps.routes(), publicUrl(req, config.port)) }),
    },
    {
      ...v1,
      method: 'GET',
      path: '/api/v1/models',
      summary: 'Names of all models',
      openapi: { tags, responses: ok('`model_list`', ref('V1ModelList')) },
      handle: async (_req, res) => sendV1(res, 200, { model_list: await management.list() }),
    },
    {
      ...v1,
      method: 'GET',
      path: '/api/v1/models/information',
      summary: 'Names and descriptions of all models (FRACTAL: model_list of {model, description}, then name, default_version, versions)',
      openapi: {
        tags,
        responses: ok('`model_list`', {
          type: 'object',
          properties: {
            http_status: ref('HttpStatus'),
            model_list: {
              type: 'array',
              items: {
                type: 'object',
                required: ['model', 'description'],
                properties: {
                  model: { type: 'string' },
                  description: { type: 'string' },
                  name: { type: 'string' },
                  default_version: { type: 'integer' },
                  versions: { type: 'array', items: { type: 'integer' } },
                },
              },
            },
          },
        }),
      },
      handle: async (_req, res) =>
        sendV1(res, 200, {
          model_list: (await management.information()).map((m) => ({
            model: m.name,
            description: m.description ?? '',
            name: m.name,
            default_version: m.default_version,
            versions: m.versions,
          })),
        }),
    },
    {
      ...v1,
      method: 'GET',
      path: '/api/v1/models/:name',
      summary:
        'One model: description, versions, inputs/outputs, batching config, where it is loaded (loaded_on), how it is placed, and how a worker runs it (execution)',
      example: 'curl $B/api/v1/models/iris',
      openapi: {
        tags,
        parameters: [nameParam],
        responses: { ...ok('`model`: description, versions, inputs, outputs, config, loaded_on, placement, execution'), ...v1Errors },
      },
      handle: async (req, res) => {
        const model = await management.describe(req.params.name!);
        // How a worker runs it (slots × threads, batch size, and why): its answer, when one answers soon.
        const [where, execution] = await Promise.all([
          whereabouts(deps.metrics, dataplane.placement, model.name),
          Promise.race([
            dataplane.modelSettings<{ execution?: unknown }>(model.name).then(
              (s) => s.execution,
              () => undefined,
            ),
            sleep(2000, undefined, { ref: false }),
          ]),
        ]);
        sendV1(res, 200, { model: { ...model, ...where, ...(execution ? { execution } : {}) } });
      },
    },
    {
      ...admin,
      method: 'POST',
      path: '/api/v1/models/:name',
      summary: 'Update the description (or config, labels, default_version)',
      example: `curl -X POST $B/api/v1/models/iris -H 'Content-Type: application/json' -d '{"model_description": "Iris species classifier"}'`,
      openapi: { tags, parameters: [nameParam], requestBody: { required: true, ...json(ref('ModelPatch')) }, responses: { ...ok('Updated'), ...v1Errors } },
      handle: async (req, res) => {
        const patch = await body(req);
        if (!patch || typeof patch !== 'object' || Array.isArray(patch))
          throw new InferrerError('INVALID_REQUEST', 'the body must be a JSON object like {"model_description": "…"}');
        sendV1(res, 200, { model: await management.update(req.params.name!, patch) });
      },
    },
    {
      ...admin,
      method: 'PUT',
      path: '/api/v1/models/:name',
      summary:
        'Upload a model, or a new version of it (multipart field "path" or "file"; optional JSON field "metadata"; or the raw file as application/octet-stream)',
      example: `curl -X PUT $B/api/v1/models/iris -F path=@iris.onnx -F 'metadata={"description":"Iris classifier"}'`,
      openapi: {
        tags,
        parameters: [nameParam],
        requestBody: {
          required: true,
          content: {
            'multipart/form-data': {
              schema: {
                type: 'object',
                properties: {
                  path: { type: 'string', format: 'binary', description: 'The ONNX file (FRACTAL name; `file` also works)' },
                  metadata: { type: 'string', description: 'JSON: description, config, labels' },
                },
              },
            },
            'application/octet-stream': { schema: { type: 'string', format: 'binary' } },
          },
        },
        responses: {
          '201': { description: 'Created: the model, or a new version of it', ...json(ref('V1Envelope')) },
          ...v1Errors,
          '413': { description: 'Over MAX_MODEL_BYTES', ...json(ref('V1Error')) },
          '415': { description: 'Wrong content type', ...json(ref('V1Error')) },
        },
      },
      handle: async (req, res) => {
        const upload = await receiveUpload(req, res, management, req.params.name!, config.maxModelBytes);
        const result = await management.upload(req.params.name!, upload.file, upload.metadata);
        res.setHeader('location', `/api/v1/models/${result.model.name}`);
        // Every upload creates something: the model, or a new version of it.
        sendV1(res, 201, { message: `model ${result.model.name} version ${result.version} uploaded`, version: result.version, model: result.model });
      },
    },
    {
      ...admin,
      method: 'DELETE',
      path: '/api/v1/models/:name',
      summary: 'Delete a model and all its versions',
      example: 'curl -X DELETE $B/api/v1/models/iris',
      openapi: { tags, parameters: [nameParam], responses: { ...ok('Deleted'), ...v1Errors } },
      handle: async (req, res) => {
        await management.remove(req.params.name!);
        sendV1(res, 200, { message: `model ${req.params.name} deleted` });
      },
    },
    {
      ...admin,
      method: 'POST',
      path: '/api/v1/models/:name/canary',
      summary: 'Send a share of the requests that name no version to a version (canary)',
      example: `curl -X POST $B/api/v1/models/iris/canary -H 'Content-Type: application/json' -d '{"version": 2, "percent": 10}'`,
      openapi: {
        tags: [TAGS.versions],
        parameters: [nameParam],
        requestBody: {
          required: true,
          ...json({
            type: 'object',
            required: ['version', 'percent'],
            properties: { version: { type: 'integer' }, percent: { type: 'number', minimum: 0, maximum: 100 } },
          }),
        },
        responses: { ...ok('Split set'), ...v1Errors },
      },
      handle: async (req, res) => sendV1(res, 200, { model: await management.canary(req.params.name!, await body(req)) }),
    },
    {
      ...admin,
      method: 'POST',
      path: '/api/v1/models/:name/promote',
      summary: 'Make the canary (or the given version) the default and clear the split',
      example: 'curl -X POST $B/api/v1/models/iris/promote',
      openapi: {
        tags: [TAGS.versions],
        parameters: [nameParam],
        requestBody: { required: false, ...json({ type: 'object', properties: { version: { type: 'integer' } } }) },
        responses: { ...ok('Promoted'), ...v1Errors },
      },
      // A body sent chunked has no Content-Length, and its version counts as much as a counted one's.
      handle: async (req, res) => sendV1(res, 200, { model: await management.promote(req.params.name!, hasBody(req) ? await body(req) : {}) }),
    },
    {
      ...admin,
      method: 'POST',
      path: '/api/v1/models/:name/rollback',
      summary: 'Send all traffic back to the default version',
      example: 'curl -X POST $B/api/v1/models/iris/rollback',
      openapi: { tags: [TAGS.versions], parameters: [nameParam], responses: { ...ok('Rolled back'), ...v1Errors } },
      handle: async (req, res) => sendV1(res, 200, { model: await management.rollback(req.params.name!) }),
    },
    {
      ...v1,
      method: 'POST',
      path: '/api/test/sendtomodelhost',
      summary: 'Which modelhost answers each item (shows the load balancing)',
      example: `curl -X POST $B/api/test/sendtomodelhost -H 'Content-Type: application/json' -d '{"data": ["ONE", "TWO", "THREE"]}'`,
      openapi: {
        tags,
        requestBody: { required: true, ...json({ type: 'object', properties: { data: { type: 'array', items: { type: 'string' } } } }) },
        responses: ok('`results`'),
      },
      handle: sendToModelhost,
    },
    {
      ...v1,
      method: 'GET',
      path: '/api/test/sendtomodelhost',
      summary: 'The same, as FRACTAL documents it: a GET with the JSON body',
      example: `curl -X GET -H 'Content-Type: application/json' --data '{"data": ["ONE", "TWO", "THREE", "FOUR"]}' $B/api/test/sendtomodelhost`,
      openapi: {
        tags,
        requestBody: { required: true, ...json({ type: 'object', properties: { data: { type: 'array', items: { type: 'string' } } } }) },
        responses: ok('`results`'),
      },
      handle: sendToModelhost,
    },
  ];
}
