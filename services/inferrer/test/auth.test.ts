/** Auth modes, route scopes and rate limits (services/inferrer/src/auth.ts) with real sockets-free requests. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Writable } from 'node:stream';
import { RouteTable, parseTarget } from '@inferrer/http';
import { ModelStore } from '@inferrer/model-store';
import { createLogger } from '@inferrer/telemetry';
import { Auth, loadKeys } from '../src/auth.ts';
import { loadConfig } from '../src/config.ts';
import { ClientAddresses } from '../src/http/client-address.ts';
import { DataPlane } from '../src/dataplane.ts';
import type { Access } from '../src/http/route.ts';
import { Management } from '../src/management.ts';
import { InferrerMetrics } from '../src/metrics.ts';
import { createRoutes } from '../src/routes.ts';
import { Upstream } from '../src/upstream.ts';

let dir: string;
let keysFile: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-auth-'));
  keysFile = path.join(dir, 'keys.json');
  await writeFile(
    keysFile,
    JSON.stringify({
      keys: [
        { key: 'a'.repeat(32), scopes: ['admin', 'predict'], name: 'ops' },
        { key: 'p'.repeat(32), scopes: ['predict'] },
      ],
    }),
  );
});
after(() => rm(dir, { recursive: true, force: true }));

const base = { MODEL_DIR: '/tmp/x', LOAD_BALANCER_URL: 'http://127.0.0.1:1' };
const req = (authorization?: string, ip = '10.0.0.1') =>
  ({ headers: authorization ? { authorization } : {}, socket: { remoteAddress: ip } }) as unknown as IncomingMessage;
const code = async (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'OK',
    (e: { code: string }) => e.code,
  );

/** The scope of the route a request would run, from the real route table ('none': no route). */
const config = loadConfig(base);
const table = new RouteTable(
  createRoutes({
    config,
    logger: createLogger({ service: 'inferrer', stream: new Writable({ write: (_c, _e, cb) => cb() }) }),
    management: new Management(new ModelStore('/tmp/x')),
    dataplane: new DataPlane(new Upstream(config.loadBalancerUrl, 1), config),
    metrics: new InferrerMetrics(),
    ready: async () => true,
  }),
);
const accessFor = (method: string, path: string): Access | 'none' => {
  const m = table.match(method, parseTarget(path).segments);
  return m?.route ? m.route.scope : 'none';
};

describe('route scopes', () => {
  test('classifies routes; unknown, upper-case and trailing-slash paths match no route', () => {
    assert.equal(accessFor('GET', '/health/ready'), 'public');
    assert.equal(accessFor('GET', '/docs/assets/swagger-ui.css'), 'public');
    assert.equal(accessFor('POST', '/health/ready'), 'none', 'no such route');
    assert.equal(accessFor('PUT', '/api/v1/models/iris'), 'admin');
    assert.equal(accessFor('POST', '/api/v1/models/iris'), 'admin');
    assert.equal(accessFor('DELETE', '/api/v1/models/iris'), 'admin');
    assert.equal(accessFor('POST', '/api/v1/models/iris/prediction'), 'predict');
    assert.equal(accessFor('GET', '/api/v1/models/iris'), 'predict');
    assert.equal(accessFor('POST', '/v2/repository/models/iris/unload'), 'admin');
    assert.equal(accessFor('POST', '/v2/models/iris/infer'), 'predict');
    assert.equal(accessFor('GET', '/some/new/route'), 'none');
    assert.equal(accessFor('PUT', '/API/v1/models/iris'), 'none', 'case-sensitive');
    assert.equal(accessFor('PUT', '/api/v1/models/iris/'), 'none', 'no trailing slash');
    assert.equal(accessFor('PUT', '/api/v1/models/iris/versions/2/profile'), 'admin');
    assert.equal(accessFor('POST', '/api/v1/models/iris/profile/capture'), 'admin');
    assert.equal(accessFor('GET', '/api/v1/models/iris/versions/2/profile'), 'predict');
    assert.equal(accessFor('GET', '/api/v1/models/iris/profile/capture'), 'predict');
    assert.equal(accessFor('GET', '/api/v1/models/iris/drift'), 'predict');
  });
});

describe('modes', () => {
  test('no keys: predictions open, management closed with 403', async () => {
    const auth = new Auth(loadConfig(base));
    assert.equal(auth.mode, 'closed-management');
    assert.equal(await code(auth.check(req(), accessFor('POST', '/api/v1/models/iris/prediction') as Access)), 'OK');
    assert.equal(await code(auth.check(req(), accessFor('PUT', '/api/v1/models/iris') as Access)), 'FORBIDDEN');
  });

  test('AUTH_DISABLED: everything open', async () => {
    const auth = new Auth(loadConfig({ ...base, AUTH_DISABLED: 'true' }));
    assert.equal(auth.mode, 'disabled');
    assert.equal(await code(auth.check(req(), accessFor('DELETE', '/api/v1/models/iris') as Access)), 'OK');
  });

  test('keys: 401 without or with a wrong key, 403 without the scope, OK with it', async () => {
    const auth = new Auth(loadConfig({ ...base, API_KEYS_FILE: keysFile }));
    assert.equal(auth.mode, 'keys');
    assert.equal(await code(auth.check(req(), accessFor('POST', '/v2/models/iris/infer') as Access)), 'UNAUTHORIZED');
    assert.equal(await code(auth.check(req('Bearer wrong-wrong-wrong-wrong'), accessFor('POST', '/v2/models/iris/infer') as Access)), 'UNAUTHORIZED');
    assert.equal(await code(auth.check(req(`Basic ${'p'.repeat(32)}`), accessFor('POST', '/v2/models/iris/infer') as Access)), 'UNAUTHORIZED');
    assert.equal(await code(auth.check(req(`Bearer ${'p'.repeat(32)}`), accessFor('POST', '/v2/models/iris/infer') as Access)), 'OK');
    assert.equal(await code(auth.check(req(`Bearer ${'p'.repeat(32)}`), accessFor('PUT', '/api/v1/models/iris') as Access)), 'FORBIDDEN');
    assert.equal(await code(auth.check(req(`bearer ${'a'.repeat(32)}`), accessFor('PUT', '/api/v1/models/iris') as Access)), 'OK');
    assert.equal(await code(auth.check(req(), accessFor('GET', '/health/live') as Access)), 'OK');
  });

  test('rate limits per key and per IP, with Retry-After', async () => {
    const auth = new Auth(loadConfig({ ...base, API_KEYS_FILE: keysFile, RATE_LIMIT_KEY_RPS: '3', RATE_LIMIT_IP_RPS: '2' }));
    const key = `Bearer ${'p'.repeat(32)}`;
    const results = [];
    for (let i = 0; i < 5; i++) results.push(await code(auth.check(req(key), accessFor('POST', '/v2/models/iris/infer') as Access)));
    assert.deepEqual(results, ['OK', 'OK', 'OK', 'RATE_LIMITED', 'RATE_LIMITED']);
    const err = await auth.check(req(key), accessFor('POST', '/v2/models/iris/infer') as Access).catch((e) => e);
    assert.ok(err.retryAfter >= 1);
    assert.equal(
      await code(auth.check(req(`Bearer ${'a'.repeat(32)}`), accessFor('POST', '/v2/models/iris/infer') as Access)),
      'OK',
      'another key has its own budget',
    );
    const open = new Auth(loadConfig({ ...base, RATE_LIMIT_IP_RPS: '2' }));
    const byIp = [];
    for (let i = 0; i < 3; i++) byIp.push(await code(open.check(req(undefined, '10.9.9.9'), accessFor('POST', '/v2/models/iris/infer') as Access)));
    assert.deepEqual(byIp, ['OK', 'OK', 'RATE_LIMITED']);
    assert.equal(
      await code(open.check(req(undefined, '10.9.9.8'), accessFor('POST', '/v2/models/iris/infer') as Access)),
      'OK',
      'another address has its own budget',
    );
  });

  test('a bad keys file stops the start with a clear message', async () => {
    const bad = path.join(dir, 'bad.json');
    await writeFile(bad, JSON.stringify({ keys: [{ key: 'short', scopes: ['admin'] }] }));
    assert.throws(() => loadKeys(bad), /at least 16 characters/);
    await writeFile(bad, '{not json');
    assert.throws(() => loadKeys(bad), /cannot be read as JSON/);
    await writeFile(bad, JSON.stringify({ keys: [{ key: 'k'.repeat(20), scopes: ['root'] }] }));
    assert.throws(() => loadKeys(bad), /scopes/);
    // A name is a plain word: not an unnamed key's `#2`, nor text that could pass for another log field.
    for (const name of ['#2', 'ops team', 'a\nlevel=error', '', 'x'.repeat(65)]) {
      await writeFile(bad, JSON.stringify({ keys: [{ key: 'k'.repeat(20), scopes: ['predict'], name }] }));
      assert.throws(() => loadKeys(bad), /keys\.0\.name: a name is 1 to 64 letters/, JSON.stringify(name));
    }
  });
});

describe('client addresses', () => {
  test('an IPv6 client counts by its prefix, an IPv4 client by its address, also written as IPv6', () => {
    const by64 = new ClientAddresses(64);
    assert.equal(by64.of('10.1.2.3'), '10.1.2.3');
    assert.equal(by64.of('::ffff:10.1.2.3'), '10.1.2.3');
    assert.equal(by64.of('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
    assert.equal(by64.of('2001:0db8:0001:0002:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64');
    assert.notEqual(by64.of('2001:db8:1:3::1'), by64.of('2001:db8:1:2::1'));
    assert.equal(by64.of('::1'), '::/64');
    assert.equal(by64.of(undefined), 'unknown');
    assert.equal(new ClientAddresses(56).of('2001:db8:1:2ff::1'), '2001:db8:1:200::/56');
    assert.equal(new ClientAddresses(128).of('2001:db8::1'), '2001:db8::1');
  });

  test('the rate limit without a key counts a /64 as one client', async () => {
    const limited = new Auth(loadConfig({ ...base, RATE_LIMIT_IP_RPS: '2' }));
    const v2 = accessFor('POST', '/v2/models/iris/infer') as Access;
    assert.equal(await code(limited.check(req(undefined, '2001:db8:7:7::1'), v2)), 'OK');
    assert.equal(await code(limited.check(req(undefined, '2001:db8:7:7::2'), v2)), 'OK');
    assert.equal(await code(limited.check(req(undefined, '2001:db8:7:7:ffff::3'), v2)), 'RATE_LIMITED', 'a third address of the same /64');
    assert.equal(await code(limited.check(req(undefined, '2001:db8:7:8::1'), v2)), 'OK', 'another /64');
  });
});
