/**
 * The metrics service's configuration: the only reader of process.env. Parsed once in main.ts; every
 * problem is printed and the process exits non-zero; the result is frozen.
 *
 * Modelhosts are found three ways, all optional and combined:
 *   MODELHOSTS      a fixed list (the local launcher passes http://127.0.0.1:port,…)
 *   MODELHOST_DNS   name:port resolved to every address on each scrape: Docker Swarm's tasks.<service>,
 *                   compose network aliases, or a Kubernetes headless Service (one A record per pod)
 */
import { z } from 'zod';
import { LOG_ENV, envFlag, loadEnvConfig } from '@inferrer/telemetry';

const hostPort = /^[A-Za-z0-9.-]+:\d{1,5}$/;

/** A comma-separated list of modelhost base URLs (a bare host:port means http://host:port). */
const urlList = z
  .string()
  .transform((s) =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean)
      .map((x) => (/^https?:\/\//.test(x) ? x : `http://${x}`).replace(/\/+$/, '')),
  )
  .pipe(z.array(z.url({ protocol: /^https?$/ })).min(1));

const dnsList = z
  .string()
  .transform((s) =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean),
  )
  .pipe(z.array(z.string().regex(hostPort, 'expected name:port, e.g. tasks.modelhost:9001')).min(1));

export const MetricsEnvSchema = z
  .object({
    HOST: z.string().default('0.0.0.0'),
    PORT: z.coerce.number().int().min(0).max(65535).default(9400),
    ...LOG_ENV,
    MODELHOSTS: urlList.optional(),
    MODELHOST_DNS: dnsList.optional(),
    /** nginx's stub_status page (the balancer serves it at /nginx/status); unset: no nginx metrics. */
    NGINX_STATUS_URL: z.url({ protocol: /^https?$/ }).optional(),
    /** How often modelhosts, nginx and the host are read. */
    SCRAPE_INTERVAL_MS: z.coerce.number().int().min(100).max(600_000).default(5000),
    /** Window over which rates, error ratios and quantiles are computed. */
    STATS_WINDOW_S: z.coerce.number().int().min(1).max(3600).default(60),
    /** How much of the per-model summary is kept in memory for the status page (GET /api/v1/history); 0: none. */
    HISTORY_S: z.coerce.number().int().min(0).max(86_400).default(900),
    /** Per-scrape HTTP timeout. */
    SCRAPE_TIMEOUT_MS: z.coerce.number().int().min(50).max(60_000).default(2000),
    /** Host metrics (CPU, memory, disk, load, network; GPU through nvidia-smi where present). */
    HOST_METRICS: envFlag().default(true),
    /** The file system whose free space is reported. */
    DISK_PATH: z.string().min(1).default('/'),
    /** nvidia-smi to ask for GPU figures; "off" disables. Missing binary: no GPU metrics, no error. */
    NVIDIA_SMI: z.string().min(1).default('nvidia-smi'),
    /** Sliding window of drift scores (longer than STATS_WINDOW_S: drift needs hundreds of rows). */
    DRIFT_WINDOW_S: z.coerce
      .number()
      .int()
      .min(1)
      .max(7 * 86_400)
      .default(900),
    /** Rows a window needs before features get a score ("too few samples" below). A model's config.drift overrides these. */
    DRIFT_MIN_SAMPLES: z.coerce.number().int().min(1).default(200),
    DRIFT_PSI_WARNING: z.coerce.number().min(0).default(0.1),
    DRIFT_PSI_CRITICAL: z.coerce.number().min(0).default(0.25),
    DRIFT_Z_WARNING: z.coerce.number().min(0).default(0.5),
    DRIFT_Z_CRITICAL: z.coerce.number().min(0).default(1),
  })
  .strict();

export type MetricsConfig = Readonly<{
  host: string;
  port: number;
  logLevel: 'error' | 'warn' | 'info' | 'debug';
  logFormat: 'json' | 'pretty';
  modelhosts: string[];
  modelhostDns: { name: string; port: number }[];
  nginxStatusUrl: string | undefined;
  scrapeIntervalMs: number;
  statsWindowS: number;
  historyS: number;
  scrapeTimeoutMs: number;
  hostMetrics: boolean;
  diskPath: string;
  nvidiaSmi: string | undefined;
  driftWindowS: number;
  driftDefaults: { psiWarning: number; psiCritical: number; zWarning: number; zCritical: number; minSamples: number };
}>;

/** Env names this service reads; a test checks compose/swarm/k8s files against them. */
export const METRICS_ENV = Object.keys(MetricsEnvSchema.shape);

export function loadConfig(env: NodeJS.ProcessEnv = process.env): MetricsConfig {
  return loadEnvConfig('metrics', MetricsEnvSchema, env, (e) => ({
    host: e.HOST,
    port: e.PORT,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    modelhosts: e.MODELHOSTS ?? [],
    modelhostDns: (e.MODELHOST_DNS ?? []).map((hp) => {
      const i = hp.lastIndexOf(':');
      return { name: hp.slice(0, i), port: Number(hp.slice(i + 1)) };
    }),
    nginxStatusUrl: e.NGINX_STATUS_URL,
    scrapeIntervalMs: e.SCRAPE_INTERVAL_MS,
    statsWindowS: e.STATS_WINDOW_S,
    historyS: e.HISTORY_S,
    scrapeTimeoutMs: e.SCRAPE_TIMEOUT_MS,
    hostMetrics: e.HOST_METRICS,
    diskPath: e.DISK_PATH,
    nvidiaSmi: e.NVIDIA_SMI === 'off' ? undefined : e.NVIDIA_SMI,
    driftWindowS: e.DRIFT_WINDOW_S,
    driftDefaults: {
      psiWarning: e.DRIFT_PSI_WARNING,
      psiCritical: e.DRIFT_PSI_CRITICAL,
      zWarning: e.DRIFT_Z_WARNING,
      zCritical: e.DRIFT_Z_CRITICAL,
      minSamples: e.DRIFT_MIN_SAMPLES,
    },
  }));
}
