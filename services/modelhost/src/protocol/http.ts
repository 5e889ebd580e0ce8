/** How the modelhost answers over HTTP: JSON bodies, errors as {"error": WireError} with the status of their kind. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type InferrerError, statusOf, toInferrerError } from '@inferrer/core';
import type { Logger } from '@inferrer/telemetry';

export function sendJson(res: ServerResponse, status: number, body: string | object, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** An error as the answer to send: status of its kind, `Retry-After` where it has one, logged once here. */
export function errorReply(err: unknown, log: Logger, at: { reqId: string; method: string | undefined; path: string | undefined }): { status: number; headers: Record<string, string>; body: string } {
  const e: InferrerError = toInferrerError(err);
  const status = statusOf(e);
  if (status >= 500) log.error('request failed', { ...at, status, err: e.cause ?? e });
  // A refusal is on the access line already (status and error code); its message only at debug.
  else if (log.isDebugEnabled()) log.debug('request refused', { ...at, status, err: { type: e.name, code: e.code, message: e.message } });
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (e.retryAfter !== undefined) headers['retry-after'] = String(e.retryAfter);
  return { status, headers, body: JSON.stringify({ error: e.toJSON() }) };
}

export function sendError(res: ServerResponse, err: unknown, log: Logger, req: IncomingMessage, reqId: string): void {
  const reply = errorReply(err, log, { reqId, method: req.method, path: req.url?.split('?')[0] });
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, reply.status, reply.body, reply.headers);
}
