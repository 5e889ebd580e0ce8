/**
 * The Inferrer's error bodies, one shape per protocol; @inferrer/http's sendError applies the policy
 * (status from the kind, Retry-After, the log line) and writes them. The gRPC door sends the gRPC status of
 * the error's kind instead (grpcStatusOf), with the message and the code.
 *   v1     {"http_status": {code, description, name}, "error": {code, message, details}}  (FRACTAL envelope)
 *   v2     {"error": message, "code", "details"}                                          (Open Inference Protocol)
 *   plain  {"error": {code, message, details}}
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { ERROR_CODES, type ErrorKind, type InferrerError, httpStatusBody } from '@inferrer/core';
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

/** The gRPC status of each kind of error (the gRPC door's table; grpc/server.ts sends it). */
const GRPC_STATUS_OF_KIND: Readonly<Record<ErrorKind, GrpcStatus>> = Object.freeze({
  invalid: GrpcStatus.INVALID_ARGUMENT,
  unauthorized: GrpcStatus.UNAUTHENTICATED,
  forbidden: GrpcStatus.PERMISSION_DENIED,
  not_found: GrpcStatus.NOT_FOUND,
  conflict: GrpcStatus.ABORTED,
  too_large: GrpcStatus.RESOURCE_EXHAUSTED,
  rate_limited: GrpcStatus.RESOURCE_EXHAUSTED,
  internal: GrpcStatus.INTERNAL,
  unsupported: GrpcStatus.UNIMPLEMENTED,
  unavailable: GrpcStatus.UNAVAILABLE,
  timeout: GrpcStatus.DEADLINE_EXCEEDED,
  cancelled: GrpcStatus.CANCELLED,
});

export function grpcStatusOf(err: InferrerError): GrpcStatus {
  return err.code === 'STORAGE_FULL' ? GrpcStatus.RESOURCE_EXHAUSTED : GRPC_STATUS_OF_KIND[err.kind];
}
