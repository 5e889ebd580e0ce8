/** Import by URL: off by default, allow-listed hosts and http(s) only (CVE-2023-43654 is why). */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, describe, test } from 'node:test';
import type { InferrerError } from '@inferrer/core';
import { loadConfig } from '../src/config.ts';
import { ImportAddresses } from '../src/import-addresses.ts';
import type { Management } from '../src/management.ts';
import { ModelImporter } from '../src/model-import.ts';

const base = { MODEL_DIR: '/tmp/unused', LOAD_BALANCER_URL: 'http://127.0.0.1:9' };
const none = {} as Management;
const code = (c: string) => (err: unknown) => (err as { code?: string }).code === c;

test('off unless MODEL_IMPORT_ENABLED, whatever the URL', async () => {
  const config = loadConfig(base);
  assert.equal(config.modelImport.enabled, false);
  assert.deepEqual(config.modelImport.allowedHosts, []);
  await assert.rejects(new ModelImporter(config, none).import('m', { url: 'https://api.eotdl.com/x.json' }), code('IMPORT_DISABLED'));
});

test('only http(s) URLs without credentials on an allowed host (or host:port)', () => {
  const config = loadConfig({ ...base, MODEL_IMPORT_ENABLED: 'true', MODEL_IMPORT_ALLOWED_HOSTS: 'api.eotdl.com, 127.0.0.1:8080', EOTDL_API_KEY: 'k' });
  assert.deepEqual(config.modelImport.allowedHosts, ['api.eotdl.com', '127.0.0.1:8080']);
  assert.equal(config.modelImport.apiKey, 'k');
  const i = new ModelImporter(config, none);
  assert.equal(i.allowed('https://api.eotdl.com/models/a/item.json').host, 'api.eotdl.com');
  assert.equal(i.allowed('https://API.EOTDL.com:443/x').hostname, 'api.eotdl.com');
  assert.equal(i.allowed('http://127.0.0.1:8080/item.json').port, '8080');
  for (const bad of [
    'http://127.0.0.1:8081/item.json',
    'http://evil.example/item.json',
    'http://api.eotdl.com.evil.example/x',
    'file:///etc/passwd',
    'ftp://api.eotdl.com/x',
    'http://user:pw@api.eotdl.com/x',
  ]) {
    assert.throws(() => i.allowed(bad), code('IMPORT_HOST_NOT_ALLOWED'), bad);
  }
  assert.throws(() => i.allowed('not a url'), code('INVALID_REQUEST'));
});

test('a malformed allowlist stops the service at start', () => {
  assert.throws(() => loadConfig({ ...base, MODEL_IMPORT_ALLOWED_HOSTS: 'http://api.eotdl.com/' }));
});

describe('addresses an import may reach', () => {
  const guard = new ImportAddresses([]);
  after(() => guard.agent.close());

  test('public unicast only: loopback, private, link-local, metadata, CGNAT, unique-local and mapped forms are refused', () => {
    for (const a of ['8.8.8.8', '2001:4860:4860::8888']) guard.check('h', a);
    for (const [a, range] of [
      ['127.0.0.1', 'loopback'],
      ['10.1.2.3', 'private'],
      ['192.168.0.1', 'private'],
      ['172.16.5.4', 'private'],
      ['169.254.169.254', 'linkLocal'],
      ['100.100.100.200', 'carrierGradeNat'],
      ['168.63.129.16', 'cloud metadata'],
      ['0.0.0.0', 'unspecified'],
      ['::1', 'loopback'],
      ['fd00:ec2::254', 'uniqueLocal'],
      ['fe80::1', 'linkLocal'],
      ['::ffff:127.0.0.1', 'loopback'],
      ['64:ff9b::a00:1', 'rfc6052'],
    ] as const) {
      assert.throws(
        () => guard.check('h', a),
        (err: unknown) => (err as InferrerError).code === 'IMPORT_HOST_NOT_ALLOWED' && (err as InferrerError).details.range === range,
        a,
      );
    }
  });

  test('MODEL_IMPORT_ALLOWED_CIDRS lets a range through, and only that range', () => {
    const config = loadConfig({ ...base, MODEL_IMPORT_ALLOWED_CIDRS: '127.0.0.1/32, fd00::/8' });
    assert.deepEqual(config.modelImport.allowedCidrs, ['127.0.0.1/32', 'fd00::/8']);
    const g = new ImportAddresses(config.modelImport.allowedCidrs);
    g.check('h', '127.0.0.1');
    g.check('h', '::ffff:127.0.0.1');
    g.check('h', 'fd00:ec2::254');
    assert.throws(() => g.check('h', '127.0.0.2'), code('IMPORT_HOST_NOT_ALLOWED'));
    void g.agent.close();
    assert.throws(() => loadConfig({ ...base, MODEL_IMPORT_ALLOWED_CIDRS: '127.0.0.1' }));
  });

  test("the sockets' lookup refuses a name that resolves to loopback and hands on only checked addresses", async () => {
    const look = (g: ImportAddresses, all: boolean) =>
      new Promise<unknown>((resolve, reject) => g.lookup('localhost', { all }, (err, address) => (err ? reject(err) : resolve(address))));
    await assert.rejects(
      look(guard, false),
      (err: unknown) => (err as InferrerError).code === 'IMPORT_HOST_NOT_ALLOWED' && /localhost resolves to/.test((err as Error).message),
    );
    await assert.rejects(look(guard, true), code('IMPORT_HOST_NOT_ALLOWED'));
    const open = new ImportAddresses(['127.0.0.0/8', '::1/128']);
    assert.match(String(await look(open, false)), /^(127\.|::1$)/);
    void open.agent.close();
  });

  test('an allow-listed name that resolves to loopback is never connected to', async () => {
    let requests = 0;
    const server = http.createServer((_req, res) => {
      requests++;
      res.end('{}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      const config = loadConfig({ ...base, MODEL_IMPORT_ENABLED: 'true', MODEL_IMPORT_ALLOWED_HOSTS: `localhost:${port},127.0.0.1:${port}` });
      const i = new ModelImporter(config, none);
      await assert.rejects(i.import('m', { url: `http://localhost:${port}/item.json` }), code('IMPORT_HOST_NOT_ALLOWED'));
      await assert.rejects(i.import('m', { url: `http://127.0.0.1:${port}/item.json` }), code('IMPORT_HOST_NOT_ALLOWED'));
      assert.equal(requests, 0);
    } finally {
      server.close();
    }
  });
});
