/** The OpenAPI document and /help are built from the route table: every route is documented and usable; /docs works offline. */
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ModelStore } from '@inferrer/model-store';
import { createLogger } from '@inferrer/telemetry';
import { createApp, type InferrerApp } from '../src/app.ts';
import { Auth } from '../src/auth.ts';
import { loadConfig } from '../src/config.ts';
import { DataPlane } from '../src/dataplane.ts';
import { Management } from '../src/management.ts';
import { InferrerMetrics } from '../src/metrics.ts';
import { openApiPath } from '../src/protocol/openapi.ts';
import { Upstream } from '../src/upstream.ts';
import { Writable } from 'node:stream';

let dir: string;
let server: http.Server;
let base: string;
let app: InferrerApp;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-openapi-'));
  const config = loadConfig({ MODEL_DIR: dir, LOAD_BALANCER_URL: 'http://127.0.0.1:9', PORT: '0' });
  const store = new ModelStore(dir);
  await store.init();
  const upstream = new Upstream(config.loadBalancerUrl, 1);
  const logger = createLogger({ service: 'inferrer', stream: new Writable({ write: (_c, _e, cb) => cb() }) });
  app = createApp({
    config,
    logger,
    management: new Management(store),
    dataplane: new DataPlane(upstream, config),
    metrics: new InferrerMetrics(),
    ready: async () => false,
    auth: new Auth(config),
  });
  server = http.createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
after(async () => {
  server?.close();
  await rm(dir, { recursive: true, force: true });
});

type Op = { summary?: string; tags?: string[]; parameters?: { name: string; in: string }[]; responses?: Record<string, unknown>; security?: unknown[] };

test('the served document has every route of the table, each with a summary, tags, answers and its path parameters', async () => {
  const doc = (await (await fetch(`${base}/openapi.json`)).json()) as { paths: Record<string, Record<string, Op>> };
  const routes = app.routes();
  assert.ok(routes.length > 30, `found the routes (${routes.length})`);
  const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`));
  assert.deepEqual(documented.sort(), routes.map((r) => `${r.method} ${openApiPath(r.path)}`).sort());
  for (const r of routes) {
    const op = doc.paths[openApiPath(r.path)]![r.method.toLowerCase()]!;
    const where = `${r.method} ${r.path}`;
    assert.ok(op.summary && op.summary.length > 5, `${where} has a summary`);
    assert.ok(op.tags?.length, `${where} has a tag`);
    assert.ok(op.responses && Object.keys(op.responses).length > 0, `${where} documents its answers`);
    const pathParams = [...r.path.matchAll(/:([A-Za-z_]+)/g)].map((m) => m[1]);
    const declared = (op.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name);
    assert.deepEqual(declared.sort(), pathParams.sort(), `${where} declares its path parameters`);
    assert.equal(op.security !== undefined, r.scope !== 'public', `${where}: security matches scope ${r.scope}`);
  }
});

test('/help lists every route with a curl example', async () => {
  const help = (await (await fetch(`${base}/help`)).json()) as { routes: { method: string; path: string; example: string }[] };
  assert.equal(help.routes.length, app.routes().length);
  for (const r of help.routes) {
    assert.match(r.example, /^curl /, `${r.method} ${r.path}`);
    assert.ok(r.example.includes(base), `${r.method} ${r.path}: the example uses the server's own URL`);
  }
});

test('/openapi.json is served and every $ref resolves', async () => {
  const res = await fetch(`${base}/openapi.json`);
  assert.equal(res.status, 200);
  const doc = (await res.json()) as { openapi: string; components: { schemas: Record<string, unknown> } };
  assert.equal(doc.openapi, '3.0.3');
  const refs = [...JSON.stringify(doc).matchAll(/"#\/components\/schemas\/([A-Za-z0-9]+)"/g)].map((m) => m[1]!);
  assert.ok(refs.length > 10);
  for (const r of refs) assert.ok(r in doc.components.schemas, `${r} is defined`);
});

test('/docs serves the interactive page and its assets from the package, not a CDN, and nothing else under /docs/assets', async () => {
  const page = await fetch(`${base}/docs`);
  assert.equal(page.status, 200);
  const html = await page.text();
  assert.doesNotMatch(html, /https?:\/\//, 'no external URLs');
  assert.doesNotMatch(String(page.headers.get('content-security-policy')), /upgrade-insecure-requests/, 'plain-http hosts keep their http assets');
  for (const asset of ['/docs/assets/swagger-ui-bundle.js', '/docs/assets/swagger-ui.css', '/docs/init.js']) {
    assert.ok(html.includes(asset));
    const a = await fetch(`${base}${asset}`);
    assert.equal(a.status, 200, asset);
    assert.ok((await a.arrayBuffer()).byteLength > 10);
  }
  for (const other of ['/docs/assets/package.json', '/docs/assets/..%2Fpackage.json', '/docs/assets/index.html']) {
    assert.equal((await fetch(`${base}${other}`)).status, 404, other);
  }
});
