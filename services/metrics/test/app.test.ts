/**
 * The metrics service through createApp on an ephemeral port, scraping a worker that serves the
 * modelhost's /metrics and /v1/models over real HTTP, and a stub_status page.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { emptyStats } from '@inferrer/core';
import { LATENCY_BUCKETS_SECONDS, client, createLogger } from '@inferrer/telemetry';
import { createApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { createExporter } from '../src/exporter.ts';
import { Monitor } from '../src/monitor.ts';

const servers: http.Server[] = [];
async function listen(handler: http.RequestListener): Promise<string> {
  const s = http.createServer(handler);
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

const reg = new client.Registry();
const requests = new client.Counter({ name: 'modelhost_requests_total', help: 'h', labelNames: ['model', 'version', 'code'], registers: [reg] });
const duration = new client.Histogram({
  name: 'modelhost_request_duration_seconds',
  help: 'h',
  labelNames: ['model', 'version'],
  buckets: LATENCY_BUCKETS_SECONDS,
  registers: [reg],
});
let worker = '';
const workerStats = emptyStats('iris', '3');
workerStats.inference_count = 6;
workerStats.inference_stats.success = { count: 2, ns: 2000 };
let warmState = 'LOADING';
let nginxRequests = 10;
let base = '';
let monitor: Monitor;

before(async () => {
  worker = await listen(async (req, res) => {
    if (req.url === '/metrics') res.end(await reg.metrics());
    else if (req.url === '/v1/models')
      res.end(
        JSON.stringify({
          modelhost: 'modelhost-7',
          models: [
            { name: 'iris', version: 3, state: 'READY', queue_depth: 1, resident_bytes: 1234, idle_seconds: 2.5 },
            { name: 'digits', version: 1, state: 'READY', queue_depth: 0, resident_bytes: 99, idle_seconds: 0, pinned: true },
          ],
        }),
      );
    else if (req.url === '/v1/stats') res.end(JSON.stringify({ modelhost: 'modelhost-7', models: [workerStats] }));
    else if (req.url === '/v1/models/iris/versions/3/warm' && req.method === 'POST')
      res.end(JSON.stringify({ modelhost: 'modelhost-7', name: 'iris', version: 3, state: warmState }));
    else res.writeHead(404).end();
  });
  const nginx = await listen((_req, res) =>
    res.end(`Active connections: 1 \nserver accepts handled requests\n 4 4 ${nginxRequests} \nReading: 0 Writing: 1 Waiting: 0 \n`),
  );
  const config = loadConfig({
    MODELHOSTS: `${worker},http://127.0.0.1:1`,
    NGINX_STATUS_URL: `${nginx}/nginx/status`,
    SCRAPE_TIMEOUT_MS: '1000',
    NVIDIA_SMI: 'off',
  });
  monitor = new Monitor(config, createLogger({ service: 'metrics', level: 'error' }));
  const server = http.createServer(createApp({ logger: createLogger({ service: 'metrics', level: 'error' }), monitor, registry: createExporter(monitor) }));
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => {
  for (const s of servers) s.close();
});

test('not ready before the first scrape; ready after', async () => {
  assert.equal((await fetch(`${base}/health/ready`)).status, 503);
  await monitor.tick();
  assert.equal((await fetch(`${base}/health/ready`)).status, 200);
});

test('/api/v1/stats: the model, the worker that has it, the one that does not answer, nginx', async () => {
  for (let i = 0; i < 20; i++) duration.observe({ model: 'iris', version: '3' }, 0.01);
  requests.inc({ model: 'iris', version: '3', code: 'OK' }, 20);
  nginxRequests = 40;
  await new Promise((r) => setTimeout(r, 50));
  await monitor.tick();
  const s = (await (await fetch(`${base}/api/v1/stats`)).json()) as any;
  const iris = s.models.find((m: any) => m.model === 'iris');
  assert.equal(iris.requests, 20);
  assert.deepEqual(iris.workers, ['modelhost-7']);
  assert.deepEqual(iris.versions, [3]);
  assert.equal(iris.queue_depth, 1);
  assert.ok(iris.latency_seconds.p95 > 0.005 && iris.latency_seconds.p95 <= 0.01);
  const down = s.modelhosts.find((w: any) => !w.up);
  assert.equal(down.url, 'http://127.0.0.1:1');
  assert.ok(down.error);
  assert.equal(s.nginx.requests, 40);
  assert.equal(s.host.gpus.length, 0);
});

test('/metrics and /api/v1/targets', async () => {
  const text = await (await fetch(`${base}/metrics`)).text();
  assert.match(text, /^metrics_cluster_modelhost_up\{modelhost="modelhost-7",service="metrics"\} 1$/m);
  assert.match(text, /^metrics_cluster_modelhost_up\{modelhost="127.0.0.1:1",service="metrics"\} 0$/m);
  assert.match(text, /^metrics_cluster_model_loaded_workers\{model="iris",service="metrics"\} 1$/m);
  assert.match(text, /^metrics_nginx_http_requests_total\{service="metrics"\} 40$/m);
  assert.match(text, /^metrics_process_cpu_seconds_total/m);
  const targets = (await (await fetch(`${base}/api/v1/targets`)).json()) as any[];
  assert.deepEqual(targets.find((t) => t.labels.modelhost === 'modelhost-7').targets, [new URL(worker).host]);
});

test('/api/v1/history: a point per scrape, in columns; ?since= for newer ones; a bad since is a 400', async () => {
  const before = Date.now();
  await new Promise((r) => setTimeout(r, 5));
  await monitor.tick();
  const h = (await (await fetch(`${base}/api/v1/history`)).json()) as any;
  assert.equal(h.time.length, monitor.history.size);
  assert.ok(h.time.length >= 3, `${h.time.length} points: one per tick`);
  assert.equal(h.models.iris.requests_per_second.length, h.time.length);
  assert.equal(h.host.cpu_usage_ratio.length, h.time.length);
  assert.equal(h.history_seconds, 900);
  const newer = (await (await fetch(`${base}/api/v1/history?since=${before}`)).json()) as any;
  assert.equal(newer.time.length, 1);
  assert.ok(newer.time[0] * 1000 > before);
  const bad = await fetch(`${base}/api/v1/history?since=yesterday`);
  assert.equal(bad.status, 400);
  assert.equal(((await bad.json()) as any).error.code, 'INVALID_REQUEST');
});

test('the status page and its scripts are served from this service (uPlot from node_modules), nothing from elsewhere', async () => {
  const html = await (await fetch(`${base}/`)).text();
  assert.match(html, /<figure id="chart-requests"/);
  assert.match(html, /src="vendor\/uplot\/uPlot.iife.min.js"/);
  for (const src of html.matchAll(/(?:src|href)="([^"]+)"/g)) {
    assert.doesNotMatch(src[1]!, /^(https?:)?\/\//, 'no external resources');
    assert.equal((await fetch(`${base}/${src[1]}`)).status, 200, src[1]);
  }
});

test('/api/v1/inference-stats asks every worker now and sums; the one that does not answer is listed down', async () => {
  workerStats.inference_stats.success.count = 3;
  const s = (await (await fetch(`${base}/api/v1/inference-stats`)).json()) as any;
  assert.equal(s.models.length, 1);
  assert.equal(s.models[0].inference_stats.success.count, 3, 'not a value from the last scrape');
  assert.equal(s.models[0].inference_count, 6);
  assert.deepEqual(s.modelhosts.map((w: any) => [w.up, w.modelhost ?? null]).sort(), [
    [false, null],
    [true, 'modelhost-7'],
  ]);
});

test('warm: ready once every worker that answers has the version READY', async () => {
  const ask = async (): Promise<any> => (await fetch(`${base}/api/v1/models/iris/versions/3/warm`, { method: 'POST' })).json();
  warmState = 'LOADING';
  assert.equal((await ask()).ready, false);
  warmState = 'READY';
  const r = await ask();
  assert.equal(r.ready, true);
  assert.equal(r.modelhosts.find((w: any) => w.up).state, 'READY');
  assert.equal((await fetch(`${base}/api/v1/models/..%2Fx/versions/3/warm`, { method: 'POST' })).status, 400);
});

test('loaded-on: every worker asked now, the versions of one model each holds', async () => {
  const r = (await (await fetch(`${base}/api/v1/models/iris/loaded-on`)).json()) as any;
  assert.deepEqual(r.loaded_on, [{ modelhost: 'modelhost-7', version: 3, state: 'READY', resident_bytes: 1234, idle_seconds: 2.5 }]);
  assert.deepEqual(r.modelhosts.map((w: any) => w.up).sort(), [false, true]);
  assert.deepEqual(((await (await fetch(`${base}/api/v1/models/digits/loaded-on`)).json()) as any).loaded_on[0].pinned, true);
  assert.deepEqual(((await (await fetch(`${base}/api/v1/models/nowhere/loaded-on`)).json()) as any).loaded_on, []);
  assert.equal((await fetch(`${base}/api/v1/models/..%2Fx/loaded-on`)).status, 400);
});
