/**
 * FRACTAL v1 (compatible with the FRACTAL ML Server): management and help routes. Every answer is wrapped
 * in {"http_status": {"code", "description", "name"}, …}. The prediction route itself takes the lean path
 * in app.ts (streamed to the load balancer); it is listed here for /help.
 */
import { Router, type Request, type Response } from 'express';
import { InferrerError, parseJson, readStream, v1Envelope } from '@inferrer/core';
import type { InferrerConfig } from '../../config.ts';
import type { DataPlane } from '../../dataplane.ts';
import type { Management } from '../../management.ts';
import { receiveUpload } from '../uploads.ts';

export interface RouteDoc {
  method: string;
  path: string;
  description: string;
  example: string;
}

export function v1RouteDocs(base: string): RouteDoc[] {
  return [
    { method: 'GET', path: '/', description: 'Welcome message', example: `curl ${base}/` },
    { method: 'GET', path: '/help', description: 'This list of routes', example: `curl ${base}/help` },
    { method: 'GET', path: '/api/v1/models', description: 'Names of all models', example: `curl ${base}/api/v1/models` },
    { method: 'GET', path: '/api/v1/models/information', description: 'Names and descriptions of all models', example: `curl ${base}/api/v1/models/information` },
    { method: 'GET', path: '/api/v1/models/{name}', description: 'One model: description, versions, inputs/outputs, batching config', example: `curl ${base}/api/v1/models/iris` },
    { method: 'POST', path: '/api/v1/models/{name}', description: 'Update the description (or config, labels, default_version)', example: `curl -X POST ${base}/api/v1/models/iris -H 'Content-Type: application/json' -d '{"model_description": "Iris species classifier"}'` },
    { method: 'PUT', path: '/api/v1/models/{name}', description: 'Upload a model, or a new version of it (multipart field "path" or "file"; optional JSON field "metadata")', example: `curl -X PUT ${base}/api/v1/models/iris -F path=@iris.onnx -F 'metadata={"description":"Iris classifier"}'` },
    { method: 'POST', path: '/api/v1/models/{name}/canary', description: 'Send a share of traffic to a version (canary)', example: `curl -X POST ${base}/api/v1/models/iris/canary -H 'Content-Type: application/json' -d '{"version": 2, "percent": 10}'` },
    { method: 'POST', path: '/api/v1/models/{name}/promote', description: 'Make the canary the default version and clear the split', example: `curl -X POST ${base}/api/v1/models/iris/promote` },
    { method: 'POST', path: '/api/v1/models/{name}/rollback', description: 'Send all traffic back to the default version', example: `curl -X POST ${base}/api/v1/models/iris/rollback` },
    { method: 'DELETE', path: '/api/v1/models/{name}', description: 'Delete a model and all its versions', example: `curl -X DELETE ${base}/api/v1/models/iris` },
    { method: 'POST', path: '/api/v1/models/{name}/prediction', description: 'Predict: {"values": [...]} (one row) or a list of rows; ?outputs=all for every output, ?version=N', example: `curl -X POST ${base}/api/v1/models/iris/prediction -H 'Content-Type: application/json' -d '{"values": [2, 5, 1, 4]}'` },
    { method: 'POST', path: '/api/v1/models/{name}/prediction', description: 'Predict on images: multipart files (several = a batch); ?top_k=5, ?raw=true; labels or boxes as the model\'s STAC MLM item says', example: `curl -X POST '${base}/api/v1/models/digits/prediction?top_k=3' -F file=@digit.png` },
    { method: 'POST', path: '/api/v1/models/{name}/import', description: 'Import a model by the URL of its STAC MLM item (EOTDL); off unless MODEL_IMPORT_ENABLED', example: `curl -X POST ${base}/api/v1/models/mymodel/import -H 'Content-Type: application/json' -d '{"url": "https://api.eotdl.com/…/item.json"}'` },
    { method: 'GET', path: '/api/v1/models/{name}/prediction', description: 'Predict with the body or ?values=[...]', example: `curl -G ${base}/api/v1/models/iris/prediction --data-urlencode 'values=[2,5,1,4]'` },
    { method: 'GET', path: '/api/v1/models/{name}/drift', description: 'Drift scores per feature (PSI, z-score, ok/warning/drift) over the sliding window, all workers', example: `curl ${base}/api/v1/models/iris/drift` },
    { method: 'PUT', path: '/api/v1/models/{name}/versions/{version}/profile', description: 'Attach a drift reference profile, or sample rows (JSON array, NDJSON, CSV) to compute one from', example: `curl -X PUT ${base}/api/v1/models/iris/versions/1/profile -H 'Content-Type: text/csv' --data-binary @iris.csv` },
    { method: 'POST', path: '/api/v1/models/{name}/profile/capture', description: 'Capture a reference profile from the next N live rows', example: `curl -X POST ${base}/api/v1/models/iris/profile/capture -H 'Content-Type: application/json' -d '{"samples": 1000}'` },
    { method: 'POST', path: '/api/test/sendtomodelhost', description: 'Which modelhost answers each item (shows the load balancing)', example: `curl -X POST ${base}/api/test/sendtomodelhost -H 'Content-Type: application/json' -d '{"data": ["ONE", "TWO", "THREE"]}'` },
    { method: 'GET', path: '/health/live', description: 'Liveness', example: `curl ${base}/health/live` },
    { method: 'GET', path: '/health/ready', description: 'Readiness (the load balancer answers)', example: `curl ${base}/health/ready` },
    { method: 'GET', path: '/metrics', description: 'Prometheus metrics of the Inferrer', example: `curl ${base}/metrics` },
    { method: 'GET', path: '/api/v1/metrics', description: 'Per-model summary across the cluster: requests/s, error rate, p50/p95/p99, mean batch size, queue depth, workers (from the metrics service)', example: `curl ${base}/api/v1/metrics` },
  ];
}

export interface V1Deps {
  config: InferrerConfig;
  management: Management;
  dataplane: DataPlane;
  publicUrl: (req: Request) => string;
}

const MAX_SENDTOMODELHOST_ITEMS = 1000;

export function fractalV1Routes(deps: V1Deps): Router {
  const { management, config, dataplane } = deps;
  const r = Router();
  const ok = (res: Response, status: number, fields: Record<string, unknown>): void => void res.status(status).json(v1Envelope(status, fields));
  const jsonBody = async (req: Request): Promise<unknown> => {
    const length = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
    return parseJson(await readStream(req, Math.min(config.maxBodyBytes, 1024 * 1024), length));
  };

  r.get('/', (req, res) => ok(res, 200, { message: 'Welcome to Inferrer, a model-serving cluster for ONNX models. GET /help lists the routes.', help: `${deps.publicUrl(req)}/help` }));
  r.get('/help', (req, res) => ok(res, 200, { routes: v1RouteDocs(deps.publicUrl(req)) }));
  r.get('/api/v1/models', async (_req, res) => ok(res, 200, { model_list: await management.list() }));
  r.get('/api/v1/models/information', async (_req, res) => ok(res, 200, { models: await management.information() }));
  r.get('/api/v1/models/:name', async (req, res) => ok(res, 200, { model: await management.describe(req.params.name!) }));
  r.post('/api/v1/models/:name', async (req, res) => {
    const body = await jsonBody(req);
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw new InferrerError('INVALID_REQUEST', 'the body must be a JSON object like {"model_description": "…"}');
    ok(res, 200, { model: await management.update(req.params.name!, body) });
  });
  r.put('/api/v1/models/:name', async (req, res) => {
    const upload = await receiveUpload(req, res, management, req.params.name!, config.maxModelBytes);
    const result = await management.upload(req.params.name!, upload.file, upload.metadata);
    const status = result.created ? 201 : 200;
    res.setHeader('location', `/api/v1/models/${result.model.name}`);
    ok(res, status, { message: `model ${result.model.name} version ${result.version} uploaded`, version: result.version, model: result.model });
  });
  r.post('/api/v1/models/:name/canary', async (req, res) => ok(res, 200, { model: await management.canary(req.params.name!, await jsonBody(req)) }));
  r.post('/api/v1/models/:name/promote', async (req, res) => {
    const length = Number(req.headers['content-length'] ?? 0);
    ok(res, 200, { model: await management.promote(req.params.name!, length > 0 ? await jsonBody(req) : {}) });
  });
  r.post('/api/v1/models/:name/rollback', async (req, res) => ok(res, 200, { model: await management.rollback(req.params.name!) }));
  r.delete('/api/v1/models/:name', async (req, res) => {
    await management.remove(req.params.name!);
    ok(res, 200, { message: `model ${req.params.name} deleted` });
  });
  r.post('/api/test/sendtomodelhost', async (req, res) => {
    const body = (await jsonBody(req)) as { data?: unknown };
    if (!body || !Array.isArray(body.data) || body.data.length === 0) throw new InferrerError('INVALID_REQUEST', 'send {"data": ["ONE", "TWO", …]}');
    if (body.data.length > MAX_SENDTOMODELHOST_ITEMS) throw new InferrerError('INVALID_REQUEST', `at most ${MAX_SENDTOMODELHOST_ITEMS} items`, { limit: MAX_SENDTOMODELHOST_ITEMS });
    const reqId = res.getHeader('x-request-id') as string;
    const items = body.data.map((d) => String(d).slice(0, 256));
    const answers = await Promise.all(items.map((d) => dataplane.whoAnswers(d, reqId)));
    ok(res, 200, { results: items.map((d, i) => ({ data: d, modelhost: answers[i] })) });
  });
  return r;
}
