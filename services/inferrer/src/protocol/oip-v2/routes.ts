/**
 * Open Inference Protocol (KServe v2) routes other than infer (infer.ts): health, server and model metadata,
 * model readiness and the model repository extension. Metadata comes from the store. Errors are shaped
 * {"error": "…"} by protocol/errors.ts.
 */
import type { Response } from 'express';
import type { ExpressRoute } from '../../http/route.ts';
import type { Management } from '../../management.ts';
import { TAGS, modelParam, ok, ref, v2Errors, versionParam } from '../openapi-parts.ts';
import type { OipService } from './service.ts';

export interface V2Deps {
  management: Management;
  oip: OipService;
}

const send = (res: Response, status: number, body: unknown): void => void res.status(status).json(body);

export function v2Routes(deps: V2Deps): ExpressRoute[] {
  const { management, oip } = deps;

  async function readiness(res: Response, name: string, rawVersion: string | undefined): Promise<void> {
    const r = await oip.modelReady(name, rawVersion);
    send(res, r.ready ? 200 : 503, r);
  }

  const v2 = { scope: 'predict', protocol: 'v2' } as const;
  const tags = [TAGS.v2];
  return [
    {
      method: 'GET',
      path: '/v2',
      scope: 'public',
      protocol: 'v2',
      summary: 'Server metadata: name, version, extensions',
      openapi: { tags, responses: ok('name, version, extensions', { type: 'object' }) },
      handle: (_req, res) => send(res, 200, oip.serverMetadata()),
    },
    {
      method: 'GET',
      path: '/v2/health/live',
      scope: 'public',
      protocol: 'v2',
      quiet: true,
      summary: 'Server live',
      openapi: { tags, responses: ok('Live', { type: 'object' }) },
      handle: (_req, res) => send(res, 200, { live: true }),
    },
    {
      method: 'GET',
      path: '/v2/health/ready',
      scope: 'public',
      protocol: 'v2',
      quiet: true,
      summary: 'Server ready',
      openapi: { tags, responses: { ...ok('Ready', { type: 'object' }), '503': { description: 'Not ready' } } },
      handle: async (_req, res) => {
        const ready = await oip.serverReady();
        send(res, ready ? 200 : 503, { ready });
      },
    },
    {
      ...v2,
      method: 'GET',
      path: '/v2/models/:model',
      summary: 'Model metadata: inputs and outputs with v2 datatypes (-1 for symbolic dims)',
      example: 'curl $B/v2/models/iris',
      openapi: { tags, parameters: [modelParam], responses: { ...ok('Metadata', ref('V2ModelMetadata')), ...v2Errors } },
      handle: async (req, res) => send(res, 200, await oip.modelMetadata(req.params.model!, undefined)),
    },
    {
      ...v2,
      method: 'GET',
      path: '/v2/models/:model/versions/:version',
      summary: 'Model version metadata',
      example: 'curl $B/v2/models/iris/versions/1',
      openapi: { tags, parameters: [modelParam, versionParam], responses: { ...ok('Metadata', ref('V2ModelMetadata')), ...v2Errors } },
      handle: async (req, res) => send(res, 200, await oip.modelMetadata(req.params.model!, req.params.version)),
    },
    {
      ...v2,
      method: 'GET',
      path: '/v2/models/:model/ready',
      summary: 'Model ready',
      example: 'curl $B/v2/models/iris/ready',
      openapi: { tags, parameters: [modelParam], responses: { ...ok('Ready', { type: 'object' }), ...v2Errors } },
      handle: (req, res) => readiness(res, req.params.model!, undefined),
    },
    {
      ...v2,
      method: 'GET',
      path: '/v2/models/:model/versions/:version/ready',
      summary: 'Model version ready',
      example: 'curl $B/v2/models/iris/versions/1/ready',
      openapi: { tags, parameters: [modelParam, versionParam], responses: { ...ok('Ready', { type: 'object' }), ...v2Errors } },
      handle: (req, res) => readiness(res, req.params.model!, req.params.version),
    },
    {
      ...v2,
      method: 'GET',
      path: '/v2/models/:model/config',
      summary: 'Model configuration (model configuration extension): Triton model config JSON, max_batch_size, dims without the batch dim, dynamic batching',
      example: 'curl $B/v2/models/iris/config',
      openapi: { tags, parameters: [modelParam], responses: { ...ok('Configuration', ref('V2ModelConfig')), ...v2Errors } },
      handle: async (req, res) => send(res, 200, await oip.modelConfig(req.params.model!, undefined)),
    },
    {
      ...v2,
      method: 'GET',
      path: '/v2/models/:model/versions/:version/config',
      summary: 'Model version configuration',
      example: 'curl $B/v2/models/iris/versions/1/config',
      openapi: { tags, parameters: [modelParam, versionParam], responses: { ...ok('Configuration', ref('V2ModelConfig')), ...v2Errors } },
      handle: async (req, res) => send(res, 200, await oip.modelConfig(req.params.model!, req.params.version)),
    },
    {
      ...v2,
      method: 'GET',
      path: '/v2/models/stats',
      summary: 'Statistics of every model version (statistics extension): counts and nanoseconds per stage, summed over every worker',
      example: 'curl $B/v2/models/stats',
      openapi: { tags, responses: { ...ok('Statistics', ref('V2ModelStats')), ...v2Errors } },
      handle: async (_req, res) => send(res, 200, await oip.modelStats(undefined, undefined)),
    },
    {
      ...v2,
      method: 'GET',
      path: '/v2/models/:model/stats',
      summary: 'Statistics of every version of a model',
      example: 'curl $B/v2/models/iris/stats',
      openapi: { tags, parameters: [modelParam], responses: { ...ok('Statistics', ref('V2ModelStats')), ...v2Errors } },
      handle: async (req, res) => send(res, 200, await oip.modelStats(req.params.model!, undefined)),
    },
    {
      ...v2,
      method: 'GET',
      path: '/v2/models/:model/versions/:version/stats',
      summary: 'Statistics of one model version',
      example: 'curl $B/v2/models/iris/versions/1/stats',
      openapi: { tags, parameters: [modelParam, versionParam], responses: { ...ok('Statistics', ref('V2ModelStats')), ...v2Errors } },
      handle: async (req, res) => send(res, 200, await oip.modelStats(req.params.model!, req.params.version)),
    },
    {
      ...v2,
      method: 'POST',
      path: '/v2/repository/index',
      summary: 'Models and their state',
      example: 'curl -X POST $B/v2/repository/index',
      openapi: { tags: [TAGS.repository], responses: ok('Index', { type: 'array', items: { type: 'object' } }) },
      handle: async (_req, res) => {
        const rows = [];
        for (const s of await management.information()) {
          const d = await management.describe(s.name);
          rows.push({ name: s.name, version: String(s.default_version), state: d.enabled === false ? 'UNAVAILABLE' : 'READY', reason: d.enabled === false ? 'unloaded' : '' });
        }
        send(res, 200, rows);
      },
    },
    {
      ...v2,
      scope: 'admin',
      method: 'POST',
      path: '/v2/repository/models/:model/load',
      summary: 'Load (and warm) a model on every worker',
      example: 'curl -X POST $B/v2/repository/models/iris/load',
      openapi: { tags: [TAGS.repository], parameters: [modelParam], responses: { ...ok('Loaded', { type: 'object' }), ...v2Errors } },
      handle: async (req, res) => {
        await management.setEnabled(req.params.model!, true);
        send(res, 200, {});
      },
    },
    {
      ...v2,
      scope: 'admin',
      method: 'POST',
      path: '/v2/repository/models/:model/unload',
      summary: 'Unload a model from every worker (infer answers 503 until it is loaded again)',
      example: 'curl -X POST $B/v2/repository/models/iris/unload',
      openapi: { tags: [TAGS.repository], parameters: [modelParam], responses: { ...ok('Unloaded', { type: 'object' }), ...v2Errors } },
      handle: async (req, res) => {
        await management.setEnabled(req.params.model!, false);
        send(res, 200, {});
      },
    },
  ];
}

