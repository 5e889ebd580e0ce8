/**
 * The Inferrer's error bodies, one shape per protocol; @inferrer/http's sendError applies the policy
 * (status from the kind, Retry-After, the log line) and writes them.
 *   v1     {"http_status": {code, description, name}, "error": {code, message, details}}  (FRACTAL envelope)
 *   v2     {"error": message, "code", "details"}                                          (Open Inference Protocol)
 *   plain  {"error": {code, message, details}}
 */
import { ERROR_CODES, type InferrerError, httpStatusBody } from '@inferrer/core';
import type { ErrorBody } from '@inferrer/http';

export type Protocol = 'v1' | 'v2' | 'plain';

export const ERROR_BODY: Record<Protocol, ErrorBody> = {
  v1: (err: InferrerError, status: number) => ({
    // Python's wording for 503 blames "a high load"; a model that is loading or a worker that is draining is not that.
    http_status: status === 503 ? { ...httpStatusBody(status), description: ERROR_CODES[err.code].summary } : httpStatusBody(status),
    error: { code: err.code, message: err.message, details: err.details },
  }),
  v2: (err: InferrerError) => ({ error: err.message, code: err.code, details: err.details }),
  plain: (err: InferrerError) => ({ error: { code: err.code, message: err.message, details: err.details } }),
};
