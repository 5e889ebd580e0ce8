/** The launcher's configuration (`inferrer start`): the only reader of process.env in the CLI. */
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { envFlag, loadEnvConfig } from '@inferrer/telemetry';

export const CliEnvSchema = z
  .object({
    HOST: z.string().default('127.0.0.1'),
    PORT: z.coerce.number().int().min(0).max(65535).default(8002),
    /** Modelhost processes; one per core by default. */
    MODELHOSTS: z.coerce.number().int().min(1).max(64).default(Math.max(1, os.availableParallelism?.() ?? os.cpus().length)),
    MODEL_DIR: z.string().default(path.resolve('.inferrer', 'models')),
    /** nginx when installed (auto), or force one. */
    BALANCER: z.enum(['auto', 'nginx', 'builtin']).default('auto'),
    /** least_conn, or hash: consistent hash on the model name. */
    BALANCE: z.enum(['least_conn', 'hash']).default('least_conn'),
    SEED_DEMO_MODELS: envFlag().default(true),
    /** Passed on to the Inferrer; without either, the demo starts with auth off and says so. */
    API_KEYS_FILE: z.string().min(1).optional(),
    AUTH_DISABLED: envFlag().optional(),
    /**
     * The metrics service (status page, /api/v1/stats, cluster metrics for Prometheus); 0 picks a free port.
     * Unset: 9400, or a free port when another program holds 9400.
     */
    METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
    /** `inferrer jobs …`: the Inferrer to talk to (default http://127.0.0.1:PORT) and the API key to send. */
    INFERRER_URL: z.url({ protocol: /^https?$/ }).optional(),
    INFERRER_API_KEY: z.string().min(1).optional(),
  })
  .strict();

export type CliConfig = Readonly<z.infer<typeof CliEnvSchema>>;

export const CLI_ENV = Object.keys(CliEnvSchema.shape);
export const DEFAULT_METRICS_PORT = 9400;

export function loadConfig(env: NodeJS.ProcessEnv = process.env): CliConfig {
  return loadEnvConfig('inferrer start', CliEnvSchema, env, (e) => e);
}
