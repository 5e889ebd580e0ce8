/**
 * POST /api/v1/models/{name}/import {"url": "<STAC item URL>", "metadata"?: {…}}: a model (ONNX + STAC MLM
 * item) fetched by URL from an allow-listed host and published like an upload (see model-import.ts).
 */
import { InferrerError, parseJson, readStream } from '@inferrer/core';
import type { ExpressRoute } from '../../http/route.ts';
import type { ModelImporter } from '../../model-import.ts';
import { TAGS, json, nameParam, ref, v1Errors } from '../openapi-parts.ts';
import { sendV1 } from './routes.ts';

export function importRoutes(importer: ModelImporter): ExpressRoute[] {
  return [
    {
      method: 'POST',
      path: '/api/v1/models/:name/import',
      scope: 'admin',
      protocol: 'v1',
      summary: 'Import a model by the URL of its STAC MLM item (EOTDL); off unless MODEL_IMPORT_ENABLED, allow-listed hosts only',
      example: `curl -X POST $B/api/v1/models/mymodel/import -H 'Content-Type: application/json' -d '{"url": "https://api.eotdl.com/…/item.json"}'`,
      openapi: {
        tags: [TAGS.v1],
        parameters: [nameParam],
        requestBody: {
          required: true,
          ...json({ type: 'object', required: ['url'], properties: { url: { type: 'string', format: 'uri' }, metadata: { type: 'object' } } }),
        },
        responses: {
          '201': { description: 'Created: the model, or a new version of it', ...json(ref('V1Envelope')) },
          ...v1Errors,
          '403': { description: 'Import off, or host not allowed', ...json(ref('V1Error')) },
          '413': { description: 'Asset over MAX_MODEL_BYTES', ...json(ref('V1Error')) },
          '502': { description: 'The item or asset could not be fetched', ...json(ref('V1Error')) },
        },
      },
      handle: async (req, res) => {
        const type = String(req.headers['content-type'] ?? '');
        if (!type.startsWith('application/json'))
          throw new InferrerError('UNSUPPORTED_MEDIA_TYPE', `send {"url": "…"} as application/json, not ${JSON.stringify(type || 'no content type')}`, {
            got: type,
          });
        const length = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
        const body = parseJson(await readStream(req, 64 * 1024, length)) as { url?: unknown; metadata?: unknown };
        if (!body || typeof body !== 'object' || typeof body.url !== 'string')
          throw new InferrerError('INVALID_REQUEST', 'send {"url": "<STAC item URL>", "metadata": {…}}');
        if (body.metadata !== undefined && (typeof body.metadata !== 'object' || body.metadata === null || Array.isArray(body.metadata)))
          throw new InferrerError('INVALID_REQUEST', '"metadata" must be an object');
        const result = await importer.import(req.params.name!, {
          url: body.url,
          ...(body.metadata ? { metadata: body.metadata as Record<string, unknown> } : {}),
        });
        res.setHeader('location', `/api/v1/models/${result.model.name}`);
        sendV1(res, 201, {
          message: `model ${result.model.name} version ${result.version} imported from ${result.source.item}`,
          version: result.version,
          source: result.source,
          model: result.model,
        });
      },
    },
  ];
}
