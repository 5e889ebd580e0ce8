/** The OpenAPI document lists every route the Inferrer serves, and only those; /docs works offline. */
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
import { openApiDocument } from '../src/protocol/openapi.ts';
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
  app = createApp({ config, logger, management: new Management(store), dataplane: new DataPlane(upstream, config), metrics: new InferrerMetrics(), ready: async () => false, auth: new Auth(config) });
  server = http.createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
after(async () => {
  server?.close();
  await rm(dir, { recursive: true, force: true });
});

const toOpenApi = (p: string): string => p.replace(/:([A-Za-z]+)/g, '{$1}');

test('every registered route is in the document, and every documented route is registered', () => {
  const doc = openApiDocument() as { paths: Record<string, Record<string, unknown>> };
  const registered = new Set(app.routes().map((r) => `${r.method} ${toOpenApi(r.path)}`));
  const documented = new Set(Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)));
  assert.ok(registered.size > 20, `found the routes (${registered.size})`);
  assert.deepEqual([...registered].filter((r) => !documented.has(r)).sort(), [], 'registered but not documented');
  assert.deepEqual([...documented].filter((r) => !registered.has(r)).sort(), [], 'documented but not registered');
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

test('/docs serves the interactive page and its assets from the package, not a CDN', async () => {
  const page = await fetch(`${base}/docs`);
  assert.equal(page.status, 200);
  const html = await page.text();
  assert.doesNotMatch(html, /https?:\/\//, 'no external URLs');
  for (const asset of ['/docs/assets/swagger-ui-bundle.js', '/docs/assets/swagger-ui.css', '/docs/init.js']) {
    assert.ok(html.includes(asset));
    const a = await fetch(`${base}${asset}`);
    assert.equal(a.status, 200, asset);
    assert.ok((await a.arrayBuffer()).byteLength > 10);
  }
});
