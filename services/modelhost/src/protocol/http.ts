/** How the modelhost answers over HTTP: JSON bodies, errors as {"error": WireError} with the status of their kind. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type InferrerError, statusOf, toInferrerError } from '@inferrer/core';
import type { Logger } from '@inferrer/telemetry';

export function sendJson(res: ServerResponse, status: number, body: string | object, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sendError(res: ServerResponse, err: unknown, log: Logger, req: IncomingMessage, reqId: string): void {
  const e: InferrerError = toInferrerError(err);
  const status = statusOf(e);
  if (status >= 500) log.error('request failed', { reqId, method: req.method, path: req.url?.split('?')[0], status, err: e.cause ?? e });
  else log.info('request refused', { reqId, method: req.method, path: req.url?.split('?')[0], status, err: { type: e.name, code: e.code, message: e.message } });
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const headers: Record<string, string> = {};
  if (e.retryAfter !== undefined) headers['retry-after'] = String(e.retryAfter);
  sendJson(res, status, { error: e.toJSON() }, headers);
}
