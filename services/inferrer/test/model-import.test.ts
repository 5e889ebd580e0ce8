/** Import by URL: off by default, allow-listed hosts and http(s) only (CVE-2023-43654 is why). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../src/config.ts';
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
  for (const bad of ['http://127.0.0.1:8081/item.json', 'http://evil.example/item.json', 'http://api.eotdl.com.evil.example/x', 'file:///etc/passwd', 'ftp://api.eotdl.com/x', 'http://user:pw@api.eotdl.com/x']) {
    assert.throws(() => i.allowed(bad), code('IMPORT_HOST_NOT_ALLOWED'), bad);
  }
  assert.throws(() => i.allowed('not a url'), code('INVALID_REQUEST'));
});

test('a malformed allowlist stops the service at start', () => {
  assert.throws(() => loadConfig({ ...base, MODEL_IMPORT_ALLOWED_HOSTS: 'http://api.eotdl.com/' }));
});
