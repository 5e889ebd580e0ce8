/**
 * FRACTAL v1 prediction, GET or POST `/api/v1/models/{name}/prediction`: `{"values": …}` as the body (or
 * `?values=[…]` without one), or images as multipart files. Served on the lean path: the body is received
 * whole, then sent to a modelhost untouched, and its answer is relayed back; the modelhost decodes and encodes.
 */
import type { IncomingMessage } from 'node:http';
import { InferrerError, MAX_JSON_DEPTH, parseInferenceJson, parseModelName } from '@inferrer/core';
import type { InferrerConfig } from '../../config.ts';
import type { DataPlane } from '../../dataplane.ts';
import type { Operation, StreamCall, StreamRoute } from '../../http/route.ts';
import type { UpstreamResponse } from '../../upstream.ts';
import { TAGS, json, nameParam, ref, v1Errors } from '../openapi-parts.ts';
import { hasBody, isMultipart, wholeBody } from '../request-body.ts';

export interface PredictDeps {
  config: InferrerConfig;
  dataplane: DataPlane;
}

const PATH = '/api/v1/models/:name/prediction';

const queryParams = [
  { name: 'outputs', in: 'query', schema: { type: 'string', enum: ['all'] }, description: 'Add every output under `outputs`' },
  { name: 'output', in: 'query', schema: { type: 'string' }, description: 'Answer this output as `values` (default: the first)' },
  { name: 'version', in: 'query', schema: { type: 'integer', minimum: 1 } },
  { name: 'top_k', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 5 }, description: 'Images, classification: classes per image' },
  { name: 'raw', in: 'query', schema: { type: 'boolean' }, description: 'Images: add every raw output tensor under `outputs`' },
  { name: 'score_threshold', in: 'query', schema: { type: 'number', minimum: 0, maximum: 1 }, description: 'Images, detection: lowest score kept' },
  { name: 'iou_threshold', in: 'query', schema: { type: 'number', minimum: 0, maximum: 1 }, description: 'Images, detection: NMS overlap threshold' },
];

const operation = (extra: unknown[]): Operation => ({
  tags: [TAGS.v1],
  description:
    "JSON values, or images as multipart files (JPEG, PNG, WebP, TIFF; several files = a batch): the model's STAC MLM item (or its graph) says how to resize and normalise them, and answers carry labels (classification, `?top_k=`) or boxes (detection). See docs/images.md.",
  parameters: [nameParam, ...queryParams, ...extra],
  requestBody: {
    required: false,
    content: {
      ...json(ref('V1PredictRequest')).content,
      'multipart/form-data': {
        schema: { type: 'object', properties: { file: { type: 'array', items: { type: 'string', format: 'binary' }, description: 'One or more images' } } },
      },
    },
  },
  responses: {
    '200': { description: 'Prediction (values; or data, predictions and uid for images)', ...json(ref('V1Prediction')) },
    ...v1Errors,
    '413': { description: 'Body over MAX_BODY_BYTES', ...json(ref('V1Error')) },
    '415': { description: 'Not JSON or multipart', ...json(ref('V1Error')) },
    '503': { description: 'Overloaded or not ready (Retry-After)', ...json(ref('V1Error')) },
  },
});

export function v1PredictRoutes({ config, dataplane }: PredictDeps): StreamRoute[] {
  const stream = async (req: IncomingMessage, call: StreamCall): Promise<UpstreamResponse> => {
    const q = call.query === '' ? NO_QUERY : new URLSearchParams(call.query);
    parseModelName(call.params.name); // before a large body is read for nothing
    if (isMultipart(req)) {
      const body = await wholeBody(req, config.maxBodyBytes);
      return dataplane.predictImages(call.params.name!, q, {
        reqId: call.reqId,
        body: body.chunks,
        contentLength: body.length,
        contentType: String(req.headers['content-type']),
        deadline: call.deadline,
        signal: call.signal,
      });
    }
    if (hasBody(req)) {
      const body = await wholeBody(req, config.maxBodyBytes);
      return dataplane.predictV1(call.params.name!, q, {
        reqId: call.reqId,
        body: body.chunks,
        contentLength: body.length,
        contentType: 'application/json',
        deadline: call.deadline,
        signal: call.signal,
      });
    }
    const body = `{"values":${valuesQuery(q)}}`;
    return dataplane.predictV1(call.params.name!, q, {
      reqId: call.reqId,
      body,
      contentLength: Buffer.byteLength(body),
      contentType: 'application/json',
      deadline: call.deadline,
      signal: call.signal,
    });
  };
  return [
    {
      method: 'POST',
      path: PATH,
      scope: 'predict',
      protocol: 'v1',
      summary: 'Predict: {"values": [...]} (one row) or a list of rows, or images as multipart files; ?outputs=all for every output, ?version=N',
      example: `curl -X POST $B/api/v1/models/iris/prediction -H 'Content-Type: application/json' -d '{"values": [2, 5, 1, 4]}'`,
      openapi: operation([]),
      stream,
    },
    {
      method: 'GET',
      path: PATH,
      scope: 'predict',
      protocol: 'v1',
      summary: 'Predict with the body (JSON, or images as multipart files) or ?values=[...]',
      example: `curl -G $B/api/v1/models/iris/prediction --data-urlencode 'values=[2,5,1,4]'`,
      openapi: operation([{ name: 'values', in: 'query', schema: { type: 'string' }, description: 'JSON values when there is no body' }]),
      stream,
    },
  ];
}

/** The query of a request without one (only read). */
const NO_QUERY = new URLSearchParams();

/**
 * FRACTAL's GET form without a body: `?values=[…]`, checked as the modelhost will parse it (Python's NaN and
 * Infinity tokens, exact 64-bit integers) and passed on as written.
 */
function valuesQuery(q: URLSearchParams): string {
  const values = q.get('values');
  if (values === null) throw new InferrerError('INVALID_REQUEST', 'send {"values": [...]} as the body, or ?values=[...] in the query');
  try {
    parseInferenceJson(values, { maxDepth: MAX_JSON_DEPTH });
  } catch (err) {
    if ((err as InferrerError).code !== 'INVALID_JSON') throw err;
    throw new InferrerError('INVALID_JSON', 'the values query parameter is not valid JSON');
  }
  return values;
}
