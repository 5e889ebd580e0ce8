/**
 * The OpenAPI 3 document of every public route (FRACTAL v1, Open Inference Protocol v2, management,
 * health), served at /openapi.json, and the interactive page at /docs (Swagger UI from node_modules, no
 * CDN). A test checks that every route the app registers is documented here and nothing else is.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import express, { Router } from 'express';
import { SERVER_VERSION } from './oip-v2/routes.ts';

type Op = Record<string, unknown>;

const json = (schema: unknown) => ({ content: { 'application/json': { schema } } });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const name = { name: 'name', in: 'path', required: true, description: 'Model name (`iris` and `iris.onnx` are the same model)', schema: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$' } };
const model = { ...name, name: 'model' };
const version = { name: 'version', in: 'path', required: true, schema: { type: 'string', pattern: '^[1-9][0-9]*$' } };
const v1Errors = { '400': { description: 'Bad input', ...json(ref('V1Error')) }, '404': { description: 'No such model or route', ...json(ref('V1Error')) } };
const v2Errors = { '400': { description: 'Bad input', ...json(ref('V2Error')) }, '404': { description: 'No such model or version', ...json(ref('V2Error')) }, '503': { description: 'Not ready, unloaded or overloaded (Retry-After)', ...json(ref('V2Error')) } };
const jobId = { name: 'id', in: 'path', required: true, description: 'Job id (from the 202 answer)', schema: { type: 'string', pattern: '^j[a-z0-9]{8,40}$' } };
const ok = (description: string, schema: unknown = ref('V1Envelope')) => ({ '200': { description, ...json(schema) } });

const predictV1: Op = {
  tags: ['FRACTAL v1'],
  summary: 'Predict',
  parameters: [
    name,
    { name: 'outputs', in: 'query', schema: { type: 'string', enum: ['all'] }, description: 'Add every output under `outputs`' },
    { name: 'output', in: 'query', schema: { type: 'string' }, description: 'Answer this output as `values` (default: the first)' },
    { name: 'version', in: 'query', schema: { type: 'integer', minimum: 1 } },
  ],
  responses: { ...ok('Prediction', ref('V1Prediction')), ...v1Errors, '413': { description: 'Body over MAX_BODY_BYTES', ...json(ref('V1Error')) }, '503': { description: 'Overloaded or not ready (Retry-After)', ...json(ref('V1Error')) } },
};

const inferV2: Op = {
  tags: ['Open Inference Protocol v2'],
  summary: 'Infer (JSON, or the binary tensor extension with Inference-Header-Content-Length)',
  parameters: [model, { name: 'Inference-Header-Content-Length', in: 'header', schema: { type: 'integer' }, description: 'Length of the JSON header when binary tensor data follows it' }],
  requestBody: { required: true, content: { 'application/json': { schema: ref('V2InferRequest') }, 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } },
  responses: { '200': { description: 'Outputs', content: { 'application/json': { schema: ref('V2InferResponse') }, 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } }, ...v2Errors },
};

const tensorMeta = { type: 'object', properties: { name: { type: 'string' }, datatype: { type: 'string' }, shape: { type: 'array', items: { type: 'integer' }, description: '-1 for symbolic dims' } } };

export function openApiDocument(): Record<string, unknown> {
  return {
    openapi: '3.0.3',
    info: {
      title: 'Inferrer',
      version: SERVER_VERSION,
      description: 'A model-serving cluster for ONNX models. FRACTAL v1 API, Open Inference Protocol (KServe v2) with the binary tensor extension, and model management.',
    },
    paths: {
      '/': { get: { tags: ['FRACTAL v1'], summary: 'Welcome', responses: ok('Welcome') } },
      '/help': { get: { tags: ['FRACTAL v1'], summary: 'Every route with an example', responses: ok('Routes') } },
      '/health/live': { get: { tags: ['Health'], summary: 'Liveness', responses: ok('Alive', { type: 'object' }) } },
      '/health/ready': { get: { tags: ['Health'], summary: 'Readiness (the load balancer answers)', responses: { ...ok('Ready', { type: 'object' }), '503': { description: 'Not ready' } } } },
      '/metrics': { get: { tags: ['Health'], summary: 'Prometheus metrics', responses: { '200': { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } } } } },
      '/openapi.json': { get: { tags: ['Docs'], summary: 'This document', responses: ok('OpenAPI 3 document', { type: 'object' }) } },
      '/docs': { get: { tags: ['Docs'], summary: 'Interactive API page', responses: { '200': { description: 'HTML', content: { 'text/html': { schema: { type: 'string' } } } } } } },
      '/docs/init.js': { get: { tags: ['Docs'], summary: 'Script of the interactive page', responses: { '200': { description: 'JavaScript', content: { 'application/javascript': { schema: { type: 'string' } } } } } } },
      '/api/v1/metrics': { get: { tags: ['FRACTAL v1'], summary: 'Cluster-wide per-model summary from the metrics service', responses: { ...ok('`stats`'), '503': { description: 'Metrics service unavailable', ...json(ref('V1Error')) } } } },
      '/api/v1/models': { get: { tags: ['FRACTAL v1'], summary: 'Model names', responses: ok('`model_list`', ref('V1ModelList')) } },
      '/api/v1/models/information': { get: { tags: ['FRACTAL v1'], summary: 'Names and descriptions', responses: ok('`models`') } },
      '/api/v1/models/{name}': {
        get: { tags: ['FRACTAL v1'], summary: 'Describe a model', parameters: [name], responses: { ...ok('`model`: description, versions, inputs, outputs, config'), ...v1Errors } },
        post: {
          tags: ['FRACTAL v1'],
          summary: 'Update description, config, labels or default version',
          parameters: [name],
          requestBody: { required: true, ...json(ref('ModelPatch')) },
          responses: { ...ok('Updated'), ...v1Errors },
        },
        put: {
          tags: ['FRACTAL v1'],
          summary: 'Upload a model or a new version of it',
          parameters: [name],
          requestBody: {
            required: true,
            content: {
              'multipart/form-data': { schema: { type: 'object', properties: { path: { type: 'string', format: 'binary', description: 'The ONNX file (FRACTAL name; `file` also works)' }, metadata: { type: 'string', description: 'JSON: description, config, labels' } } } },
              'application/octet-stream': { schema: { type: 'string', format: 'binary' } },
            },
          },
          responses: { '201': { description: 'Created', ...json(ref('V1Envelope')) }, ...ok('New version'), ...v1Errors, '413': { description: 'Over MAX_MODEL_BYTES', ...json(ref('V1Error')) }, '415': { description: 'Wrong content type', ...json(ref('V1Error')) } },
        },
        delete: { tags: ['FRACTAL v1'], summary: 'Delete a model and all its versions', parameters: [name], responses: { ...ok('Deleted'), ...v1Errors } },
      },
      '/api/v1/models/{name}/canary': {
        post: { tags: ['Versions'], summary: 'Send a share of the requests that name no version to a version', parameters: [name], requestBody: { required: true, ...json({ type: 'object', required: ['version', 'percent'], properties: { version: { type: 'integer' }, percent: { type: 'number', minimum: 0, maximum: 100 } } }) }, responses: { ...ok('Split set'), ...v1Errors } },
      },
      '/api/v1/models/{name}/promote': {
        post: { tags: ['Versions'], summary: 'Make the canary (or the given version) the default and clear the split', parameters: [name], requestBody: { required: false, ...json({ type: 'object', properties: { version: { type: 'integer' } } }) }, responses: { ...ok('Promoted'), ...v1Errors } },
      },
      '/api/v1/models/{name}/drift': {
        get: { tags: ['Drift'], summary: 'Drift scores per version and feature over the sliding window: PSI, z-score, status ok/warning/drift/too_few_samples, samples (from the metrics service)', parameters: [name], responses: { ...ok('`drift`: one entry per profiled version with `features`'), ...v1Errors, '503': { description: 'Metrics service unavailable', ...json(ref('V1Error')) } } },
      },
      '/api/v1/models/{name}/versions/{version}/profile': {
        get: { tags: ['Drift'], summary: "A version's drift reference profile (per feature: count, mean, std, bin edges and counts)", parameters: [name, version], responses: { ...ok('`profile`'), ...v1Errors } },
        put: {
          tags: ['Drift'],
          summary: 'Attach a reference profile to a version: a profile object, or sample rows to compute one from (admin)',
          parameters: [name, version],
          requestBody: {
            required: true,
            content: {
              'application/json': { schema: { oneOf: [{ type: 'object', required: ['inputs'], properties: { inputs: { type: 'array', items: { type: 'object' } }, outputs: { type: 'array', items: { type: 'object' } } } }, { type: 'array', items: { type: 'array', items: { type: 'number' } } }] } },
              'application/x-ndjson': { schema: { type: 'string', description: 'One JSON array of numbers per line' } },
              'text/csv': { schema: { type: 'string', description: 'One row of numbers per line; a header line is skipped' } },
            },
          },
          responses: { ...ok('Stored'), ...v1Errors },
        },
      },
      '/api/v1/models/{name}/profile/capture': {
        post: { tags: ['Drift'], summary: 'Capture a reference profile from the next N live rows of a version (admin)', parameters: [name], requestBody: { required: true, ...json({ type: 'object', required: ['samples'], properties: { samples: { type: 'integer', minimum: 1 }, version: { type: 'integer', minimum: 1 } } }) }, responses: { '202': { description: 'Capture started', ...json(ref('V1Envelope')) }, ...v1Errors } },
        get: { tags: ['Drift'], summary: 'Progress of a capture (writes the profile once the workers have enough rows)', parameters: [name], responses: { ...ok('`capture`, `collected`, `done`'), ...v1Errors } },
      },
      '/api/v1/models/{name}/rollback': { post: { tags: ['Versions'], summary: 'Send all traffic back to the default version', parameters: [name], responses: { ...ok('Rolled back'), ...v1Errors } } },
      '/api/v1/models/{name}/prediction': {
        get: { ...predictV1, summary: 'Predict (body, or ?values=[…])', parameters: [...(predictV1.parameters as unknown[]), { name: 'values', in: 'query', schema: { type: 'string' }, description: 'JSON values when there is no body' }] },
        post: {
          ...predictV1,
          description: 'JSON values, or images as multipart files (JPEG, PNG, WebP, TIFF; several files = a batch): the model\'s STAC MLM item (or its graph) says how to resize and normalise them, and answers carry labels (classification, `?top_k=`) or boxes (detection). See docs/images.md.',
          parameters: [
            ...(predictV1.parameters as unknown[]),
            { name: 'top_k', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 5 }, description: 'Images, classification: classes per image' },
            { name: 'raw', in: 'query', schema: { type: 'boolean' }, description: 'Images: add every raw output tensor under `outputs`' },
            { name: 'score_threshold', in: 'query', schema: { type: 'number', minimum: 0, maximum: 1 }, description: 'Images, detection: lowest score kept' },
            { name: 'iou_threshold', in: 'query', schema: { type: 'number', minimum: 0, maximum: 1 }, description: 'Images, detection: NMS overlap threshold' },
          ],
          requestBody: {
            required: true,
            content: {
              ...json(ref('V1PredictRequest')).content,
              'multipart/form-data': { schema: { type: 'object', properties: { file: { type: 'array', items: { type: 'string', format: 'binary' }, description: 'One or more images' } } } },
            },
          },
          responses: { ...(predictV1.responses as Record<string, unknown>), '200': { description: 'Prediction (values; or data, predictions and uid for images)', ...json(ref('V1Prediction')) }, '415': { description: 'Not JSON or multipart', ...json(ref('V1Error')) } },
        },
      },
      '/api/v1/models/{name}/import': {
        post: {
          tags: ['FRACTAL v1'],
          summary: 'Import a model by the URL of its STAC MLM item (EOTDL); off unless MODEL_IMPORT_ENABLED, allow-listed hosts only',
          parameters: [name],
          requestBody: { required: true, ...json({ type: 'object', required: ['url'], properties: { url: { type: 'string', format: 'uri' }, metadata: { type: 'object' } } }) },
          responses: {
            '201': { description: 'Created', ...json(ref('V1Envelope')) },
            ...ok('New version'),
            ...v1Errors,
            '403': { description: 'Import off, or host not allowed', ...json(ref('V1Error')) },
            '413': { description: 'Asset over MAX_MODEL_BYTES', ...json(ref('V1Error')) },
            '502': { description: 'The item or asset could not be fetched', ...json(ref('V1Error')) },
          },
        },
      },
      '/api/v1/models/{name}/jobs': {
        post: {
          tags: ['Batch jobs'],
          summary: 'Submit a batch job: NDJSON or CSV rows, or a zip/tar of images (streamed to disk); see docs/jobs.md',
          parameters: [
            name,
            { name: 'version', in: 'query', schema: { type: 'integer', minimum: 1 }, description: 'Pin a model version' },
            { name: 'format', in: 'query', schema: { type: 'string', enum: ['ndjson', 'csv', 'zip', 'tar'] }, description: 'Override the Content-Type (else sniffed)' },
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
      },
      '/api/v1/jobs': {
        get: {
          tags: ['Batch jobs'],
          summary: 'Every job (newest last)',
          parameters: [
            { name: 'model', in: 'query', schema: { type: 'string' } },
            { name: 'state', in: 'query', schema: { type: 'string', enum: ['RECEIVING', 'QUEUED', 'RUNNING', 'SUCCEEDED', 'PARTIAL', 'FAILED', 'CANCELLED'] } },
          ],
          responses: ok('`jobs`', { type: 'object', properties: { http_status: ref('HttpStatus'), jobs: { type: 'array', items: ref('JobStatus') } } }),
        },
      },
      '/api/v1/jobs/{id}': {
        get: { tags: ['Batch jobs'], summary: 'State, items done/failed/total, rate, ETA', parameters: [jobId], responses: { ...ok('`job`', ref('V1Job')), ...v1Errors } },
        delete: {
          tags: ['Batch jobs'],
          summary: 'Cancel (results so far are kept); ?purge=true removes a finished job and its files',
          parameters: [jobId, { name: 'purge', in: 'query', schema: { type: 'boolean' } }],
          responses: { ...ok('`job`', ref('V1Job')), ...v1Errors },
        },
      },
      '/api/v1/jobs/{id}/results': {
        get: {
          tags: ['Batch jobs'],
          summary: 'Results as NDJSON in input order (while running: the finished prefix; X-Job-Complete says which)',
          parameters: [jobId],
          responses: {
            '200': {
              description: 'One line per item: {"index", "line" or "file", "model_version", "outputs"} or {"index", "line" or "file", "error": {"code", "message"}}',
              content: { 'application/x-ndjson': { schema: { type: 'string' }, example: '{"index":0,"line":1,"model_version":1,"outputs":{"label":0,"probabilities":[0.98,0.02,0]}}\n' } },
            },
            ...v1Errors,
          },
        },
      },
      '/api/test/sendtomodelhost': {
        post: { tags: ['FRACTAL v1'], summary: 'Which modelhost answers each item', requestBody: { required: true, ...json({ type: 'object', properties: { data: { type: 'array', items: { type: 'string' } } } }) }, responses: ok('`results`') },
      },
      '/v2': { get: { tags: ['Open Inference Protocol v2'], summary: 'Server metadata', responses: ok('name, version, extensions', { type: 'object' }) } },
      '/v2/health/live': { get: { tags: ['Open Inference Protocol v2'], summary: 'Server live', responses: ok('Live', { type: 'object' }) } },
      '/v2/health/ready': { get: { tags: ['Open Inference Protocol v2'], summary: 'Server ready', responses: { ...ok('Ready', { type: 'object' }), '503': { description: 'Not ready' } } } },
      '/v2/models/{model}': { get: { tags: ['Open Inference Protocol v2'], summary: 'Model metadata', parameters: [model], responses: { ...ok('Metadata', ref('V2ModelMetadata')), ...v2Errors } } },
      '/v2/models/{model}/versions/{version}': { get: { tags: ['Open Inference Protocol v2'], summary: 'Model version metadata', parameters: [model, version], responses: { ...ok('Metadata', ref('V2ModelMetadata')), ...v2Errors } } },
      '/v2/models/{model}/ready': { get: { tags: ['Open Inference Protocol v2'], summary: 'Model ready', parameters: [model], responses: { ...ok('Ready', { type: 'object' }), ...v2Errors } } },
      '/v2/models/{model}/versions/{version}/ready': { get: { tags: ['Open Inference Protocol v2'], summary: 'Model version ready', parameters: [model, version], responses: { ...ok('Ready', { type: 'object' }), ...v2Errors } } },
      '/v2/models/{model}/infer': { post: inferV2 },
      '/v2/models/{model}/versions/{version}/infer': { post: { ...inferV2, parameters: [model, version, ...(inferV2.parameters as unknown[]).slice(1)] } },
      '/v2/repository/index': { post: { tags: ['Model repository (v2)'], summary: 'Models and their state', responses: ok('Index', { type: 'array', items: { type: 'object' } }) } },
      '/v2/repository/models/{model}/load': { post: { tags: ['Model repository (v2)'], summary: 'Load (and warm) on every worker', parameters: [model], responses: { ...ok('Loaded', { type: 'object' }), ...v2Errors } } },
      '/v2/repository/models/{model}/unload': { post: { tags: ['Model repository (v2)'], summary: 'Unload from every worker', parameters: [model], responses: { ...ok('Unloaded', { type: 'object' }), ...v2Errors } } },
    },
    components: {
      schemas: {
        HttpStatus: { type: 'object', properties: { code: { type: 'integer' }, description: { type: 'string' }, name: { type: 'string' } } },
        V1Envelope: { type: 'object', properties: { http_status: ref('HttpStatus') }, additionalProperties: true },
        V1Error: {
          type: 'object',
          properties: { http_status: ref('HttpStatus'), error: { type: 'object', properties: { code: { type: 'string', description: 'See docs/errors.md' }, message: { type: 'string' }, details: { type: 'object' } } } },
        },
        V1ModelList: { type: 'object', properties: { http_status: ref('HttpStatus'), model_list: { type: 'array', items: { type: 'string' } } } },
        V1PredictRequest: {
          type: 'object',
          required: ['values'],
          properties: { values: { description: 'One row, a list of rows, or an object keyed by input name', oneOf: [{ type: 'array', items: {} }, { type: 'object' }] } },
          example: { values: [2, 5, 1, 4] },
        },
        V1Prediction: {
          type: 'object',
          properties: { http_status: ref('HttpStatus'), model_name: { type: 'string' }, model_version: { type: 'integer' }, values: { type: 'array', items: {} }, outputs: { type: 'object' } },
          example: { http_status: { code: 200, description: 'Request fulfilled, document follows', name: 'OK' }, model_name: 'iris', model_version: 1, values: [1] },
        },
        JobStatus: {
          type: 'object',
          properties: {
            id: { type: 'string' },
            model: { type: 'string' },
            version: { type: 'integer', nullable: true },
            state: { type: 'string', enum: ['RECEIVING', 'QUEUED', 'RUNNING', 'SUCCEEDED', 'PARTIAL', 'FAILED', 'CANCELLED'] },
            format: { type: 'string', enum: ['ndjson', 'csv', 'zip', 'tar'] },
            items: { type: 'object', properties: { total: { type: 'integer' }, done: { type: 'integer' }, succeeded: { type: 'integer' }, failed: { type: 'integer' } } },
            rate: { type: 'number', nullable: true, description: 'Items per second since the job started' },
            eta_s: { type: 'number', nullable: true },
            created_at: { type: 'string', format: 'date-time' },
            started_at: { type: 'string', format: 'date-time', nullable: true },
            finished_at: { type: 'string', format: 'date-time', nullable: true },
            error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } } },
            results: { type: 'string', description: 'Path of the results' },
          },
        },
        V1Job: { type: 'object', properties: { http_status: ref('HttpStatus'), job: ref('JobStatus') } },
        ModelPatch: {
          type: 'object',
          properties: { model_description: { type: 'string' }, description: { type: 'string' }, config: { type: 'object' }, labels: { type: 'array', items: { type: 'string' } }, default_version: { type: 'integer' }, enabled: { type: 'boolean' } },
        },
        V2Tensor: {
          type: 'object',
          required: ['name', 'shape', 'datatype'],
          properties: {
            name: { type: 'string' },
            shape: { type: 'array', items: { type: 'integer' } },
            datatype: { type: 'string', enum: ['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BYTES'] },
            data: { type: 'array', items: {}, description: 'Flat or nested, row-major. Non-finite floats as "NaN"/"Infinity"/"-Infinity" (bare tokens accepted); 64-bit integers exact.' },
            parameters: { type: 'object', properties: { binary_data_size: { type: 'integer' } } },
          },
        },
        V2InferRequest: {
          type: 'object',
          required: ['inputs'],
          properties: {
            id: { type: 'string' },
            parameters: { type: 'object', properties: { binary_data_output: { type: 'boolean' } } },
            inputs: { type: 'array', items: ref('V2Tensor') },
            outputs: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' }, parameters: { type: 'object', properties: { binary_data: { type: 'boolean' } } } } } },
          },
          example: { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [6.7, 2.5, 5.8, 1.8] }] },
        },
        V2InferResponse: { type: 'object', properties: { model_name: { type: 'string' }, model_version: { type: 'string' }, id: { type: 'string' }, outputs: { type: 'array', items: ref('V2Tensor') } } },
        V2ModelMetadata: {
          type: 'object',
          properties: { name: { type: 'string' }, versions: { type: 'array', items: { type: 'string' } }, platform: { type: 'string' }, inputs: { type: 'array', items: tensorMeta }, outputs: { type: 'array', items: tensorMeta } },
        },
        V2Error: { type: 'object', properties: { error: { type: 'string' }, code: { type: 'string' }, details: { type: 'object' } } },
      },
    },
  };
}

const DOCS_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Inferrer API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body></html>`;

const DOCS_INIT = `window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#ui', deepLinking: true });`;

export function docsRoutes(): Router {
  const r = Router();
  const doc = JSON.stringify(openApiDocument());
  const assets = path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
  r.get('/openapi.json', (_req, res) => void res.type('application/json').send(doc));
  r.get('/docs', (_req, res) => void res.type('html').send(DOCS_PAGE));
  r.get('/docs/init.js', (_req, res) => void res.type('application/javascript').send(DOCS_INIT));
  r.use('/docs/assets', express.static(assets, { index: false, fallthrough: false }));
  return r;
}
