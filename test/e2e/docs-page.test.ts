/**
 * /docs (Swagger UI) works when the Inferrer is reached by a host name over plain http, as it is behind a
 * Docker network or a Kubernetes Service: Chromium loads it as `http://inferrer.example:<port>/docs`
 * (the name mapped to 127.0.0.1 by Chromium's resolver) and the page lists the routes. helmet's default CSP
 * adds `upgrade-insecure-requests`, which made the browser fetch the Swagger assets over https and left the
 * page blank; the Inferrer's CSP leaves it out.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { type TestCluster, startTestCluster } from '../helpers/cluster.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
let c: TestCluster | undefined;

before(async () => {
  if (existsSync(CHROMIUM)) c = await startTestCluster({ modelhosts: 1 });
});
after(async () => {
  await c?.close();
});

test('Chromium renders /docs by host name over plain http, with every route listed and nothing fetched elsewhere', async (t) => {
  if (!c) {
    t.skip(`no Chromium at ${CHROMIUM} (apt-get install chromium)`);
    return;
  }
  const { chromium } = await import('playwright-core');
  const profile = await mkdtemp(path.join(os.tmpdir(), 'inferrer-chromium-'));
  const port = new URL(c.url).port;
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--host-resolver-rules=MAP inferrer.example 127.0.0.1',
    ],
  });
  try {
    const page = await browser.newPage();
    const requested: string[] = [];
    page.on('request', (r) => requested.push(r.url()));
    const res = await page.goto(`http://inferrer.example:${port}/docs`);
    assert.equal(res?.status(), 200);
    assert.doesNotMatch(String(res?.headers()['content-security-policy']), /upgrade-insecure-requests/);
    await page.waitForSelector('.opblock', { timeout: 30_000 });
    const operations = await page.locator('.opblock').count();
    const routes = (await (await fetch(`${c.url}/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    const documented = Object.values(routes.paths).reduce((n, ops) => n + Object.keys(ops).length, 0);
    assert.equal(operations, documented, 'every documented operation is on the page');
    assert.ok(await page.getByText('/api/v1/models/{name}/prediction').first().isVisible());
    await page.screenshot({ path: path.join(profile, 'docs.png') });
    const elsewhere = requested.filter((u) => !u.startsWith(`http://inferrer.example:${port}/`) && !u.startsWith('data:'));
    assert.deepEqual(elsewhere, [], 'nothing loaded from another origin or over https');
  } finally {
    await browser.close();
    await rm(profile, { recursive: true, force: true });
  }
});
