/** The CLI's configuration: the launcher's (`inferrer start`) and the client commands'; the only reader of process.env in the CLI. */
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { envFlag, loadEnvConfig } from '@inferrer/telemetry';

export const CliEnvSchema = z
  .object({
    HOST: z.string().default('127.0.0.1'),
    PORT: z.coerce.number().int().min(0).max(65535).default(8002),
    /** The Inferrer's gRPC port; 0 turns gRPC off. Unset: 8001 (Triton's), or a free port when another program holds 8001. */
    GRPC_PORT: z.coerce.number().int().min(0).max(65535).optional(),
    /** Modelhost processes; one per core by default. */
    MODELHOSTS: z.coerce
      .number()
      .int()
      .min(1)
      .max(64)
      .default(Math.max(1, os.availableParallelism?.() ?? os.cpus().length)),
    MODEL_DIR: z.string().default(path.resolve('.inferrer', 'models')),
    /** nginx when installed (auto), or force one. */
    BALANCER: z.enum(['auto', 'nginx', 'builtin']).default('auto'),
    /** least_conn, or hash: consistent hash on the model name. */
    BALANCE: z.enum(['least_conn', 'placement', 'hash']).default('least_conn'),
    SEED_DEMO_MODELS: envFlag().default(true),
    /** Passed on to the Inferrer; without either, the demo starts with auth off and says so. */
    API_KEYS_FILE: z.string().min(1).optional(),
    AUTH_DISABLED: envFlag().optional(),
    /**
     * The metrics service (status page, /api/v1/stats, cluster metrics for Prometheus); 0 picks a free port.
     * Unset: 9400, or a free port when another program holds 9400.
     */
    METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
    /** The Inferrer's per-address and per-key rate limits, read only to say them in the banner (passed on as they are). */
    RATE_LIMIT_IP_RPS: z.coerce.number().int().min(0).default(10_000),
    RATE_LIMIT_KEY_RPS: z.coerce.number().int().min(0).default(10_000),
    /** Log lines for people (pretty) or collectors (json); default pretty when the launcher writes to a terminal. */
    LOG_FORMAT: z.enum(['json', 'pretty']).optional(),
  })
  .strict();

/** The client commands' settings (`inferrer models …`, `predict`, `jobs`, `bench`); --url and --key win. */
export const ClientEnvSchema = z
  .object({
    /** The Inferrer to talk to; default http://127.0.0.1:PORT. */
    INFERRER_URL: z.url({ protocol: /^https?$/ }).optional(),
    /** Sent as Authorization: Bearer <key>. */
    INFERRER_API_KEY: z.string().min(1).optional(),
    /** The port a local cluster was started on (0 there means "a free one": then give INFERRER_URL). */
    PORT: z.coerce.number().int().min(0).max(65535).default(8002),
  })
  .strict();

export type ClientConfig = Readonly<z.infer<typeof ClientEnvSchema>>;

export function loadClientConfig(env: NodeJS.ProcessEnv = process.env): ClientConfig {
  return loadEnvConfig('inferrer', ClientEnvSchema, env, (e) => e);
}

export type CliConfig = Readonly<z.infer<typeof CliEnvSchema>>;

export const DEFAULT_METRICS_PORT = 9400;
export const DEFAULT_GRPC_PORT = 8001;

export function loadConfig(env: NodeJS.ProcessEnv = process.env): CliConfig {
  return loadEnvConfig('inferrer start', CliEnvSchema, env, (e) => e);
}
