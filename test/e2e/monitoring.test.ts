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
import { REPO, type TestCluster, api, startTestCluster } from '../helpers/cluster.ts';

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
  prom = spawn(PROMETHEUS, [`--config.file=${file}`, `--storage.tsdb.path=${path.join(tmp, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
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

async function promQuery(expr: string): Promise<{ status: string; error?: string; data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] } }> {
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
  c = await startTestCluster({ metricsEnv: { SCRAPE_INTERVAL_MS: '500' } });
  assert.ok(c.metrics, 'the launcher starts the metrics service');
  if (!NO_PROMETHEUS) await startPrometheus();
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
      'modelhost_requests_total', 'modelhost_errors_total', 'modelhost_timeouts_total', 'modelhost_request_duration_seconds_bucket',
      'modelhost_queue_duration_seconds_bucket', 'modelhost_compute_duration_seconds_bucket', 'modelhost_batch_size_bucket', 'modelhost_queue_depth',
      'modelhost_queue_capacity', 'modelhost_loaded_models', 'modelhost_model_load_duration_seconds_bucket', 'modelhost_model_load_failures_total',
      'modelhost_model_unloads_total', 'modelhost_sessions_evicted_total', 'modelhost_process_cpu_seconds_total', 'modelhost_process_resident_memory_bytes',
    ]) assert.ok(mh.has(n), `modelhost exports ${n}`);
    const inf = await exported(c.url);
    for (const n of ['inferrer_requests_total', 'inferrer_request_duration_seconds_bucket', 'inferrer_request_bytes_total', 'inferrer_response_bytes_total', 'inferrer_upstream_errors_total', 'inferrer_process_cpu_seconds_total']) {
      assert.ok(inf.has(n), `inferrer exports ${n}`);
    }
    const met = await exported(c.metrics!.url);
    // nginx's figures exist only where nginx balances (the built-in balancer has no stub_status).
    const nginxNames = c.balancer.kind === 'nginx' ? ['metrics_nginx_http_requests_total'] : [];
    for (const n of ['metrics_cluster_model_requests_per_second', 'metrics_cluster_model_latency_seconds', ...nginxNames, 'metrics_host_cpu_usage_ratio', 'metrics_host_gpu_utilization_ratio']) {
      assert.ok(met.has(n), `metrics service exports ${n}`);
    }
    // Bytes in and out of the predictions just sent.
    const text = await (await fetch(`${c.url}/metrics`)).text();
    const bytes = (name: string): number => Number(new RegExp(`^${name}\\{[^}]*route="/api/v1/models/:name/prediction"[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
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
    assert.equal(iris.error_rate, 0, 'a 400 is the client\'s error, not the server\'s');
    assert.ok(iris.latency_seconds.p50 > 0 && iris.latency_seconds.p50 <= iris.latency_seconds.p95 && iris.latency_seconds.p95 <= iris.latency_seconds.p99, JSON.stringify(iris.latency_seconds));
    assert.ok(iris.batch_size_mean >= 1);
    assert.equal(iris.queue_depth, 0);
    assert.deepEqual(iris.workers, ['modelhost-1', 'modelhost-2']);
    assert.deepEqual(iris.versions, [1]);
    assert.deepEqual(stats.modelhosts.map((w: any) => [w.id, w.up]), [['modelhost-1', true], ['modelhost-2', true]]);
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
    assert.ok(rules.every((x: any) => x.health !== 'err'), JSON.stringify(rules.filter((x: any) => x.health === 'err')));
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
    const keywords = new Set(['sum', 'by', 'rate', 'increase', 'histogram_quantile', 'absent', 'count', 'le', 'model', 'code', 'route', 'status', 'reason', 'job', 'without', 'on', 'and', 'or', 'version', 'group_left', 'abs']);
    const dashboard = await exprs();
    assert.ok(dashboard.length >= 20, `${dashboard.length} queries`);
    const rules = (parse(await readFile(path.join(REPO, 'prometheus', 'alert_rules.yml'), 'utf8')) as { groups: { rules: { expr: string }[] }[] }).groups.flatMap((g) => g.rules.map((r) => r.expr));
    const list = [...dashboard, ...rules];
    const unknown: string[] = [];
    for (const e of list) {
      const stripped = e.replace(/\{[^}]*\}/g, '').replace(/\[[^\]]*\]/g, '').replace(/by \([^)]*\)/g, '');
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
    const lines = await until('log lines with the request id', async () => {
      const inferrer = c.jsonLogs('inferrer').filter((l) => l.reqId === reqId && l.module === 'access');
      const modelhost = c.modelhosts.flatMap((m) => c.jsonLogs(m.id)).filter((l) => l.reqId === reqId && l.msg === 'inference');
      const nginx = c.balancer.kind === 'nginx' ? c.jsonLogs('nginx').filter((l) => l.reqId === reqId) : [{}];
      return inferrer.length && modelhost.length && nginx.length ? { inferrer, modelhost, nginx } : undefined;
    }, 5000);
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
  });

  test('a refused request: access line with its 4xx status, the refusal at info without a stack', async () => {
    const reqId = `monitoring-bad-${Date.now()}`;
    const a = await predict('iris', [1, 2], reqId);
    assert.equal(a.status, 400);
    const lines = await until('log lines', async () => {
      const l = c.jsonLogs('inferrer').filter((x) => x.reqId === reqId);
      return l.length >= 2 ? l : undefined;
    }, 5000);
    const acc = lines.find((l) => l.module === 'access')!;
    assert.equal(acc.status, 400);
    const refusal = lines.find((l) => l.msg === 'request refused')!;
    assert.equal(refusal.level, 'info');
    assert.equal((refusal.err as any).code, 'INVALID_INPUT');
    assert.equal((refusal.err as any).stack, undefined);
  });
});

describe('the status page', () => {
  test('headless Chromium draws the traffic it was just sent', async (t) => {
    if (!existsSync(CHROMIUM)) {
      t.skip(`no Chromium at ${CHROMIUM} (apt-get install chromium)`);
      return;
    }
    const { chromium } = await import('playwright-core');
    const profile = await mkdtemp(path.join(os.tmpdir(), 'inferrer-chromium-'));
    // A fresh profile (--user-data-dir) each run; playwright passes it on.
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    let stop = false;
    try {
      const page = await browser.newPage();
      const failed: string[] = [];
      page.on('requestfailed', (r) => failed.push(r.url()));
      page.on('pageerror', (e) => failed.push(String(e)));
      await page.goto(`${c.metrics!.url}/?interval=300`);
      // Keep traffic flowing while the page polls.
      const load = (async () => {
        while (!stop) await predict('diabetes', [0.03, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.02]);
      })();
      await page.waitForFunction(() => {
        const s = (window as any).inferrerStatus;
        return s && s.updates >= 3 && s.charts.requests.max('diabetes') > 0 && s.charts.requests.max('iris') > 0;
      }, undefined, { timeout: 20_000 });
      stop = true;
      await load;
      // The lines are really on the canvas: count pixels in the series' colour inside the plot (not the legend).
      // (A string, not a function: tsx would add helpers the page does not have.)
      const drawn = (await page.evaluate(`(() => {
        const s = window.inferrerStatus;
        const canvas = document.getElementById('chart-requests');
        const a = s.charts.requests.plotArea;
        const data = canvas.getContext('2d').getImageData(a.left, a.top, a.width, a.height).data;
        const out = {};
        for (const model of ['diabetes', 'iris']) {
          const hex = s.charts.requests.colorOf(model);
          const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
          let n = 0;
          for (let i = 0; i < data.length; i += 4) if (Math.abs(data[i] - r) < 8 && Math.abs(data[i + 1] - g) < 8 && Math.abs(data[i + 2] - b) < 8) n++;
          out[model] = n;
        }
        return out;
      })()`)) as { diabetes: number; iris: number };
      assert.ok(drawn.diabetes > 100, `diabetes line drawn: ${JSON.stringify(drawn)}`);
      const row = await page.$$eval('#models tbody tr', (rows) => rows.map((r) => Array.from(r.querySelectorAll('td')).map((td) => td.textContent ?? '')));
      const diabetes = row.find((r) => r[0] === 'diabetes');
      assert.ok(diabetes && Number(diabetes[2]) > 0, `table shows the diabetes rate: ${JSON.stringify(row)}`);
      assert.equal(diabetes![9], 'modelhost-1, modelhost-2');
      const workers = await page.$$eval('#workers tbody tr', (rows) => rows.map((r) => r.querySelector('.up')?.textContent));
      assert.deepEqual(workers, ['up', 'up']);
      assert.deepEqual(failed, [], 'the page loads nothing from elsewhere and throws nothing');
    } finally {
      stop = true;
      await browser.close();
      await rm(profile, { recursive: true, force: true });
    }
  });
});
