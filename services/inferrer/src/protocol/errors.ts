/**
 * The one place an InferrerError becomes an HTTP answer: status from its kind (core's table), body in the
 * shape of the protocol the client spoke, Retry-After for 429/503. 5xx are logged with their stack,
 * 4xx at debug without one (the access line names their code at info). Clients never see stacks or file paths.
 */
import type { ServerResponse } from 'node:http';
import { ERROR_CODES, type InferrerError, httpStatusBody, statusOf, toInferrerError } from '@inferrer/core';
import type { Logger } from '@inferrer/telemetry';

export type Protocol = 'v1' | 'v2' | 'plain';

export function errorBody(err: InferrerError, protocol: Protocol): Record<string, unknown> {
  const status = statusOf(err);
  const error = { code: err.code, message: err.message, details: err.details };
  if (protocol === 'v1') {
    // Python's wording for 503 blames "a high load"; a model that is loading or a worker that is draining is not that.
    const http = status === 503 ? { ...httpStatusBody(status), description: ERROR_CODES[err.code].summary } : httpStatusBody(status);
    return { http_status: http, error };
  }
  if (protocol === 'v2') return { error: err.message, code: err.code, details: err.details };
  return { error };
}

export function sendError(res: ServerResponse, raw: unknown, protocol: Protocol, log: Logger, ctx: { reqId: string; method?: string; path?: string }): void {
  const err = toInferrerError(raw);
  const status = statusOf(err);
  const fields = { reqId: ctx.reqId, method: ctx.method, path: ctx.path, status };
  if (status >= 500) log.error('request failed', { ...fields, err: err.code === 'INTERNAL' && err.cause ? err.cause : err });
  // A refusal is on the access line already (status and error code); its message only at debug.
  else if (log.isDebugEnabled()) log.debug('request refused', { ...fields, err: { type: err.name, code: err.code, message: err.message } });
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(errorBody(err, protocol));
  const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'x-request-id': ctx.reqId };
  if (err.retryAfter !== undefined) headers['retry-after'] = String(err.retryAfter);
  res.writeHead(status, headers);
  res.end(text);
}
