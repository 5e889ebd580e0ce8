/**
 * Open Inference Protocol infer, `POST /v2/models/{model}[/versions/{version}]/infer`: JSON, or the binary
 * tensor extension (`Inference-Header-Content-Length`). Served on the lean path: the body is received whole,
 * then sent to a modelhost as it came, and the answer is relayed back; only the modelhost parses tensors.
 * A gzip or deflate body (Content-Encoding) is inflated first, and the answer is compressed when
 * Accept-Encoding asks for it, as Triton's clients do with their compression options.
 */
import type { IncomingMessage } from 'node:http';
import { type ContentCoding, decodeContent, encodeContent, inflateLimit, pickCoding } from '@inferrer/core';
import type { InferrerConfig } from '../../config.ts';
import type { DataPlane } from '../../dataplane.ts';
import type { Operation, StreamCall, StreamRoute } from '../../http/route.ts';
import type { UpstreamResponse } from '../../upstream.ts';
import { TAGS, modelParam, ref, v2Errors, versionParam } from '../openapi-parts.ts';
import { joined, wholeBody } from '../request-body.ts';

export interface InferDeps {
  config: InferrerConfig;
  dataplane: DataPlane;
}

const operation = (params: unknown[]): Operation => ({
  tags: [TAGS.v2],
  parameters: [
    ...params,
    {
      name: 'Inference-Header-Content-Length',
      in: 'header',
      schema: { type: 'integer' },
      description: 'Length of the JSON header when binary tensor data follows it',
    },
    {
      name: 'Content-Encoding',
      in: 'header',
      schema: { type: 'string', enum: ['gzip', 'deflate', 'identity'] },
      description: 'The body is compressed (the header length counts the inflated JSON)',
    },
    { name: 'Accept-Encoding', in: 'header', schema: { type: 'string' }, description: 'gzip or deflate: the answer comes compressed' },
  ],
  requestBody: {
    required: true,
    content: { 'application/json': { schema: ref('V2InferRequest') }, 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } },
  },
  responses: {
    '200': {
      description: 'Outputs',
      content: { 'application/json': { schema: ref('V2InferResponse') }, 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } },
    },
    ...v2Errors,
  },
});

/** The answer compressed as the client asked (Inference-Header-Content-Length still counts the plain JSON). */
async function compressed(answer: UpstreamResponse, coding: ContentCoding): Promise<UpstreamResponse> {
  const plain = answer.bytes ?? Buffer.from(await answer.body.arrayBuffer());
  return {
    status: answer.status,
    headers: { ...answer.headers, 'content-encoding': coding, vary: 'accept-encoding' },
    bytes: await encodeContent(plain, coding),
  };
}

export function v2InferRoutes({ config, dataplane }: InferDeps): StreamRoute[] {
  const stream = async (req: IncomingMessage, call: StreamCall): Promise<UpstreamResponse> => {
    const header = req.headers['inference-header-content-length'];
    const whole = await wholeBody(req, config.maxBodyBytes);
    const encoding = req.headers['content-encoding'];
    const body = encoding === undefined ? whole.chunks : await decodeContent(joined(whole), encoding, inflateLimit(whole.length, config.maxBodyBytes));
    const answer = await dataplane.inferV2(call.params.model!, call.params.version, {
      reqId: call.reqId,
      body,
      contentLength: Array.isArray(body) ? whole.length : body.length,
      contentType: String(req.headers['content-type'] ?? 'application/json'),
      headerLength: Array.isArray(header) ? header[0] : header,
      deadline: call.deadline,
      signal: call.signal,
    });
    const coding = pickCoding(req.headers['accept-encoding']);
    return coding ? compressed(answer, coding) : answer;
  };
  const summary = 'Infer (JSON, or the binary tensor extension with Inference-Header-Content-Length)';
  const example = `curl -X POST $B/v2/models/iris/infer -H 'Content-Type: application/json' -d '{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [6.7, 2.5, 5.8, 1.8]}]}'`;
  return [
    {
      method: 'POST',
      path: '/v2/models/:model/infer',
      scope: 'predict',
      protocol: 'v2',
      summary,
      example,
      codedBodies: true,
      openapi: operation([modelParam]),
      stream,
    },
    {
      method: 'POST',
      path: '/v2/models/:model/versions/:version/infer',
      scope: 'predict',
      protocol: 'v2',
      summary: `${summary}, one version`,
      example: example.replace('/iris/infer', '/iris/versions/1/infer'),
      codedBodies: true,
      openapi: operation([modelParam, versionParam]),
      stream,
    },
  ];
}
