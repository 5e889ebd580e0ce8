/**
 * A benchmark cluster: the real launcher (services/cli/src/launcher.ts) on 127.0.0.1 with a fresh model
 * store in a temp folder, the demo models seeded and the bench's own models put in beside them. Service
 * log lines at warn or above are kept (they often explain a bad figure); batch statistics come from each
 * modelhost's /metrics.
 */
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ModelConfig } from '@inferrer/model-store';
import { ModelStore } from '@inferrer/model-store';
import { inspectModel } from '@inferrer/runtime';
import { type Cluster, startCluster } from '../../services/cli/src/launcher.ts';

export interface BenchModel {
  name: string;
  file: string;
  description: string;
  config: ModelConfig;
  /** A STAC MLM item (images in, labels out). */
  stac?: unknown;
}

export interface BenchClusterOptions {
  modelhosts: number;
  models: BenchModel[];
  /** A store filled already (kept when the cluster stops); else a fresh one with the demo models and `models`. */
  modelDir?: string;
  balance?: 'least_conn' | 'placement' | 'hash';
  /** Run the metrics service (default true). */
  metrics?: boolean;
  modelhostEnv?: Record<string, string>;
  inferrerEnv?: Record<string, string>;
  /** Serve gRPC too, on a free port (cluster.grpcAddress). */
  grpc?: boolean;
}

export interface BenchCluster {
  cluster: Cluster;
  url: string;
  /** Log lines at warn or above, and lines that are not JSON (nginx, crashes), by service. */
  notable: { service: string; line: string }[];
  stop(): Promise<void>;
}

const MAX_NOTABLE = 200;
const running = new Set<BenchCluster>();

/** Stops every cluster still running (on SIGINT/SIGTERM of the bench). */
export async function stopAllClusters(): Promise<void> {
  await Promise.all([...running].map((c) => c.stop()));
}

export async function startBenchCluster(opts: BenchClusterOptions): Promise<BenchCluster> {
  const modelDir = opts.modelDir ?? (await mkdtemp(path.join(os.tmpdir(), 'inferrer-bench-models-')));
  const store = new ModelStore(modelDir, { validate: (file) => inspectModel(file) });
  await store.init();
  for (const m of opts.models) {
    const staged = path.join(await store.stagingDir(), 'model.onnx');
    await copyFile(m.file, staged);
    await store.put(m.name, staged, { description: m.description, config: m.config, ...(m.stac ? { stac: m.stac } : {}) });
  }
  const notable: BenchCluster['notable'] = [];
  const recent: string[] = [];
  // Warnings while the cluster starts (a scrape before a modelhost listens, open-API notices) are not
  // about the figures; they are shown only if the start fails.
  let ready = false;
  const sink = (service: string, line: string): void => {
    recent.push(`${service}: ${line.slice(0, 600)}`);
    if (recent.length > 40) recent.shift();
    if (!ready || notable.length >= MAX_NOTABLE) return;
    let level = 'warn';
    try {
      level = String((JSON.parse(line) as { level?: string }).level ?? 'warn');
    } catch {
      // not a JSON line: keep it
    }
    if (level === 'warn' || level === 'error') notable.push({ service, line: line.slice(0, 400) });
  };
  const runDir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-bench-run-'));
  const cleanup = async (): Promise<void> => {
    if (!opts.modelDir) await rm(modelDir, { recursive: true, force: true });
    await rm(runDir, { recursive: true, force: true });
  };
  const cluster = await startCluster({
    host: '127.0.0.1',
    port: 0,
    modelhosts: opts.modelhosts,
    modelDir,
    balancer: 'auto',
    balance: opts.balance ?? 'least_conn',
    seedDemo: opts.modelDir === undefined,
    metrics: opts.metrics ?? true,
    env: { ...process.env, LOG_LEVEL: 'warn', NGINX_ACCESS_LOG: 'off' },
    // Every load-generator connection comes from 127.0.0.1: the per-IP rate limit (a guard against one
    // abusive client, 10 000 req/s by default) would cap the figures, so it is off here (the naive server has none).
    inferrerEnv: { RATE_LIMIT_IP_RPS: '0', ...opts.inferrerEnv },
    ...(opts.modelhostEnv ? { modelhostEnv: opts.modelhostEnv } : {}),
    ...(opts.grpc ? { grpcPort: 0 } : {}),
    sink,
    restart: false,
    readyTimeoutMs: 180_000,
    runDir,
  }).catch(async (err: unknown) => {
    await cleanup();
    throw new Error(`${(err as Error).message}\nlast service log lines:\n  ${recent.join('\n  ')}`, { cause: err });
  });
  ready = true;
  let stopping: Promise<void> | undefined;
  const bc: BenchCluster = {
    cluster,
    url: cluster.url,
    notable,
    stop() {
      stopping ??= (async () => {
        await cluster.stop();
        running.delete(bc);
        await cleanup();
      })();
      return stopping;
    },
  };
  running.add(bc);
  return bc;
}

export interface BatchStats {
  /** Executed batches and the rows in them, summed over every modelhost. */
  batches: number;
  rows: number;
  requests: number;
  /** Requests per modelhost (shows the balancing). */
  perModelhost: Record<string, number>;
}

/** Sums modelhost_batch_size and modelhost_requests_total{code="OK"} for `model` over every modelhost. */
export async function batchStats(bc: BenchCluster, model: string): Promise<BatchStats> {
  const out: BatchStats = { batches: 0, rows: 0, requests: 0, perModelhost: {} };
  for (const m of bc.cluster.modelhosts) {
    const text = await (await fetch(`${m.url}/metrics`)).text();
    const pick = (metric: string, extra = ''): number => {
      let sum = 0;
      for (const line of text.split('\n')) {
        if (!line.startsWith(`${metric}{`) || !line.includes(`model="${model}"`) || (extra && !line.includes(extra))) continue;
        sum += Number(line.slice(line.lastIndexOf(' ') + 1));
      }
      return sum;
    };
    out.batches += pick('modelhost_batch_size_count');
    out.rows += pick('modelhost_batch_size_sum');
    const requests = pick('modelhost_requests_total', 'code="OK"');
    out.requests += requests;
    out.perModelhost[m.id] = requests;
  }
  return out;
}

export function diffStats(after: BatchStats, before: BatchStats): BatchStats {
  const perModelhost: Record<string, number> = {};
  for (const k of Object.keys(after.perModelhost)) perModelhost[k] = after.perModelhost[k]! - (before.perModelhost[k] ?? 0);
  return { batches: after.batches - before.batches, rows: after.rows - before.rows, requests: after.requests - before.requests, perModelhost };
}

/** Root pids of the cluster's services, for cpuSeconds(). */
export function clusterPids(bc: BenchCluster): Record<string, number | undefined> {
  const out: Record<string, number | undefined> = { inferrer: bc.cluster.inferrer.pid, balancer: bc.cluster.balancer.process.pid };
  for (const m of bc.cluster.modelhosts) out[m.id] = m.process.pid;
  if (bc.cluster.metrics) out.metrics = bc.cluster.metrics.process.pid;
  return out;
}
