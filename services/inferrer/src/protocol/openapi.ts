/**
 * The OpenAPI 3 document, built from the route table (each route's summary, scope and operation object),
 * served at /openapi.json, and the interactive page at /docs (Swagger UI from node_modules, no CDN).
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import express from 'express';
import type { ExpressRoute, Route } from '../http/route.ts';
import { SERVER_VERSION } from './oip-v2/service.ts';
import { TAGS, ref, tensorMeta } from './openapi-parts.ts';

/** The route template in OpenAPI's spelling: `/api/v1/models/{name}`. */
export const openApiPath = (p: string): string => p.replace(/:([A-Za-z_]+)/g, '{$1}');

export function openApiDocument(routes: readonly Route[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const op: Record<string, unknown> = { summary: r.summary, ...(r.openapi ?? {}) };
    if (r.scope !== 'public') op.security = [{ apiKey: [] }];
    if (r.scope === 'admin') op.description = [op.description, 'Needs an API key with the `admin` scope.'].filter(Boolean).join(' ');
    (paths[openApiPath(r.path)] ??= {})[r.method.toLowerCase()] = op;
  }
  return {
    openapi: '3.0.3',
    info: {
      title: 'Inferrer',
      version: SERVER_VERSION,
      description:
        'A model-serving cluster for ONNX models. FRACTAL v1 API, Open Inference Protocol (KServe v2) with the binary tensor extension, and model management.',
    },
    tags: Object.values(TAGS).map((name) => ({ name })),
    paths,
    components: {
      securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'An API key from API_KEYS_FILE: `Authorization: Bearer <key>`' } },
      schemas: {
        HttpStatus: { type: 'object', properties: { code: { type: 'integer' }, description: { type: 'string' }, name: { type: 'string' } } },
        V1Envelope: { type: 'object', properties: { http_status: ref('HttpStatus') }, additionalProperties: true },
        V1Error: {
          type: 'object',
          properties: {
            http_status: ref('HttpStatus'),
            error: {
              type: 'object',
              properties: { code: { type: 'string', description: 'See docs/errors.md' }, message: { type: 'string' }, details: { type: 'object' } },
            },
          },
        },
        V1ModelList: { type: 'object', properties: { http_status: ref('HttpStatus'), model_list: { type: 'array', items: { type: 'string' } } } },
        V1PredictRequest: {
          type: 'object',
          required: ['values'],
          properties: {
            values: { description: 'One row, a list of rows, or an object keyed by input name', oneOf: [{ type: 'array', items: {} }, { type: 'object' }] },
          },
          example: { values: [2, 5, 1, 4] },
        },
        V1Prediction: {
          type: 'object',
          properties: {
            http_status: ref('HttpStatus'),
            model_name: { type: 'string' },
            model_version: { type: 'integer' },
            values: { type: 'array', items: {} },
            outputs: { type: 'object' },
          },
          example: {
            http_status: { code: 200, description: 'Request fulfilled, document follows', name: 'OK' },
            model_name: 'iris',
            model_version: 1,
            values: [1],
          },
        },
        JobStatus: {
          type: 'object',
          properties: {
            id: { type: 'string' },
            model: { type: 'string' },
            version: { type: 'integer', nullable: true },
            state: { type: 'string', enum: ['RECEIVING', 'QUEUED', 'RUNNING', 'SUCCEEDED', 'PARTIAL', 'FAILED', 'CANCELLED'] },
            format: { type: 'string', enum: ['ndjson', 'csv', 'zip', 'tar'] },
            items: {
              type: 'object',
              properties: { total: { type: 'integer' }, done: { type: 'integer' }, succeeded: { type: 'integer' }, failed: { type: 'integer' } },
            },
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
          properties: {
            model_description: { type: 'string' },
            description: { type: 'string' },
            config: { type: 'object' },
            labels: { type: 'array', items: { type: 'string' } },
            default_version: { type: 'integer' },
            enabled: { type: 'boolean' },
          },
        },
        V2Tensor: {
          type: 'object',
          required: ['name', 'shape', 'datatype'],
          properties: {
            name: { type: 'string' },
            shape: { type: 'array', items: { type: 'integer' } },
            datatype: {
              type: 'string',
              enum: ['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BYTES'],
            },
            data: {
              type: 'array',
              items: {},
              description: 'Flat or nested, row-major. Non-finite floats as "NaN"/"Infinity"/"-Infinity" (bare tokens accepted); 64-bit integers exact.',
            },
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
            outputs: {
              type: 'array',
              items: {
                type: 'object',
                properties: { name: { type: 'string' }, parameters: { type: 'object', properties: { binary_data: { type: 'boolean' } } } },
              },
            },
          },
          example: { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [6.7, 2.5, 5.8, 1.8] }] },
        },
        V2InferResponse: {
          type: 'object',
          properties: {
            model_name: { type: 'string' },
            model_version: { type: 'string' },
            id: { type: 'string' },
            outputs: { type: 'array', items: ref('V2Tensor') },
          },
        },
        V2ModelMetadata: {
          type: 'object',
          properties: {
            name: { type: 'string' },
            versions: { type: 'array', items: { type: 'string' } },
            platform: { type: 'string' },
            inputs: { type: 'array', items: tensorMeta },
            outputs: { type: 'array', items: tensorMeta },
          },
        },
        V2ModelConfig: {
          type: 'object',
          description: "Triton's model configuration (model_config.proto) as JSON",
          properties: {
            name: { type: 'string' },
            platform: { type: 'string' },
            backend: { type: 'string' },
            max_batch_size: { type: 'integer', description: '> 0: the first dim of every input and output is the batch dim, left out of dims' },
            input: { type: 'array', items: { type: 'object' } },
            output: { type: 'array', items: { type: 'object' } },
            dynamic_batching: { type: 'object' },
            instance_group: { type: 'array', items: { type: 'object' } },
            model_transaction_policy: { type: 'object' },
            response_cache: { type: 'object' },
          },
        },
        V2RepositoryLoad: {
          type: 'object',
          properties: {
            parameters: {
              type: 'object',
              properties: {
                config: { type: 'string', description: "Triton's model configuration as JSON: max_batch_size, dynamic_batching, instance_group are applied" },
              },
              additionalProperties: {
                type: 'string',
                description: '"file:<version>/model.onnx": the ONNX file in base64; it becomes the next version, as a PUT upload',
              },
            },
          },
          example: { parameters: { 'file:1/model.onnx': '<base64>' } },
        },
        V2ModelStats: {
          type: 'object',
          properties: {
            model_stats: {
              type: 'array',
              items: {
                type: 'object',
                properties: {
                  name: { type: 'string' },
                  version: { type: 'string' },
                  last_inference: { type: 'integer', description: 'ms since the epoch' },
                  inference_count: { type: 'integer' },
                  execution_count: { type: 'integer' },
                  inference_stats: {
                    type: 'object',
                    description: 'success, fail, queue, compute_input, compute_infer, compute_output, cache_hit, cache_miss: {count, ns}',
                  },
                  batch_stats: { type: 'array', items: { type: 'object' } },
                },
              },
            },
          },
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

/** The Swagger UI files the page loads; nothing else under /docs/assets is served. */
const ASSETS = new Map([
  ['swagger-ui.css', 'text/css'],
  ['swagger-ui-bundle.js', 'application/javascript'],
]);

export function docsRoutes(routes: () => readonly Route[]): ExpressRoute[] {
  let doc: string | undefined;
  const assets = path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
  const serveStatic = express.static(assets, { index: false, fallthrough: false });
  const base = { method: 'GET', scope: 'public', protocol: 'plain' } as const;
  const tags = [TAGS.docs];
  const html = (type: string) => ({ '200': { description: type, content: { [type]: { schema: { type: 'string' } } } } });
  return [
    {
      ...base,
      path: '/openapi.json',
      summary: 'This document',
      openapi: { tags, responses: { '200': { description: 'OpenAPI 3 document', content: { 'application/json': { schema: { type: 'object' } } } } } },
      handle: (_req, res) => void res.type('application/json').send((doc ??= JSON.stringify(openApiDocument(routes())))),
    },
    {
      ...base,
      path: '/docs',
      summary: 'Interactive API page',
      openapi: { tags, responses: html('text/html') },
      handle: (_req, res) => void res.type('html').send(DOCS_PAGE),
    },
    {
      ...base,
      path: '/docs/init.js',
      summary: 'Script of the interactive page',
      openapi: { tags, responses: html('application/javascript') },
      handle: (_req, res) => void res.type('application/javascript').send(DOCS_INIT),
    },
    {
      ...base,
      path: '/docs/assets/:file',
      summary: 'Swagger UI files of the interactive page',
      openapi: {
        tags,
        parameters: [{ name: 'file', in: 'path', required: true, schema: { type: 'string', enum: [...ASSETS.keys()] } }],
        responses: { ...html('text/css'), '404': { description: 'No such file' } },
      },
      handle: (req, res, next) => {
        const file = req.params.file!;
        if (!ASSETS.has(file)) return next();
        req.url = `/${file}`;
        serveStatic(req, res, next);
      },
    },
  ];
}
