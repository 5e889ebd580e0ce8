/**
 * Open Inference Protocol infer, `POST /v2/models/{model}[/versions/{version}]/infer`: JSON, or the binary
 * tensor extension (`Inference-Header-Content-Length`). Served on the lean path: the body is received whole,
 * then sent to a modelhost as it came, and the answer streams back; only the modelhost parses tensors.
 */
import type { IncomingMessage } from 'node:http';
import type { InferrerConfig } from '../../config.ts';
import type { DataPlane } from '../../dataplane.ts';
import type { Operation, StreamCall, StreamRoute } from '../../http/route.ts';
import type { UpstreamResponse } from '../../upstream.ts';
import { TAGS, modelParam, ref, v2Errors, versionParam } from '../openapi-parts.ts';
import { wholeBody } from '../request-body.ts';

export interface InferDeps {
  config: InferrerConfig;
  dataplane: DataPlane;
}

const operation = (params: unknown[]): Operation => ({
  tags: [TAGS.v2],
  parameters: [...params, { name: 'Inference-Header-Content-Length', in: 'header', schema: { type: 'integer' }, description: 'Length of the JSON header when binary tensor data follows it' }],
  requestBody: { required: true, content: { 'application/json': { schema: ref('V2InferRequest') }, 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } },
  responses: {
    '200': { description: 'Outputs', content: { 'application/json': { schema: ref('V2InferResponse') }, 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } },
    ...v2Errors,
  },
});

export function v2InferRoutes({ config, dataplane }: InferDeps): StreamRoute[] {
  const stream = async (req: IncomingMessage, call: StreamCall): Promise<UpstreamResponse> => {
    const header = req.headers['inference-header-content-length'];
    const body = await wholeBody(req, config.maxBodyBytes);
    return dataplane.inferV2(call.params.model!, call.params.version, {
      reqId: call.reqId,
      body,
      contentLength: body.length,
      contentType: String(req.headers['content-type'] ?? 'application/json'),
      headerLength: Array.isArray(header) ? header[0] : header,
    });
  };
  const summary = 'Infer (JSON, or the binary tensor extension with Inference-Header-Content-Length)';
  const example = `curl -X POST $B/v2/models/iris/infer -H 'Content-Type: application/json' -d '{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [6.7, 2.5, 5.8, 1.8]}]}'`;
  return [
    { method: 'POST', path: '/v2/models/:model/infer', scope: 'predict', protocol: 'v2', summary, example, openapi: operation([modelParam]), stream },
    {
      method: 'POST',
      path: '/v2/models/:model/versions/:version/infer',
      scope: 'predict',
      protocol: 'v2',
      summary: `${summary}, one version`,
      example: example.replace('/iris/infer', '/iris/versions/1/infer'),
      openapi: operation([modelParam, versionParam]),
      stream,
    },
  ];
}
