/**
 * The one error type of Inferrer. Every failure that reaches a client is an InferrerError with a stable
 * `code`; the protocol layer maps its `kind` to an HTTP status in one table (see `statusOfKind`).
 * Errors cross process boundaries (modelhost → nginx → inferrer) as JSON, so callers match on `code`,
 * never on `instanceof`.
 */

export type ErrorKind =
  | 'invalid'
  | 'not_found'
  | 'conflict'
  | 'too_large'
  | 'unauthorized'
  | 'forbidden'
  | 'rate_limited'
  | 'unavailable'
  | 'timeout'
  | 'cancelled'
  | 'unsupported'
  | 'internal';

export interface ErrorSpec {
  kind: ErrorKind;
  /** One line for docs/errors.md. */
  summary: string;
}

/** Every code Inferrer can answer with. docs/errors.md lists the same set; a test keeps them in step. */
export const ERROR_CODES = {
  INVALID_REQUEST: { kind: 'invalid', summary: 'The request body or query could not be understood.' },
  INVALID_JSON: { kind: 'invalid', summary: 'The body is not valid JSON.' },
  INVALID_INPUT: { kind: 'invalid', summary: 'An input tensor does not match the model signature (shape, dtype, count, values).' },
  INVALID_MODEL_NAME: { kind: 'invalid', summary: 'A model name or version is not allowed (safe pattern: letters, digits, . _ -, at most 128 characters).' },
  INVALID_MODEL: { kind: 'invalid', summary: 'An uploaded file is not a usable ONNX model (does not parse, no session can be created, unsafe external data).' },
  UNSUPPORTED_MEDIA_TYPE: { kind: 'invalid', summary: 'The Content-Type (or Content-Encoding, or Transfer-Encoding) is not one this route accepts.' },
  INVALID_ARCHIVE: { kind: 'invalid', summary: 'A batch job archive (zip or tar of images) cannot be read, or holds no files.' },
  INVALID_IMAGE: { kind: 'invalid', summary: 'An uploaded image could not be decoded (not JPEG, PNG, WebP or TIFF, truncated, or corrupt).' },
  NOT_AN_IMAGE_MODEL: {
    kind: 'invalid',
    summary: 'Images were sent to a model without an image input (no STAC MLM item and no [batch, C, H, W] / [batch, H, W, C] input).',
  },
  INVALID_STAC_ITEM: {
    kind: 'invalid',
    summary: 'The STAC item with the MLM extension is invalid or disagrees with the ONNX graph (names, shapes, data types, classes).',
  },
  INVALID_PROFILE: {
    kind: 'invalid',
    summary:
      'A drift reference profile (or the sample rows to compute one) is invalid: schema, bin edges and counts, or rows that do not fit the model inputs.',
  },
  MODEL_NOT_FOUND: { kind: 'not_found', summary: 'No model with that name exists in the store.' },
  VERSION_NOT_FOUND: { kind: 'not_found', summary: 'The model exists but not that version.' },
  PROFILE_NOT_FOUND: { kind: 'not_found', summary: 'The model version has no drift reference profile yet (upload one, send a sample, or capture one).' },
  ROUTE_NOT_FOUND: { kind: 'not_found', summary: 'No route matches the method and path.' },
  JOB_NOT_FOUND: {
    kind: 'not_found',
    summary:
      'No batch job with that id (never submitted, or removed after JOBS_RETENTION_HOURS), or one that another API key owns (docs/jobs.md#who-sees-a-job).',
  },
  MODEL_CONFLICT: { kind: 'conflict', summary: 'Another writer changed the model at the same time; retry.' },
  BODY_TOO_LARGE: { kind: 'too_large', summary: 'The request body is larger than the configured limit.' },
  MODEL_TOO_LARGE: { kind: 'too_large', summary: 'The uploaded model is larger than MAX_MODEL_BYTES.' },
  MODEL_TOO_COSTLY: {
    kind: 'too_large',
    summary:
      'Validating the uploaded model took more memory or time than the validation limits allow (VALIDATION_MAX_MEMORY_MB and the per-size allowance, VALIDATION_TIMEOUT_MS).',
  },
  INFERENCE_TOO_COSTLY: {
    kind: 'too_large',
    summary:
      'Running the model on this request needs more memory than the worker may take (PROCESS_MEMORY_BYTES): an output or intermediate tensor whose size comes from the request (Expand, Tile, ConstantOfShape, Range, …) would not fit, or outputs whose size the input dims fix would not fit twice (once in the runtime, once copied out), refused before the run.',
  },
  OUTPUT_TOO_LARGE: {
    kind: 'too_large',
    summary: 'An output has more elements than an answer carries as JSON (16,777,216): ask for it as binary data (v2 "binary_data"), or send a smaller input.',
  },
  JOB_TOO_LARGE: { kind: 'too_large', summary: 'A batch job has more items than JOBS_MAX_ITEMS or more bytes than JOBS_MAX_BYTES.' },
  IMAGE_TOO_LARGE: { kind: 'too_large', summary: 'An image has more pixels than the limit (decompression bombs are refused before decoding).' },
  TOO_MANY_IMAGES: { kind: 'too_large', summary: 'The request carries more images (files) than the limit per request.' },
  UNAUTHORIZED: { kind: 'unauthorized', summary: 'No valid credentials were sent.' },
  FORBIDDEN: { kind: 'forbidden', summary: 'The credentials do not carry the scope this route needs.' },
  IMPORT_DISABLED: { kind: 'forbidden', summary: 'Importing models by URL is off (MODEL_IMPORT_ENABLED).' },
  IMPORT_HOST_NOT_ALLOWED: {
    kind: 'forbidden',
    summary:
      'The import URL (or a redirect) names a host outside MODEL_IMPORT_ALLOWED_HOSTS, a scheme other than http(s), or a host that resolves to a loopback, private, link-local or metadata address not in MODEL_IMPORT_ALLOWED_CIDRS.',
  },
  IMPORT_FETCH_FAILED: {
    kind: 'unavailable',
    summary: 'The STAC item or its model asset could not be fetched (network error, non-2xx answer, too large, timeout).',
  },
  RATE_LIMITED: { kind: 'rate_limited', summary: 'Too many requests; retry after the time in Retry-After.' },
  TOO_MANY_BODIES: {
    kind: 'rate_limited',
    summary: 'This client address already has MAX_PENDING_BODIES_PER_CLIENT request bodies still arriving; the connection is closed.',
  },
  TOO_MANY_CONNECTIONS: {
    kind: 'rate_limited',
    summary: 'This client address already has MAX_CONNECTIONS_PER_CLIENT connections open; the new one is closed.',
  },
  QUOTA_EXCEEDED: { kind: 'rate_limited', summary: 'The client already has JOBS_MAX_ACTIVE_PER_CLIENT batch jobs queued or running; retry when one finishes.' },
  QUEUE_FULL: {
    kind: 'unavailable',
    summary: 'The model queue on the worker is full, or would not reach the request before its deadline; retry after the time in Retry-After.',
  },
  MODEL_NOT_READY: { kind: 'unavailable', summary: 'The model is loading or unloading on this worker.' },
  MODEL_LOAD_FAILED: { kind: 'unavailable', summary: 'The worker could not load the model (out of memory, unsupported operator, provider missing).' },
  SERVER_DRAINING: { kind: 'unavailable', summary: 'The worker is shutting down and takes no new requests.' },
  UPSTREAM_UNAVAILABLE: { kind: 'unavailable', summary: 'No modelhost could be reached through the load balancer.' },
  METRICS_UNAVAILABLE: { kind: 'unavailable', summary: 'The metrics service is not configured (METRICS_URL) or did not answer.' },
  JOBS_UNAVAILABLE: { kind: 'unavailable', summary: 'Batch jobs are not running on this Inferrer (starting, or stopping).' },
  BODY_TOO_SLOW: {
    kind: 'timeout',
    summary: 'The request body arrived slower than the minimum rate (BODY_TIMEOUT_MS, BODY_MIN_BYTES_PER_S); the connection is closed.',
  },
  DEADLINE_EXCEEDED: {
    kind: 'timeout',
    summary: 'The request waited or ran past its deadline (REQUEST_TIMEOUT_MS), or could no longer finish before it; answered at the deadline at the latest.',
  },
  REQUEST_CANCELLED: {
    kind: 'cancelled',
    summary:
      'The client went away (closed its connection, or cancelled its gRPC call) before the answer; a request still queued is not run. Seen in logs and metrics as 499, never by the client.',
  },
  PROVIDER_UNAVAILABLE: { kind: 'unsupported', summary: 'An execution provider (e.g. cuda) was asked for but is not available on this worker.' },
  INFERENCE_FAILED: { kind: 'internal', summary: 'ONNX Runtime failed while running the model.' },
  STORAGE_FULL: { kind: 'unavailable', summary: 'The model volume has no space left; nothing was stored. Free space and retry.' },
  INTERNAL: { kind: 'internal', summary: 'An unexpected error; the log line with the request id has the details.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

export type ErrorDetails = Record<string, unknown>;

export class InferrerError extends Error {
  readonly code: ErrorCode;
  readonly kind: ErrorKind;
  readonly details: ErrorDetails;
  /** Seconds, for 429/503 answers. */
  readonly retryAfter?: number;

  /**
   * `message` and `details` are what clients see, so file paths in them (a staging folder, the runtime's
   * source files in its messages) are replaced by `<path>` here; the `cause` keeps the original for the log.
   */
  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}, opts: { retryAfter?: number; cause?: unknown } = {}) {
    super(redactPaths(message), opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'InferrerError';
    this.code = code;
    this.kind = ERROR_CODES[code].kind;
    this.details = redactDetails(details, 0) as ErrorDetails;
    if (opts.retryAfter !== undefined) this.retryAfter = opts.retryAfter;
  }

  /** The shape errors travel in between services. */
  toJSON(): WireError {
    const wire: WireError = { code: this.code, kind: this.kind, message: this.message, details: this.details };
    if (this.retryAfter !== undefined) wire.retryAfter = this.retryAfter;
    return wire;
  }
}

export interface WireError {
  code: ErrorCode;
  kind: ErrorKind;
  message: string;
  details: ErrorDetails;
  retryAfter?: number;
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

/** Rebuilds an InferrerError from its wire form (another service's error body); anything else is INTERNAL. */
export function fromWire(body: unknown): InferrerError {
  if (body && typeof body === 'object') {
    const b = body as Partial<WireError>;
    if (isErrorCode(b.code) && typeof b.message === 'string') {
      const details = b.details && typeof b.details === 'object' ? b.details : {};
      return new InferrerError(b.code, b.message, details, b.retryAfter === undefined ? {} : { retryAfter: b.retryAfter });
    }
  }
  return new InferrerError('INTERNAL', 'upstream answered with an unrecognised error');
}

/** Wraps anything thrown into an InferrerError; unknown errors become INTERNAL (their message is not shown to clients). */
export function toInferrerError(err: unknown): InferrerError {
  if (err instanceof InferrerError) return err;
  if (err && typeof err === 'object' && isErrorCode((err as { code?: unknown }).code) && (err as { name?: string }).name === 'InferrerError') {
    return fromWire(err);
  }
  return new InferrerError('INTERNAL', 'internal error', {}, { cause: err });
}

/**
 * Absolute file paths (POSIX after a space, quote, bracket, `=`, `:` or the start; `file://` URLs; Windows
 * drive paths), with any `:line:column` after them. A URL's path follows its host, so it is left alone, and
 * so are Inferrer's own routes (`/api/…`, `/v2/…`), which messages name on purpose.
 */
const FILE_PATH = /(^|[\s'"`(=:,;[{<])(\/(?!\/)[^\s'"`:,;()<>[\]{}]*)((?::\d+)*)|file:\/\/[^\s'"`<>]*|\b[A-Za-z]:\\[^\s'"`<>]*/g;
const ROUTE = /^\/(?:api|v2|health|help|metrics|docs|openapi\.json)(?:[/?]|$)/;

/** `text` with every absolute file path replaced by `<path>` (routes and URLs kept). */
export function redactPaths(text: string): string {
  if (!text.includes('/') && !text.includes('\\')) return text;
  return text.replace(FILE_PATH, (all: string, lead: string | undefined, p: string | undefined) => {
    if (p === undefined) return '<path>';
    if (p === '/' || ROUTE.test(p)) return all;
    return `${lead}<path>`;
  });
}

function redactDetails(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return redactPaths(value);
  if (depth > 4 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value))
    return value.some((v) => typeof v === 'string' || (v && typeof v === 'object')) ? value.map((v) => redactDetails(v, depth + 1)) : value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = redactDetails(v, depth + 1);
  return out;
}

/** The one table from kind to HTTP status (Triton's HttpCodeFromError, KServe's handlers). */
export const STATUS_OF_KIND: Readonly<Record<ErrorKind, number>> = Object.freeze({
  invalid: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  too_large: 413,
  rate_limited: 429,
  internal: 500,
  unsupported: 501,
  unavailable: 503,
  timeout: 504,
  /** nginx's "client closed request": only logs and metrics see it. */
  cancelled: 499,
});

/** Codes whose status differs from their kind's. */
const STATUS_OVERRIDES: Partial<Record<ErrorCode, number>> = {
  UNSUPPORTED_MEDIA_TYPE: 415,
  BODY_TOO_SLOW: 408,
  UPSTREAM_UNAVAILABLE: 502,
  STORAGE_FULL: 507,
  IMPORT_FETCH_FAILED: 502,
};

export function statusOf(err: InferrerError): number {
  return STATUS_OVERRIDES[err.code] ?? STATUS_OF_KIND[err.kind];
}

/** A full disk or exhausted quota as STORAGE_FULL; anything else unchanged. */
export function storageError(err: unknown): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT')
    return new InferrerError('STORAGE_FULL', 'the model volume has no space left; nothing was stored', {}, { cause: err });
  return err;
}
