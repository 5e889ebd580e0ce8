/**
 * The Inferrer's configuration: the only reader of process.env. Parsed once in main.ts; every problem is
 * printed and the process exits non-zero; the result is frozen.
 */
import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import { MAX_GROUP_MEMBERS } from '@inferrer/core';
import { LOG_ENV, SERVING_ENV, envFlag, envServiceId, loadEnvConfig } from '@inferrer/telemetry';

/**
 * The longest gRPC connection age and grace: a week, well inside what a node timer can wait (2³¹ − 1 ms,
 * which grpc-js also reads as "no limit") with the age's 10 % jitter added.
 */
const MAX_CONNECTION_AGE_MS = 7 * 24 * 3600_000;

export const InferrerEnvSchema = z
  .object({
    HOST: z.string().default('0.0.0.0'),
    PORT: z.coerce.number().int().min(0).max(65535).default(8002),
    /** The Open Inference Protocol over gRPC (inference.GRPCInferenceService), as Triton serves it; 0 turns it off. */
    GRPC_PORT: z.coerce.number().int().min(0).max(65535).default(8001),
    MODEL_DIR: z.string().min(1),
    /** The load balancer in front of the modelhosts (nginx, or the launcher's built-in one). */
    LOAD_BALANCER_URL: z.url({ protocol: /^https?$/ }),
    INFERRER_ID: envServiceId(),
    ...LOG_ENV,
    ...SERVING_ENV,
    /** The metrics service, whose cluster summary GET /api/v1/metrics passes on; unset: that route answers 503. */
    METRICS_URL: z.url({ protocol: /^https?$/ }).optional(),
    /** A folder of models imported at start (`name.onnx`, or Triton's `name/<version>/model.onnx`); see docs/model-store.md. */
    IMPORT_MODELS_FROM: z.string().min(1).optional(),
    /** Largest model upload. */
    MAX_MODEL_BYTES: z.coerce
      .number()
      .int()
      .min(1024)
      .default(1024 * 1024 * 1024),
    /**
     * Upload validation (parse + session) runs in a child process under these limits (validation/validation-process.ts):
     * memory above the child's baseline ≤ min(MAX, BASE + PER_MODEL × file MB), and a deadline. The defaults fit the
     * documented 2 GiB Inferrer container; raise them with it for models near MAX_MODEL_BYTES.
     */
    VALIDATION_MEMORY_BASE_MB: z.coerce.number().int().min(16).default(192),
    VALIDATION_MEMORY_PER_MODEL_MB: z.coerce.number().min(0).default(4),
    VALIDATION_MAX_MEMORY_MB: z.coerce.number().int().min(64).default(1536),
    VALIDATION_TIMEOUT_MS: z.coerce.number().int().min(100).default(60_000),
    /** Largest prediction or JSON management body. */
    MAX_BODY_BYTES: z.coerce
      .number()
      .int()
      .min(1024)
      .default(64 * 1024 * 1024),
    /**
     * Slow request bodies (every route): a body must arrive within BODY_TIMEOUT_MS plus one second per
     * BODY_MIN_BYTES_PER_S bytes received so far, or it is cut with 408; a client address may have at most
     * MAX_PENDING_BODIES_PER_CLIENT bodies that are still arriving after a second (more are cut with 429).
     */
    BODY_TIMEOUT_MS: z.coerce.number().int().min(100).default(10_000),
    BODY_MIN_BYTES_PER_S: z.coerce.number().int().min(1).default(500),
    MAX_PENDING_BODIES_PER_CLIENT: z.coerce.number().int().min(1).default(32),
    /**
     * Connections one client address may hold open, HTTP and gRPC together (slow headers and idle keep-alive
     * included); 0: no cap.
     */
    MAX_CONNECTIONS_PER_CLIENT: z.coerce.number().int().min(0).default(1024),
    /** Leading bits of an IPv6 address that name its client for the per-client limits (http/client-address.ts). */
    CLIENT_IPV6_PREFIX: z.coerce.number().int().min(1).max(128).default(64),
    /** Calls one gRPC connection may have open at once (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS); more are refused. */
    GRPC_MAX_STREAMS_PER_CONNECTION: z.coerce.number().int().min(1).max(65_535).default(100),
    /** A gRPC connection with no call open for this long is closed (GOAWAY; clients reconnect); 0: never. */
    GRPC_MAX_CONNECTION_IDLE_MS: z.coerce.number().int().min(0).default(65_000),
    /**
     * A gRPC connection open this long (± 10 %, so connections opened together do not all reconnect
     * together) is sent GOAWAY and takes no new call; clients reconnect, so that a client's connections
     * spread over the Inferrer replicas again now and then; 0: never.
     */
    GRPC_MAX_CONNECTION_AGE_MS: z.coerce
      .number()
      .int()
      .min(0)
      .max(MAX_CONNECTION_AGE_MS)
      .default(30 * 60_000),
    /**
     * The calls still open on a connection sent GOAWAY for its age have this long to finish; then the
     * connection is closed, cutting them; 0: they are cut at once.
     */
    GRPC_MAX_CONNECTION_AGE_GRACE_MS: z.coerce.number().int().min(0).max(MAX_CONNECTION_AGE_MS).default(30_000),
    /**
     * Prediction bodies declared this large or larger wait, unread, until their model has room upstream
     * (body-gate.ts); 0 reads every body at once.
     */
    BODY_GATE_BYTES: z.coerce
      .number()
      .int()
      .min(0)
      .default(256 * 1024),
    /** Large requests one model may have waiting at the gate; the next is answered 503 QUEUE_FULL. */
    BODY_GATE_MAX_WAITING: z.coerce.number().int().min(1).default(1024),
    /** Deadline of one prediction, end to end. */
    REQUEST_TIMEOUT_MS: z.coerce.number().int().min(1).default(30_000),
    /** Keep-alive connections to the load balancer. */
    UPSTREAM_CONNECTIONS: z.coerce.number().int().min(1).max(4096).default(256),
    /**
     * Predictions for one model that arrive together (in one turn of the event loop) go to a modelhost as
     * one framed group of at most this many; 1 sends every prediction on its own. Nothing waits to fill a group.
     */
    GROUP_MAX_REQUESTS: z.coerce.number().int().min(1).max(MAX_GROUP_MEMBERS).default(64),
    DRAIN_TIMEOUT_MS: z.coerce.number().int().min(0).default(30_000),
    /**
     * Model-aware placement (placement.ts): each prediction carries X-Inferrer-Placement, one of its model's
     * replica keys, which a balancer with BALANCE=placement hashes consistently; false sends no header.
     */
    PLACEMENT: envFlag().default(true),
    /** Most replica keys (and so workers) one model spreads over. */
    PLACEMENT_MAX_REPLICAS: z.coerce.number().int().min(1).max(1024).default(16),
    /** A model gets another replica key per this many requests per second … */
    PLACEMENT_RATE_PER_REPLICA: z.coerce.number().positive().default(200),
    /** … or per this many of its requests in flight, whichever asks for more. */
    PLACEMENT_INFLIGHT_PER_REPLICA: z.coerce.number().positive().default(4),
    /** Traffic must stay low this long before a model loses a replica key. */
    PLACEMENT_COOL_S: z.coerce.number().min(0).default(30),
    /** POST /api/v1/models/{name}/import (a model by the URL of its STAC item, as EOTDL publishes them); off by default. */
    MODEL_IMPORT_ENABLED: envFlag().default(false),
    /** Hosts (host or host:port) an import may fetch from, comma-separated; redirects elsewhere are refused. */
    MODEL_IMPORT_ALLOWED_HOSTS: z
      .string()
      .transform((s) =>
        s
          .split(',')
          .map((x) => x.trim().toLowerCase())
          .filter(Boolean),
      )
      .pipe(z.array(z.string().regex(/^[a-z0-9.-]+(:\d{1,5})?$|^\[[0-9a-f:.]+\](:\d{1,5})?$/)))
      .default([]),
    /**
     * Address ranges an import may reach besides public unicast, comma-separated CIDRs (e.g. 10.0.0.0/8 for
     * a STAC server on the private network). Loopback, private, link-local and metadata addresses are refused otherwise.
     */
    MODEL_IMPORT_ALLOWED_CIDRS: z
      .string()
      .transform((s) =>
        s
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean),
      )
      .pipe(z.array(z.string().refine((c) => ipaddr.isValidCIDR(c), 'must be a CIDR range such as 10.0.0.0/8 or fd00::/8')))
      .default([]),
    /** Sent as X-API-Key to import hosts when set (EOTDL's key). */
    EOTDL_API_KEY: z.string().min(1).max(4096).optional(),
    /** Deadline of one import fetch (STAC item or model asset). */
    MODEL_IMPORT_TIMEOUT_MS: z.coerce.number().int().min(100).default(120_000),
    /** JSON file {"keys": [{"key": "…", "scopes": ["admin", "predict"]}]} (a Docker/K8s secret). */
    API_KEYS_FILE: z.string().min(1).optional(),
    /** Explicitly run without authentication (the local demo); management is closed otherwise. */
    AUTH_DISABLED: envFlag().default(false),
    /** Requests per second per API key (0: no limit). */
    RATE_LIMIT_KEY_RPS: z.coerce.number().int().min(0).default(10_000),
    /** Requests per second per client IP on routes used without a key (0: no limit). */
    RATE_LIMIT_IP_RPS: z.coerce.number().int().min(0).default(10_000),
    /** Batch jobs' queue: Redis through BullMQ (several Inferrers share the work). Unset: an embedded queue, one Inferrer only. */
    REDIS_URL: z.url({ protocol: /^rediss?$/ }).optional(),
    /** Finished batch jobs (inputs and results, in MODEL_DIR/.jobs) are removed this long after they end. */
    JOBS_RETENTION_HOURS: z.coerce.number().min(0).default(168),
    /** Largest batch job: items (rows or images) and bytes (the upload, and an archive unpacked). */
    JOBS_MAX_ITEMS: z.coerce.number().int().min(1).default(1_000_000),
    JOBS_MAX_BYTES: z.coerce
      .number()
      .int()
      .min(1024)
      .default(1024 * 1024 * 1024),
    /** Batch jobs queued or running per client (API key, or address without one). */
    JOBS_MAX_ACTIVE_PER_CLIENT: z.coerce.number().int().min(1).default(4),
    /** Job requests in flight per Inferrer when no online traffic competes (one while it does). */
    JOBS_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(4),
    /** Job rows sent in one request (they share a batch on the worker). */
    JOBS_ROWS_PER_REQUEST: z.coerce.number().int().min(1).max(1024).default(16),
    /** Jobs one Inferrer works on at once. */
    JOBS_MAX_RUNNING: z.coerce.number().int().min(1).max(64).default(2),
  })
  .strict();

export type InferrerConfig = Readonly<{
  host: string;
  port: number;
  acceptors: number;
  grpcPort: number;
  modelDir: string;
  loadBalancerUrl: string;
  id: string;
  logLevel: 'error' | 'warn' | 'info' | 'debug';
  logFormat: 'json' | 'pretty';
  accessLog: boolean;
  accessLogSample: number;
  metricsUrl: string | undefined;
  importModelsFrom: string | undefined;
  maxModelBytes: number;
  validation: Readonly<{ memoryBaseMb: number; memoryPerModelMb: number; maxMemoryMb: number; timeoutMs: number }>;
  maxBodyBytes: number;
  bodies: Readonly<{ timeoutMs: number; minBytesPerSecond: number; maxPendingPerClient: number }>;
  maxConnectionsPerClient: number;
  /** Leading bits of an IPv6 address counted as one client (CLIENT_IPV6_PREFIX). */
  clientIpv6PrefixBits: number;
  grpcConnections: Readonly<{ maxStreams: number; maxIdleMs: number; maxAgeMs: number; maxAgeGraceMs: number }>;
  bodyGate: Readonly<{ minBytes: number; maxWaiting: number }>;
  requestTimeoutMs: number;
  upstreamConnections: number;
  groupMaxRequests: number;
  drainTimeoutMs: number;
  placement: Readonly<{ enabled: boolean; maxReplicas: number; ratePerReplica: number; inflightPerReplica: number; coolMs: number }>;
  modelImport: Readonly<{ enabled: boolean; allowedHosts: readonly string[]; allowedCidrs: readonly string[]; apiKey: string | undefined; timeoutMs: number }>;
  redisUrl: string | undefined;
  jobs: Readonly<{
    retentionHours: number;
    maxItems: number;
    maxBytes: number;
    maxActivePerClient: number;
    concurrency: number;
    rowsPerRequest: number;
    maxRunning: number;
  }>;
  apiKeysFile: string | undefined;
  authDisabled: boolean;
  rateLimitKeyRps: number;
  rateLimitIpRps: number;
}>;

export function loadConfig(env: NodeJS.ProcessEnv = process.env): InferrerConfig {
  return loadEnvConfig('inferrer', InferrerEnvSchema, env, (e) => ({
    host: e.HOST,
    port: e.PORT,
    acceptors: e.ACCEPTORS,
    grpcPort: e.GRPC_PORT,
    modelDir: e.MODEL_DIR,
    loadBalancerUrl: e.LOAD_BALANCER_URL.replace(/\/+$/, ''),
    id: e.INFERRER_ID,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    accessLog: e.ACCESS_LOG,
    accessLogSample: e.ACCESS_LOG_SAMPLE,
    metricsUrl: e.METRICS_URL?.replace(/\/+$/, ''),
    importModelsFrom: e.IMPORT_MODELS_FROM,
    maxModelBytes: e.MAX_MODEL_BYTES,
    validation: {
      memoryBaseMb: e.VALIDATION_MEMORY_BASE_MB,
      memoryPerModelMb: e.VALIDATION_MEMORY_PER_MODEL_MB,
      maxMemoryMb: e.VALIDATION_MAX_MEMORY_MB,
      timeoutMs: e.VALIDATION_TIMEOUT_MS,
    },
    maxBodyBytes: e.MAX_BODY_BYTES,
    bodies: { timeoutMs: e.BODY_TIMEOUT_MS, minBytesPerSecond: e.BODY_MIN_BYTES_PER_S, maxPendingPerClient: e.MAX_PENDING_BODIES_PER_CLIENT },
    maxConnectionsPerClient: e.MAX_CONNECTIONS_PER_CLIENT,
    clientIpv6PrefixBits: e.CLIENT_IPV6_PREFIX,
    grpcConnections: {
      maxStreams: e.GRPC_MAX_STREAMS_PER_CONNECTION,
      maxIdleMs: e.GRPC_MAX_CONNECTION_IDLE_MS,
      maxAgeMs: e.GRPC_MAX_CONNECTION_AGE_MS,
      maxAgeGraceMs: e.GRPC_MAX_CONNECTION_AGE_GRACE_MS,
    },
    bodyGate: { minBytes: e.BODY_GATE_BYTES, maxWaiting: e.BODY_GATE_MAX_WAITING },
    requestTimeoutMs: e.REQUEST_TIMEOUT_MS,
    upstreamConnections: e.UPSTREAM_CONNECTIONS,
    groupMaxRequests: e.GROUP_MAX_REQUESTS,
    drainTimeoutMs: e.DRAIN_TIMEOUT_MS,
    placement: {
      enabled: e.PLACEMENT,
      maxReplicas: e.PLACEMENT_MAX_REPLICAS,
      ratePerReplica: e.PLACEMENT_RATE_PER_REPLICA,
      inflightPerReplica: e.PLACEMENT_INFLIGHT_PER_REPLICA,
      coolMs: e.PLACEMENT_COOL_S * 1000,
    },
    modelImport: {
      enabled: e.MODEL_IMPORT_ENABLED,
      allowedHosts: e.MODEL_IMPORT_ALLOWED_HOSTS,
      allowedCidrs: e.MODEL_IMPORT_ALLOWED_CIDRS,
      apiKey: e.EOTDL_API_KEY,
      timeoutMs: e.MODEL_IMPORT_TIMEOUT_MS,
    },
    redisUrl: e.REDIS_URL,
    jobs: {
      retentionHours: e.JOBS_RETENTION_HOURS,
      maxItems: e.JOBS_MAX_ITEMS,
      maxBytes: e.JOBS_MAX_BYTES,
      maxActivePerClient: e.JOBS_MAX_ACTIVE_PER_CLIENT,
      concurrency: e.JOBS_CONCURRENCY,
      rowsPerRequest: e.JOBS_ROWS_PER_REQUEST,
      maxRunning: e.JOBS_MAX_RUNNING,
    },
    apiKeysFile: e.API_KEYS_FILE,
    authDisabled: e.AUTH_DISABLED,
    rateLimitKeyRps: e.RATE_LIMIT_KEY_RPS,
    rateLimitIpRps: e.RATE_LIMIT_IP_RPS,
  }));
}
