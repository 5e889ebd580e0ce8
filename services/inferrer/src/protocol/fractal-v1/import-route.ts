/**
 * POST /api/v1/models/{name}/import {"url": "<STAC item URL>", "metadata"?: {…}}: a model (ONNX + STAC MLM
 * item) fetched by URL from an allow-listed host and published like an upload (see model-import.ts).
 */
import { Router } from 'express';
import { InferrerError, parseJson, readStream, v1Envelope } from '@inferrer/core';
import type { ModelImporter } from '../../model-import.ts';

export function importRoutes(importer: ModelImporter): Router {
  const r = Router();
  r.post('/api/v1/models/:name/import', async (req, res) => {
    const type = String(req.headers['content-type'] ?? '');
    if (!type.startsWith('application/json')) throw new InferrerError('UNSUPPORTED_MEDIA_TYPE', `send {"url": "…"} as application/json, not ${JSON.stringify(type || 'no content type')}`, { got: type });
    const length = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
    const body = parseJson(await readStream(req, 64 * 1024, length)) as { url?: unknown; metadata?: unknown };
    if (!body || typeof body !== 'object' || typeof body.url !== 'string') throw new InferrerError('INVALID_REQUEST', 'send {"url": "<STAC item URL>", "metadata": {…}}');
    if (body.metadata !== undefined && (typeof body.metadata !== 'object' || body.metadata === null || Array.isArray(body.metadata))) throw new InferrerError('INVALID_REQUEST', '"metadata" must be an object');
    const result = await importer.import(req.params.name!, { url: body.url, ...(body.metadata ? { metadata: body.metadata as Record<string, unknown> } : {}) });
    const status = result.created ? 201 : 200;
    res.setHeader('location', `/api/v1/models/${result.model.name}`);
    res.status(status).json(v1Envelope(status, { message: `model ${result.model.name} version ${result.version} imported from ${result.source.item}`, version: result.version, source: result.source, model: result.model }));
  });
  return r;
}
