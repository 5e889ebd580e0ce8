/**
 * Open Inference Protocol (KServe v2) routes other than infer (infer.ts): health, server and model metadata,
 * model readiness, and the model configuration, statistics and model repository extensions. Each answers
 * from service.ts (which the gRPC service shares). Errors are shaped {"error": "…"} by protocol/errors.ts.
 */
import type { IncomingMessage } from 'node:http';
import type { Response } from 'express';
import { InferrerError, parseJson, readStream } from '@inferrer/core';
import type { ExpressRoute } from '../../http/route.ts';
import { TAGS, json, modelParam, ok, ref, v2Errors, versionParam } from '../openapi-parts.ts';
import type { LoadRequest, OipService } from './service.ts';

export interface V2Deps {
  oip: OipService;
  /** Largest model file a repository load may carry (MAX_MODEL_BYTES). */
  maxModelBytes: number;
}

const send = (res: Response, status: number, body: unknown): void => void res.status(status).json(body);

/**
 * A repository load's body: empty, or `{"parameters": {"config": "<JSON>", "file:<version>/model.onnx":
 * "<base64>"}}` (a file is sent base64 inside JSON, so the body may be 4/3 of MAX_MODEL_BYTES).
 */
async function loadRequest(req: IncomingMessage, maxModelBytes: number): Promise<LoadRequest> {
  const cap = Math.ceil(maxModelBytes / 3) * 4 + 1024 * 1024;
  const length = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
  let buf: Buffer;
  try {
    buf = await readStream(req, cap, length);
  } catch (err) {
    if ((err as InferrerError).code !== 'BODY_TOO_LARGE') throw err;
    throw new InferrerError('MODEL_TOO_LARGE', `the load request is larger than a model of MAX_MODEL_BYTES (${maxModelBytes} bytes) sent as base64`, {
      limit: cap,
    });
  }
  if (buf.length === 0) return {};
  const body = parseJson(buf) as Record<string, unknown>;
  if (!body || typeof body !== 'object' || Array.isArray(body))
    throw new InferrerError('INVALID_REQUEST', 'the load request must be a JSON object {"parameters": {…}}');
  for (const k of Object.keys(body))
    if (k !== 'parameters')
      throw new InferrerError('INVALID_REQUEST', `the load request has a field ${JSON.stringify(k.slice(0, 64))}; it takes only "parameters"`, {
        field: k.slice(0, 64),
      });
  const params = body.parameters ?? {};
  if (typeof params !== 'object' || params === null || Array.isArray(params)) throw new InferrerError('INVALID_REQUEST', '"parameters" must be an object');
  const out: LoadRequest = {};
  const files: { path: string; bytes: Buffer }[] = [];
  for (const [k, v] of Object.entries(params)) {
    if (k === 'config') {
      if (typeof v !== 'string') throw new InferrerError('INVALID_REQUEST', 'parameter "config" must be a string holding the model configuration as JSON');
      out.config = v;
    } else if (k.startsWith('file:')) {
      if (typeof v !== 'string' || v.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) {
        throw new InferrerError('INVALID_REQUEST', `parameter ${JSON.stringify(k.slice(0, 128))} must be the file's content in base64`, {
          parameter: k.slice(0, 128),
        });
      }
      files.push({ path: k.slice(5), bytes: Buffer.from(v, 'base64') });
    } else {
      throw new InferrerError(
        'INVALID_REQUEST',
        `unknown load parameter ${JSON.stringify(k.slice(0, 64))}: a load takes "config" and "file:<version>/<name>.onnx"`,
        { parameter: k.slice(0, 64) },
      );
    }
  }
  if (files.length > 0) out.files = files;
  return out;
}

export function v2Routes(deps: V2Deps): ExpressRoute[] {
  const { oip, maxModelBytes } = deps;

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
      handle: async (_req, res) => send(res, 200, await oip.index()),
    },
    {
      ...v2,
      scope: 'admin',
      method: 'POST',
      path: '/v2/repository/models/:model/load',
      summary:
        'Load (and warm) a model on every worker; "file:<version>/model.onnx" (base64) uploads it, "config" (Triton model config JSON) sets its batching and instances',
      example: 'curl -X POST $B/v2/repository/models/iris/load',
      openapi: {
        tags: [TAGS.repository],
        parameters: [modelParam],
        requestBody: { required: false, content: { 'application/json': { schema: ref('V2RepositoryLoad') } } },
        responses: {
          ...ok('Loaded', { type: 'object' }),
          ...v2Errors,
          '413': { description: 'The file is larger than MAX_MODEL_BYTES', ...json(ref('V2Error')) },
        },
      },
      handle: async (req, res) => send(res, 200, await oip.load(req.params.model!, await loadRequest(req, maxModelBytes))),
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
        await oip.unload(req.params.model!);
        send(res, 200, {});
      },
    },
  ];
}
