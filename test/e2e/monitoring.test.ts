/**
 * Monitoring end to end, against a real cluster (Inferrer + 2 modelhosts + nginx + metrics service):
 * every service's /metrics, the metrics service's per-model summary (and the Inferrer's copy of it), a
 * real Prometheus scraping the cluster (the modelhosts found through the metrics service's HTTP service
 * discovery), the Grafana dashboard's queries against what the services export and against that
 * Prometheus, the access log lines that follow one request id through every service, and the status page
 * rendered in headless Chromium.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { freePort } from '../../services/cli/src/launcher.ts';
import { DEMO, REPO, type TestCluster, api, startTestCluster, uploadModel } from '../helpers/cluster.ts';

const PROMETHEUS = ['/usr/bin/prometheus', '/usr/local/bin/prometheus'].find((p) => existsSync(p)) ?? 'prometheus';
/** Without Prometheus (a machine with only Node), its tests skip and say why; CI installs it (.ci/run). */
const NO_PROMETHEUS = spawnSync(PROMETHEUS, ['--version']).status === 0 ? false : 'Prometheus is not installed (apt-get install prometheus; .ci/run does)';
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const DASHBOARD = path.join(REPO, 'grafana', 'provisioning', 'dashboards', 'inferrer', 'cluster.json');
const TRAFFIC = 60;

let c: TestCluster;
let prom: ChildProcess | undefined;
let promUrl = '';
let tmp = '';
const promLog: string[] = [];

async function startPrometheus(): Promise<void> {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'inferrer-prom-'));
  // prometheus.local.yml, pointed at this cluster's ports and scraping every second.
  const cfg = parse(await readFile(path.join(REPO, 'prometheus', 'prometheus.local.yml'), 'utf8')) as any;
  const host = (u: string): string => new URL(u).host;
  cfg.global.scrape_interval = '1s';
  cfg.global.evaluation_interval = '1s';
  cfg.rule_files = [path.join(REPO, 'prometheus', 'alert_rules.yml')];
  for (const job of cfg.scrape_configs) {
    if (job.job_name === 'inferrer') job.static_configs = [{ targets: [host(c.url)] }];
    if (job.job_name === 'metrics') job.static_configs = [{ targets: [host(c.metrics!.url)] }];
    if (job.job_name === 'modelhost') job.http_sd_configs = [{ url: `${c.metrics!.url}/api/v1/targets`, refresh_interval: '1s' }];
  }
  const file = path.join(tmp, 'prometheus.yml');
  await writeFile(file, stringify(cfg));
  const port = await freePort();
  promUrl = `http://127.0.0.1:${port}`;
  prom = spawn(
    PROMETHEUS,
    [`--config.file=${file}`, `--storage.tsdb.path=${path.join(tmp, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  prom.stdout!.on('data', (d: Buffer) => promLog.push(d.toString()));
  prom.stderr!.on('data', (d: Buffer) => promLog.push(d.toString()));
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(`${promUrl}/-/ready`)).ok) return;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`prometheus did not start:\n${promLog.join('')}`);
}

async function promQuery(
  expr: string,
): Promise<{ status: string; error?: string; data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] } }> {
  const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  return (await res.json()) as any;
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

/** Metric names a /metrics page declares (# TYPE), with the series names histograms add. */
async function exported(url: string): Promise<Set<string>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const names = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(m[1]!);
    if (m[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(`${m[1]}${s}`);
    if (m[2] === 'summary') for (const s of ['_sum', '_count']) names.add(`${m[1]}${s}`);
  }
  return names;
}

const predict = (model: string, values: unknown, reqId?: string) =>
  api(c.url, `/api/v1/models/${model}/prediction`, { json: { values }, ...(reqId ? { headers: { 'x-request-id': reqId } } : {}) });

before(async () => {
  // A summary window longer than this file's run: the traffic sent here stays in it, however slow the machine.
  c = await startTestCluster({ metricsEnv: { SCRAPE_INTERVAL_MS: '500', STATS_WINDOW_S: '900' } });
  assert.ok(c.metrics, 'the launcher starts the metrics service');
  if (!NO_PROMETHEUS) await startPrometheus();
  // The summary counts what changed within its window: the traffic goes once the metrics service has a
  // sample of both modelhosts to count from (a scrape after it would miss what came before).
  await until('the metrics service scraping both modelhosts', async () => {
    const s = (await (await fetch(`${c.metrics!.url}/api/v1/stats`)).json()) as { modelhosts: { up: boolean }[] };
    return s.modelhosts.length === 2 && s.modelhosts.every((w) => w.up) ? true : undefined;
  });
  await new Promise((r) => setTimeout(r, 1000));
  await sendTraffic();
  await Promise.all([predict('digits', Array(64).fill(0)), predict('iris', [1, 2, 3])]);
});

/** TRAFFIC iris predictions, ten at a time. */
async function sendTraffic(): Promise<void> {
  for (let i = 0; i < TRAFFIC; i += 10) {
    const answers = await Promise.all(Array.from({ length: 10 }, (_, k) => predict('iris', [5 + (i + k) / 100, 3.4, 1.5, 0.2])));
    for (const a of answers) assert.equal(a.status, 200, JSON.stringify(a.body));
  }
}

after(async () => {
  if (prom && prom.exitCode === null) {
    prom.kill('SIGTERM');
    await new Promise((r) => prom!.once('exit', r));
  }
  if (tmp) await rm(tmp, { recursive: true, force: true });
  await c?.close();
});

describe('every service exports what the issue names', () => {
  test('modelhost, Inferrer and metrics service /metrics', async () => {
    const mh = await exported(c.modelhosts[0]!.url);
    for (const n of [
      'modelhost_requests_total',
      'modelhost_errors_total',
      'modelhost_timeouts_total',
      'modelhost_request_duration_seconds_bucket',
      'modelhost_queue_duration_seconds_bucket',
      'modelhost_compute_duration_seconds_bucket',
      'modelhost_batch_size_bucket',
      'modelhost_queue_depth',
      'modelhost_queue_capacity',
      'modelhost_loaded_models',
      'modelhost_model_load_duration_seconds_bucket',
      'modelhost_model_load_failures_total',
      'modelhost_model_unloads_total',
      'modelhost_sessions_evicted_total',
      'modelhost_process_cpu_seconds_total',
      'modelhost_process_resident_memory_bytes',
      // Many models (issue 18): hit rate, cold-start waits, resident bytes per model, the memory budget and its use.
      'modelhost_model_lookups_total',
      'modelhost_model_load_wait_seconds_bucket',
      'modelhost_model_resident_bytes',
      'modelhost_model_memory_budget_bytes',
      'modelhost_model_memory_used_bytes',
      'modelhost_model_memory_resident_bytes',
    ])
      assert.ok(mh.has(n), `modelhost exports ${n}`);
    const inf = await exported(c.url);
    for (const n of [
      'inferrer_requests_total',
      'inferrer_request_duration_seconds_bucket',
      'inferrer_request_bytes_total',
      'inferrer_response_bytes_total',
      'inferrer_upstream_errors_total',
      'inferrer_process_cpu_seconds_total',
    ]) {
      assert.ok(inf.has(n), `inferrer exports ${n}`);
    }
    const met = await exported(c.metrics!.url);
    // nginx's figures exist only where nginx balances (the built-in balancer has no stub_status).
    const nginxNames = c.balancer.kind === 'nginx' ? ['metrics_nginx_http_requests_total'] : [];
    for (const n of [
      'metrics_cluster_model_requests_per_second',
      'metrics_cluster_model_latency_seconds',
      ...nginxNames,
      'metrics_host_cpu_usage_ratio',
      'metrics_host_gpu_utilization_ratio',
    ]) {
      assert.ok(met.has(n), `metrics service exports ${n}`);
    }
    // Bytes in and out of the predictions just sent.
    const text = await (await fetch(`${c.url}/metrics`)).text();
    const bytes = (name: string): number =>
      Number(new RegExp(`^${name}\\{[^}]*route="/api/v1/models/:name/prediction"[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
    assert.ok(bytes('inferrer_request_bytes_total') > TRAFFIC * 20, `request bytes counted: ${bytes('inferrer_request_bytes_total')}`);
    assert.ok(bytes('inferrer_response_bytes_total') > TRAFFIC * 50, `response bytes counted: ${bytes('inferrer_response_bytes_total')}`);
  });
});

describe('the metrics service summary', () => {
  test('/api/v1/stats: per-model rate, error rate, quantiles, batch size, queue depth, workers; nginx and host', async () => {
    const stats = await until('iris traffic in the summary', async () => {
      const s = (await (await fetch(`${c.metrics!.url}/api/v1/stats`)).json()) as any;
      return s.models.find((m: any) => m.model === 'iris')?.requests >= TRAFFIC + 1 ? s : undefined;
    });
    const iris = stats.models.find((m: any) => m.model === 'iris');
    assert.ok(iris.requests_per_second > 0);
    assert.equal(iris.error_rate, 0, "a 400 is the client's error, not the server's");
    assert.ok(
      iris.latency_seconds.p50 > 0 && iris.latency_seconds.p50 <= iris.latency_seconds.p95 && iris.latency_seconds.p95 <= iris.latency_seconds.p99,
      JSON.stringify(iris.latency_seconds),
    );
    assert.ok(iris.batch_size_mean >= 1);
    assert.equal(iris.queue_depth, 0);
    assert.deepEqual(iris.workers, ['modelhost-1', 'modelhost-2']);
    assert.deepEqual(iris.versions, [1]);
    assert.deepEqual(
      stats.modelhosts.map((w: any) => [w.id, w.up]),
      [
        ['modelhost-1', true],
        ['modelhost-2', true],
      ],
    );
    if (c.balancer.kind === 'nginx') {
      assert.equal(stats.nginx.up, true);
      // Predictions that arrive together reach nginx as one grouped request: it serves one per group.
      const metrics = await (await fetch(`${c.url}/metrics`)).text();
      const groups = Number(/^inferrer_upstream_group_size_count(?:\{[^}]*\})? (\d+)/m.exec(metrics)?.[1]);
      assert.ok(groups > 0 && groups < TRAFFIC, `ten at a time travel in groups: ${groups} upstream requests for ${TRAFFIC} predictions`);
      assert.ok(stats.nginx.requests >= groups, `nginx served the traffic: ${stats.nginx.requests} requests for ${groups} groups`);
    }
    assert.ok(stats.host.cpu_cores >= 1 && stats.host.memory_total_bytes > 0 && stats.host.disk.total_bytes > 0);
  });

  test('the Inferrer passes the summary on at GET /api/v1/metrics in the FRACTAL v1 envelope', async () => {
    const r = await api(c.url, '/api/v1/metrics');
    assert.equal(r.status, 200);
    assert.equal(r.body.http_status.code, 200);
    assert.ok(r.body.metrics.models.some((m: any) => m.model === 'iris' && m.requests > 0));
    assert.equal(r.body.metrics.modelhosts.length, 2);
  });

  test('the same summary as Prometheus metrics', async () => {
    const text = await (await fetch(`${c.metrics!.url}/metrics`)).text();
    assert.match(text, /^metrics_cluster_model_requests_per_second\{model="iris",service="metrics"\} [0-9.]+$/m);
    assert.match(text, /^metrics_cluster_model_latency_seconds\{model="iris",quantile="0.95",service="metrics"\} [0-9.e-]+$/m);
    assert.match(text, /^metrics_cluster_model_loaded_workers\{model="iris",service="metrics"\} 2$/m);
    assert.match(text, /^metrics_cluster_modelhost_up\{modelhost="modelhost-1",service="metrics"\} 1$/m);
  });
});

describe('a real Prometheus scraping the cluster', { skip: NO_PROMETHEUS }, () => {
  test('finds every target (modelhosts through the metrics service) and counts the per-model requests', async () => {
    const targets = await until('all targets up', async () => {
      const r = (await (await fetch(`${promUrl}/api/v1/targets?state=active`)).json()) as any;
      const active = r.data.activeTargets as { labels: Record<string, string>; health: string }[];
      return active.length === 4 && active.every((t) => t.health === 'up') ? active : undefined;
    });
    assert.deepEqual(targets.map((t) => t.labels.job).sort(), ['inferrer', 'metrics', 'modelhost', 'modelhost']);
    // A second wave now that Prometheus scrapes, so rates and increases see it.
    await sendTraffic();
    const count = await until('the request count in Prometheus', async () => {
      const r = await promQuery('sum(modelhost_requests_total{model="iris",code="OK"})');
      const v = Number(r.data?.result[0]?.value[1]);
      return v >= 2 * TRAFFIC ? v : undefined;
    });
    assert.equal(count, 2 * TRAFFIC, `Prometheus counted ${count} successful iris requests`);
  });

  test('answers a latency quantile for the model', async () => {
    const p95 = await until('a p95 latency', async () => {
      const r = await promQuery('histogram_quantile(0.95, sum by (le) (increase(modelhost_request_duration_seconds_bucket{model="iris"}[5m])))');
      const v = Number(r.data?.result[0]?.value[1]);
      return Number.isFinite(v) && v > 0 ? v : undefined;
    });
    assert.ok(p95 > 0 && p95 < 10, `p95 ${p95} s`);
  });

  test('loads the alert rules, and none of them fires on a healthy cluster', async () => {
    const r = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as any;
    const rules = r.data.groups.flatMap((g: any) => g.rules);
    assert.ok(rules.length >= 10, `${rules.length} rules loaded`);
    assert.ok(
      rules.every((x: any) => x.health !== 'err'),
      JSON.stringify(rules.filter((x: any) => x.health === 'err')),
    );
    const firing = rules.filter((x: any) => x.state === 'firing').map((x: any) => x.name);
    assert.deepEqual(firing, []);
  });
});

describe('the Grafana dashboard', () => {
  const exprs = async (): Promise<string[]> => {
    const d = JSON.parse(await readFile(DASHBOARD, 'utf8'));
    return d.panels.flatMap((p: any) => (p.targets ?? []).map((t: any) => t.expr as string));
  };

  test('queries (and the alert rules) use only metric names the running services export', async () => {
    const names = new Set(['up']);
    for (const url of [c.url, c.modelhosts[0]!.url, c.metrics!.url]) for (const n of await exported(url)) names.add(n);
    const keywords = new Set([
      'sum',
      'by',
      'rate',
      'increase',
      'histogram_quantile',
      'absent',
      'count',
      'le',
      'model',
      'code',
      'route',
      'status',
      'reason',
      'job',
      'without',
      'on',
      'and',
      'or',
      'version',
      'group_left',
      'abs',
    ]);
    const dashboard = await exprs();
    assert.ok(dashboard.length >= 20, `${dashboard.length} queries`);
    const rules = (
      parse(await readFile(path.join(REPO, 'prometheus', 'alert_rules.yml'), 'utf8')) as { groups: { rules: { expr: string }[] }[] }
    ).groups.flatMap((g) => g.rules.map((r) => r.expr));
    const list = [...dashboard, ...rules];
    const unknown: string[] = [];
    for (const e of list) {
      const stripped = e
        .replace(/\{[^}]*\}/g, '')
        .replace(/\[[^\]]*\]/g, '')
        .replace(/by \([^)]*\)/g, '');
      for (const m of stripped.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
        const n = m[0];
        if (keywords.has(n) || /^\d/.test(n)) continue;
        if (c.balancer.kind !== 'nginx' && n.startsWith('metrics_nginx_')) continue;
        if (!names.has(n)) unknown.push(`${n} (in ${e})`);
      }
    }
    assert.deepEqual(unknown, []);
  });

  test('every query runs in Prometheus, and the per-model ones return the traffic', { skip: NO_PROMETHEUS }, async () => {
    for (const e of await exprs()) {
      const q = e.replaceAll('$__rate_interval', '1m').replaceAll('$__range', '5m').replaceAll('$model', '.+');
      const r = await promQuery(q);
      assert.equal(r.status, 'success', `${q}: ${r.error}`);
    }
    const throughput = await promQuery('sum by (model) (rate(modelhost_requests_total{model=~".+",code="OK"}[1m]))');
    assert.ok(throughput.data!.result.some((s) => s.metric.model === 'iris' && Number(s.value[1]) > 0));
  });
});

describe('logs follow a request id through every service', () => {
  test('one access line at the Inferrer, one inference line at the modelhost, one at nginx', async () => {
    const reqId = `monitoring-${Date.now()}`;
    const a = await predict('iris', [6.1, 2.8, 4.7, 1.2], reqId);
    assert.equal(a.status, 200);
    const lines = await until(
      'log lines with the request id',
      async () => {
        const inferrer = c.jsonLogs('inferrer').filter((l) => l.reqId === reqId && l.module === 'access');
        const modelhost = c.modelhosts.flatMap((m) => c.jsonLogs(m.id)).filter((l) => l.reqId === reqId && l.msg === 'inference');
        const nginx = c.balancer.kind === 'nginx' ? c.jsonLogs('nginx').filter((l) => l.reqId === reqId) : [{}];
        return inferrer.length && modelhost.length && nginx.length ? { inferrer, modelhost, nginx } : undefined;
      },
      5000,
    );
    assert.equal(lines.inferrer.length, 1);
    assert.equal(lines.modelhost.length, 1);
    const acc = lines.inferrer[0]!;
    assert.equal(acc.level, 'info');
    assert.equal(acc.service, 'inferrer');
    assert.equal(acc.model, 'iris');
    assert.equal(acc.version, 1);
    assert.equal(acc.status, 200);
    assert.equal(typeof acc.ms, 'number');
    assert.equal(typeof acc.time, 'string');
    assert.match(String(acc.modelhost), /^modelhost-\d$/);
    const inf = lines.modelhost[0]!;
    assert.equal(inf.service, 'modelhost');
    assert.equal(inf.model, 'iris');
    assert.equal(inf.version, 1);
    assert.equal(inf.status, 200);
    assert.equal(inf.modelhost, acc.modelhost, 'the Inferrer names the worker that served it');
    if (c.balancer.kind === 'nginx') {
      const ng = lines.nginx[0]!;
      assert.equal(ng.level, 'info');
      assert.equal(ng.status, 200);
      assert.equal(typeof ng.ms, 'number', 'nginx times in milliseconds, as numbers');
      assert.equal(typeof ng.upstreamMs, 'number');
      assert.ok(
        // nginx rounds each time to the millisecond on its own: the request's may show 1 ms under the upstream's.
        (ng.ms as number) + 1 >= (ng.upstreamMs as number) && (ng.ms as number) <= (acc.ms as number) + 1,
        `nginx ms ${ng.ms} within the Inferrer's ${acc.ms}`,
      );
      assert.equal(ng.modelhost, acc.modelhost);
    }
  });

  test('a refused request: one access line per service at info, naming its status, error code, model, version and worker', async () => {
    const reqId = `monitoring-bad-${Date.now()}`;
    const a = await predict('iris', [1, 2], reqId);
    assert.equal(a.status, 400);
    const acc = await until('the access line', async () => c.jsonLogs('inferrer').find((x) => x.reqId === reqId && x.module === 'access'), 5000);
    const modelhostLines = (): Record<string, unknown>[] => c.modelhosts.flatMap((m) => c.jsonLogs(m.id)).filter((x) => x.reqId === reqId);
    const inf = await until('the inference line', async () => modelhostLines().find((x) => x.msg === 'inference'), 5000);
    await new Promise((r) => setTimeout(r, 300));
    const infoLines = {
      inferrer: c.jsonLogs('inferrer').filter((x) => x.reqId === reqId && x.level === 'info'),
      modelhost: modelhostLines().filter((x) => x.level === 'info'),
    };
    for (const [service, lines] of Object.entries(infoLines)) assert.equal(lines.length, 1, `${service}: one line at info (${JSON.stringify(lines)})`);
    assert.equal(acc.status, 400);
    assert.equal(acc.error, 'INVALID_INPUT');
    assert.equal(acc.model, 'iris');
    assert.match(String(acc.modelhost), /^modelhost-\d$/, 'the worker that refused it');
    assert.ok(!('version' in acc) || typeof acc.version === 'number', 'no null fields');
    assert.ok(!Object.values(acc).includes(null), `no null fields: ${JSON.stringify(acc)}`);
    assert.equal(inf.status, 400);
    assert.equal(inf.error, 'INVALID_INPUT');
    assert.ok(!Object.values(inf).includes(null), `no null fields: ${JSON.stringify(inf)}`);
  });
});

/** Predicts until the model answers 503 (the workers notice an unload within WATCH_INTERVAL_MS). */
async function until503(model: string): Promise<void> {
  await until(`${model} answers 503`, async () => ((await predict(model, [5.1, 3.5, 1.4, 0.2])).status === 503 ? true : undefined), 10_000);
}

describe('the status page', () => {
  test("headless Chromium: charts start with the service's history, on a time axis, with tooltips; 4xx and 5xx apart", async (t) => {
    if (!existsSync(CHROMIUM)) {
      t.skip(`no Chromium at ${CHROMIUM} (apt-get install chromium)`);
      return;
    }
    // Before the page exists: iris refuses bad input (4xx); "canary" is uploaded, served, then unloaded,
    // so its requests fail with 503 MODEL_NOT_READY (5xx), counted under its name.
    assert.equal((await uploadModel(c.url, 'canary', path.join(DEMO, 'iris.onnx'))).status, 201);
    for (let i = 0; i < 5; i++) assert.equal((await predict('canary', [5.1, 3.5, 1.4, 0.2])).status, 200);
    assert.equal((await api(c.url, '/v2/repository/models/canary/unload', { method: 'POST' })).status, 200);
    await until503('canary');
    for (let i = 0; i < 20; i++) {
      assert.equal((await predict('iris', [1, 2])).status, 400);
      assert.equal((await predict('canary', [5.1, 3.5, 1.4, 0.2])).status, 503);
      await predict('iris', [5.9, 3.0, 5.1, 1.8]);
    }
    // The service's history holds both kinds of failure before the page loads.
    await until('4xx and 5xx in the history', async () => {
      const h = (await (await fetch(`${c.metrics!.url}/api/v1/history`)).json()) as any;
      const max = (xs: (number | null)[] | undefined): number => Math.max(0, ...(xs ?? []).map((x) => x ?? 0));
      return max(h.models.iris?.client_errors_per_second) > 0 && max(h.models.canary?.errors_per_second) > 0 ? h : undefined;
    });
    const loadedAt = Date.now() / 1000;

    const { chromium } = await import('playwright-core');
    const profile = await mkdtemp(path.join(os.tmpdir(), 'inferrer-chromium-'));
    // A fresh profile (--user-data-dir) each run; playwright passes it on.
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1800, height: 1200 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    try {
      const page = await browser.newPage();
      const failed: string[] = [];
      page.on('requestfailed', (r) => failed.push(r.url()));
      page.on('pageerror', (e) => failed.push(String(e)));
      await page.goto(`${c.metrics!.url}/?interval=300`);
      await page.waitForFunction('window.inferrerStatus && window.inferrerStatus.historyUpdates >= 2 && window.inferrerStatus.updates >= 1', undefined, {
        timeout: 20_000,
      });
      // What each chart holds, read from the chart library (a string, not a function: tsx would add
      // helpers the page does not have).
      const charts = (await page.evaluate(`(() => {
        const out = {};
        for (const [name, chart] of Object.entries(window.inferrerStatus.charts)) {
          const u = chart.u;
          if (!u) { out[name] = null; continue; }
          const series = {};
          u.series.slice(1).forEach((s, i) => { series[s.label] = u.data[i + 1]; });
          out[name] = { time: u.data[0], timeScale: u.scales.x.time, xTicks: u.axes[0]._values || [], series };
        }
        return out;
      })()`)) as Record<string, { time: number[]; timeScale: boolean; xTicks: string[]; series: Record<string, (number | null)[]> } | null>;
      /** Largest value a series had at points from before the page loaded. */
      const before = (chart: string, series: string): number => {
        const ch = charts[chart];
        assert.ok(ch, `chart ${chart} is drawn`);
        const values = ch.series[series];
        assert.ok(values, `chart ${chart} has a series ${series}: ${Object.keys(ch.series).join(', ')}`);
        return Math.max(0, ...ch.time.flatMap((tm, i) => (tm < loadedAt ? [values[i] ?? 0] : [])));
      };
      const req = charts.requests!;
      assert.ok(
        req.time.filter((tm) => tm < loadedAt).length >= 5,
        `points from before the page loaded: ${req.time.length} points, from ${req.time[0]} (loaded at ${loadedAt})`,
      );
      assert.ok(before('requests', 'iris') > 0, 'the iris traffic sent before the page loaded is on the chart');
      assert.equal(req.timeScale, true, 'x is a time scale');
      assert.ok(req.xTicks.length >= 2 && req.xTicks.every((v) => /^\d{2}:\d{2}(:\d{2})?$/.test(v)), `time axis labels: ${JSON.stringify(req.xTicks)}`);
      // 4xx and 5xx are separate series: iris's refusals only in the first, canary's failures only in the second.
      assert.ok(before('clientErrors', 'iris') > 0, '4xx of iris');
      assert.equal(before('clientErrors', 'canary'), 0, 'canary had no 4xx');
      assert.ok(before('serverErrors', 'canary') > 0, '5xx of canary (MODEL_NOT_READY, counted under its name)');
      assert.equal(before('serverErrors', 'iris'), 0, 'iris had no 5xx');
      assert.ok(charts.cpu && Object.keys(charts.cpu.series).length === 1, 'host CPU chart');
      // The line is really drawn: pixels in iris's colour on the requests chart's canvas.
      const drawn = (await page.evaluate(`(() => {
        const canvas = document.querySelector('#chart-requests canvas');
        const hex = window.TimeChart.colorOf('iris');
        const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let n = 0;
        for (let i = 0; i < data.length; i += 4) if (Math.abs(data[i] - r) < 8 && Math.abs(data[i + 1] - g) < 8 && Math.abs(data[i + 2] - b) < 8) n++;
        return n;
      })()`)) as number;
      assert.ok(drawn > 100, `iris line drawn: ${drawn} pixels`);
      // A tooltip follows the cursor: the time and each model's value there.
      const over = (await page.$('#chart-requests .u-over'))!;
      const box = (await over.boundingBox())!;
      await page.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2);
      const tip = page.locator('#chart-requests .chart-tip');
      await tip.waitFor({ state: 'visible', timeout: 5000 });
      const tipText = (await tip.textContent()) ?? '';
      assert.match(tipText, /\d{1,2}:\d{2}:\d{2}/, `tooltip names the time: ${tipText}`);
      assert.match(tipText, /iris: [\d.]+ req\/s/, `tooltip gives iris's rate: ${tipText}`);
      // The table: 4xx and 5xx columns apart.
      const rows = await page.$$eval('#models tbody tr', (trs) => trs.map((r) => Array.from(r.querySelectorAll('td')).map((td) => td.textContent ?? '')));
      const heads = await page.$$eval('#models thead th', (ths) => ths.map((th) => th.textContent));
      const col = (name: string): number => heads.indexOf(name);
      const iris = rows.find((r) => r[0] === 'iris')!;
      const canary = rows.find((r) => r[0] === 'canary')!;
      assert.ok(parseFloat(iris[col('4xx')]!) > 0 && parseFloat(iris[col('5xx')]!) === 0, `iris: ${JSON.stringify(iris)}`);
      assert.ok(parseFloat(canary[col('5xx')]!) > 0 && parseFloat(canary[col('4xx')]!) === 0, `canary: ${JSON.stringify(canary)}`);
      assert.equal(iris[col('loaded on')], 'modelhost-1, modelhost-2');
      const workers = await page.$$eval('#workers tbody tr', (trs) => trs.map((r) => r.querySelector('.up')?.textContent));
      assert.deepEqual(workers, ['up', 'up']);
      const shot = process.env.STATUS_PAGE_SCREENSHOT ?? path.join(os.tmpdir(), 'inferrer-status-page.png');
      await page.screenshot({ path: shot, fullPage: true });
      t.diagnostic(`screenshot: ${shot}`);
      assert.deepEqual(failed, [], 'the page loads nothing from elsewhere and throws nothing');
    } finally {
      await browser.close();
      await rm(profile, { recursive: true, force: true });
    }
  });
});

describe("a model's series live as long as the model", () => {
  const seriesOf = async (url: string, model: string): Promise<string[]> =>
    (await (await fetch(`${url}/metrics`)).text()).split('\n').filter((l) => l.includes(`model="${model}"`));

  test('unloaded: only its MODEL_NOT_READY refusals stay, counted under its name; deleted: gone from every /metrics and from Prometheus', async () => {
    // canary was served, then unloaded (the status page test).
    for (const m of c.modelhosts) {
      await until(`${m.id} drops canary's served series`, async () =>
        (await seriesOf(m.url, 'canary')).every((x) => x.includes('code="MODEL_NOT_READY"')) ? true : undefined,
      );
    }
    const all = (await Promise.all(c.modelhosts.map((m) => fetch(`${m.url}/metrics`).then((r) => r.text())))).join('\n');
    assert.match(all, /^modelhost_requests_total\{model="canary",version="",code="MODEL_NOT_READY"[^}]*\} [1-9]/m);
    assert.match(all, /^modelhost_errors_total\{model="canary",version="",code="MODEL_NOT_READY"[^}]*\} [1-9]/m);
    assert.doesNotMatch(all, /^modelhost_(requests|errors)_total\{model="",[^}]*code="MODEL_NOT_READY"/m, 'no MODEL_NOT_READY under model=""');

    const del = await api(c.url, '/api/v1/models/canary', { method: 'DELETE' });
    assert.equal(del.status, 200);
    for (const m of c.modelhosts)
      await until(`${m.id} drops every canary series`, async () => ((await seriesOf(m.url, 'canary')).length === 0 ? true : undefined));
    await until('the metrics service drops canary', async () => {
      const stats = (await (await fetch(`${c.metrics!.url}/api/v1/stats`)).json()) as any;
      return !stats.models.some((m: any) => m.model === 'canary') && (await seriesOf(c.metrics!.url, 'canary')).length === 0 ? true : undefined;
    });
    assert.ok((await seriesOf(c.metrics!.url, 'iris')).length > 0, 'other models stay');
    if (!NO_PROMETHEUS) {
      // Gone from the scrapes: Prometheus marks the series stale, so queries (and the model selector's
      // source) stop returning canary.
      await until('Prometheus no longer returns canary', async () => {
        const r = await promQuery('count by (model) ({__name__=~"modelhost_.+|metrics_cluster_model_.+", model!=""})');
        const models = r.data!.result.map((x) => x.metric.model);
        return models.includes('iris') && !models.includes('canary') ? true : undefined;
      });
    }
  });
});
