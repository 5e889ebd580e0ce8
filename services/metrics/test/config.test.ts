/** The metrics service's environment: defaults, lists, and every problem reported at once. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from '@inferrer/telemetry';
import { METRICS_ENV, loadConfig } from '../src/config.ts';

test('defaults', () => {
  const c = loadConfig({});
  assert.equal(c.port, 9400);
  assert.equal(c.host, '0.0.0.0');
  assert.deepEqual(c.modelhosts, []);
  assert.equal(c.scrapeIntervalMs, 5000);
  assert.equal(c.nvidiaSmi, 'nvidia-smi');
  assert.ok(Object.isFrozen(c));
  assert.ok(METRICS_ENV.includes('MODELHOST_DNS') && METRICS_ENV.includes('NGINX_STATUS_URL'));
});

test('MODELHOSTS and MODELHOST_DNS lists', () => {
  const c = loadConfig({
    MODELHOSTS: 'http://127.0.0.1:9001/, 127.0.0.1:9002',
    MODELHOST_DNS: 'tasks.modelhost:9001,tasks.modelhost-gpu:9001',
    NVIDIA_SMI: 'off',
  });
  assert.deepEqual(c.modelhosts, ['http://127.0.0.1:9001', 'http://127.0.0.1:9002']);
  assert.deepEqual(c.modelhostDns, [
    { name: 'tasks.modelhost', port: 9001 },
    { name: 'tasks.modelhost-gpu', port: 9001 },
  ]);
  assert.equal(c.nvidiaSmi, undefined);
});

test('bad values are all reported, naming the variable', () => {
  try {
    loadConfig({ MODELHOST_DNS: 'tasks.modelhost', SCRAPE_INTERVAL_MS: '5', NGINX_STATUS_URL: 'ftp://x' });
    assert.fail('should throw');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    const vars = err.problems.map((p) => p.split(/[.:]/)[0]).sort();
    assert.deepEqual(vars, ['MODELHOST_DNS', 'NGINX_STATUS_URL', 'SCRAPE_INTERVAL_MS']);
  }
});
