/**
 * The one error policy of every service: whatever was thrown becomes an InferrerError (an error from
 * express or its middleware that carries a 4xx status, such as a static file not found, is
 * INVALID_REQUEST; anything unknown is INTERNAL), its status comes from its kind (core's table), 429/503
 * answers carry Retry-After where the error has one, and the request id is echoed. 5xx are logged at
 * error with the stack and cause, except load shed on purpose (a full queue, a passed deadline, a
 * draining worker: SHED): like a refusal (4xx), that is on the access line already (status and error
 * code) and in the metrics, so its message is logged only at debug. Under deep overload that is hundreds
 * of answers a second, and a line with a stack for each would take the CPU the serving needs (measured:
 * a fifth of the Inferrer's time at 900 refusals/s). The body is the caller's: each protocol has its own
 * error shape.
 * Clients never see stacks or file paths.
 */
import type { ServerResponse } from 'node:http';
import { InferrerError, statusOf, toInferrerError } from '@inferrer/core';

/** The JSON body of an error in one protocol's shape. */
export type ErrorBody = (err: InferrerError, status: number) => unknown;

/** The levels the policy logs at (a winston logger is one). */
export interface ErrorLog {
  error(msg: string, meta: Record<string, unknown>): unknown;
  debug(msg: string, meta: Record<string, unknown>): unknown;
  isDebugEnabled(): boolean;
}

/** Which request failed, for the log line and the `x-request-id` header. */
export interface RequestAt {
  reqId: string;
  method?: string | undefined;
  path?: string | undefined;
}

/** An error answer ready to write (to its own response, or as one frame of a group), and the error it answers. */
export interface ErrorReply {
  status: number;
  headers: Record<string, string>;
  body: string;
  err: InferrerError;
}

/** 5xx answers that shed load on purpose: logged like refusals (at debug), not as failures. */
const SHED: ReadonlySet<string> = new Set(['QUEUE_FULL', 'DEADLINE_EXCEEDED', 'SERVER_DRAINING']);

export function errorReply(raw: unknown, body: ErrorBody, log: ErrorLog, at: RequestAt): ErrorReply {
  const err = asInferrerError(raw);
  const status = statusOf(err);
  const fields = { reqId: at.reqId, method: at.method, path: at.path, status };
  if (status >= 500 && !SHED.has(err.code)) log.error('request failed', { ...fields, err });
  else if (log.isDebugEnabled()) log.debug('request refused', { ...fields, err: { type: err.name, code: err.code, message: err.message } });
  const headers: Record<string, string> = { 'content-type': 'application/json', 'x-request-id': at.reqId };
  if (err.retryAfter !== undefined) headers['retry-after'] = String(err.retryAfter);
  return { status, headers, body: JSON.stringify(body(err, status)), err };
}

/**
 * Answers with the error and returns it as the InferrerError it became (for the access line); a response
 * already under way can only be cut, so its connection is destroyed.
 */
export function sendError(res: ServerResponse, raw: unknown, body: ErrorBody, log: ErrorLog, at: RequestAt): InferrerError {
  const reply = errorReply(raw, body, log, at);
  if (res.headersSent) {
    res.destroy();
    return reply.err;
  }
  res.writeHead(reply.status, { ...reply.headers, 'content-length': Buffer.byteLength(reply.body) });
  res.end(reply.body);
  return reply.err;
}

function asInferrerError(raw: unknown): InferrerError {
  if (raw instanceof InferrerError) return raw;
  const e = raw as { status?: unknown; message?: unknown } | null;
  if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500)
    return new InferrerError('INVALID_REQUEST', typeof e.message === 'string' ? e.message : 'bad request');
  return toInferrerError(raw);
}
