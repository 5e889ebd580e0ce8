/**
 * Starts a real cluster for an e2e suite: Inferrer + modelhosts + load balancer (nginx when installed,
 * as in CI) on 127.0.0.1, with the demo models in a fresh temporary store. Logs are kept in memory so a
 * test can read them, and printed when the suite fails.
 */
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type Cluster, type ClusterOptions, startCluster } from '../../services/cli/src/launcher.ts';

export const REPO = path.resolve(import.meta.dirname, '..', '..');
export const FIXTURES = path.join(REPO, 'test', 'fixtures', 'models');
export const DEMO = path.join(REPO, 'models', 'demo');

export interface TestCluster extends Cluster {
  logs: { name: string; line: string }[];
  /** Parsed JSON log lines of one service. */
  jsonLogs(name: string): Record<string, unknown>[];
  close(): Promise<void>;
}

export async function startTestCluster(opts: Partial<ClusterOptions> = {}): Promise<TestCluster> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-e2e-'));
  const logs: { name: string; line: string }[] = [];
  const started = startCluster({
    host: '127.0.0.1',
    port: 0,
    modelhosts: 2,
    modelDir: path.join(dir, 'models'),
    runDir: path.join(dir, 'run'),
    balancer: (process.env.E2E_BALANCER as ClusterOptions['balancer'] | undefined) ?? 'auto',
    balance: 'least_conn',
    seedDemo: true,
    restart: true,
    readyTimeoutMs: 60_000,
    ...opts,
    inferrerEnv: { AUTH_DISABLED: 'true', ...(opts.inferrerEnv ?? {}) },
    // Models run 1 slot × 1 thread with batches of up to 32 unless a test says otherwise: a plan measured
    // at load would depend on how busy the machine is (test/e2e/execution-plan.test.ts measures one).
    env: { ...process.env, LOG_LEVEL: 'info', WATCH_INTERVAL_MS: '200', PLAN_MEASURE_MS: '0', ...(opts.env ?? {}) },
    sink: (name, line) => {
      logs.push({ name, line });
      if (logs.length > 50_000) logs.splice(0, 10_000);
    },
  });
  let cluster: Cluster;
  try {
    cluster = await started;
  } catch (err) {
    // No cluster, so no suite prints its logs: what each service said before it did not come up goes to stderr.
    const tail = logs.slice(-80).map((l) => `  ${l.name}: ${l.line}`);
    process.stderr.write(`the cluster did not start (${(err as Error).message}); its last log lines:\n${tail.join('\n') || '  (none)'}\n`);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    ...cluster,
    logs,
    jsonLogs(name: string) {
      return logs
        .filter((l) => l.name === name && l.line.startsWith('{'))
        .map((l) => {
          try {
            return JSON.parse(l.line) as Record<string, unknown>;
          } catch {
            return {};
          }
        });
    },
    async close() {
      await cluster.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Every file under the store (except lock and staging leftovers) with its size and content hash-free text. */
export async function snapshotStore(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(dir: string): Promise<void> {
    for (const e of await readdir(dir)) {
      const p = path.join(dir, e);
      const rel = path.relative(root, p);
      if (rel === '.write.lock' || rel.startsWith('.staging') || rel.startsWith('.trash')) continue;
      const s = await stat(p);
      if (s.isDirectory()) await walk(p);
      else out[rel] = e.endsWith('.json') || e === '.generation' ? await readFile(p, 'utf8') : `${s.size} bytes`;
    }
  }
  await walk(root);
  return out;
}

/** The staging area holds nothing once an upload has finished, failed or not. */
export async function stagingLeftovers(root: string): Promise<string[]> {
  return readdir(path.join(root, '.staging')).catch(() => []);
}

export interface JsonAnswer {
  status: number;
  headers: Headers;
  body: any;
}

export async function api(base: string, route: string, init: RequestInit & { json?: unknown } = {}): Promise<JsonAnswer> {
  const { json, ...rest } = init;
  const res = await fetch(`${base}${route}`, {
    ...rest,
    ...(json !== undefined
      ? { body: JSON.stringify(json), method: rest.method ?? 'POST', headers: { 'content-type': 'application/json', ...(rest.headers ?? {}) } }
      : {}),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, headers: res.headers, body };
}

export async function uploadModel(base: string, name: string, file: string, metadata?: unknown, key?: string): Promise<JsonAnswer> {
  const form = new FormData();
  form.append('path', new Blob([await readFile(file)]), path.basename(file));
  if (metadata !== undefined) form.append('metadata', JSON.stringify(metadata));
  return api(base, `/api/v1/models/${name}`, { method: 'PUT', body: form, ...(key ? { headers: { authorization: `Bearer ${key}` } } : {}) });
}

/** Runs `fn` concurrently `concurrency` times in a loop until `stop()` is true; counts outcomes by label. */
export async function steadyLoad(concurrency: number, fn: () => Promise<string>, stop: () => boolean): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (!stop()) {
        let label: string;
        try {
          label = await fn();
        } catch (err) {
          label = `error: ${(err as Error).message}`;
        }
        counts[label] = (counts[label] ?? 0) + 1;
      }
    }),
  );
  return counts;
}

/** Waits until `url` (a modelhost, or the Inferrer) answers /health/ready again, e.g. after a restart. */
export async function waitReady(url: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      if ((await fetch(`${url}/health/ready`)).ok) return;
    } catch {
      // not listening yet (restarting)
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not come back within ${ms} ms`);
}
