/** The status page's history: one point per scrape, bounded in time and in points, served in columns. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ModelStats } from '../src/cluster-stats.ts';
import { StatsHistory } from '../src/history.ts';

function stats(model: string, rps: number, extra: Partial<ModelStats> = {}): ModelStats {
  return {
    model,
    versions: [1],
    requests_per_second: rps,
    requests: rps * 60,
    errors_per_second: 0.5,
    error_rate: 0.01,
    client_errors_per_second: 0.25,
    client_error_rate: 0.005,
    timeouts_per_second: 0,
    latency_seconds: { p50: 0.001, p95: 0.004, p99: 0.009, mean: 0.002 },
    batch_size_mean: 1.5,
    queue_depth: 2,
    workers: ['modelhost-1'],
    ...extra,
  };
}

describe('StatsHistory', () => {
  test('columns aligned with time; null where a model was absent', () => {
    const h = new StatsHistory({ historyS: 60, scrapeIntervalMs: 1000 });
    h.record(1_000, [stats('iris', 1)], 0.5);
    h.record(2_000, [stats('iris', 2), stats('digits', 7)], null);
    h.record(3_000, [stats('digits', 8)], 0.25);
    const c = h.columns();
    assert.deepEqual(c.time, [1, 2, 3]);
    assert.equal(c.history_seconds, 60);
    assert.equal(c.scrape_interval_seconds, 1);
    assert.deepEqual(Object.keys(c.models), ['digits', 'iris']);
    assert.deepEqual(c.models.iris!.requests_per_second, [1, 2, null]);
    assert.deepEqual(c.models.digits!.requests_per_second, [null, 7, 8]);
    assert.deepEqual(c.models.iris!.client_errors_per_second, [0.25, 0.25, null]);
    assert.deepEqual(c.models.iris!.errors_per_second, [0.5, 0.5, null]);
    assert.deepEqual(c.models.iris!.latency_p95_seconds, [0.004, 0.004, null]);
    assert.deepEqual(c.host.cpu_usage_ratio, [0.5, null, 0.25]);
  });

  test('?since: only newer points', () => {
    const h = new StatsHistory({ historyS: 60, scrapeIntervalMs: 1000 });
    for (let t = 1_000; t <= 5_000; t += 1000) h.record(t, [stats('iris', t / 1000)], null);
    const c = h.columns(3_000);
    assert.deepEqual(c.time, [4, 5]);
    assert.deepEqual(c.models.iris!.requests_per_second, [4, 5]);
    assert.deepEqual(h.columns(5_000).time, []);
    assert.deepEqual(h.columns(5_000).models, {});
  });

  test('forgets points older than the history, and never keeps more than maxPoints', () => {
    const h = new StatsHistory({ historyS: 10, scrapeIntervalMs: 1000 });
    for (let t = 0; t <= 30_000; t += 1000) h.record(t, [stats('iris', 1)], null);
    assert.deepEqual(h.columns().time, [20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30]);
    const small = new StatsHistory({ historyS: 3600, scrapeIntervalMs: 100, maxPoints: 5 });
    for (let t = 0; t < 100; t++) small.record(t * 100, [], null);
    assert.equal(small.size, 5);
    assert.deepEqual(small.columns().time, [9.5, 9.6, 9.7, 9.8, 9.9]);
  });

  test('HISTORY_S=0 keeps nothing; a point not newer than the last is ignored', () => {
    const none = new StatsHistory({ historyS: 0, scrapeIntervalMs: 1000 });
    none.record(1_000, [stats('iris', 1)], null);
    assert.equal(none.size, 0);
    const h = new StatsHistory({ historyS: 60, scrapeIntervalMs: 1000 });
    h.record(2_000, [], null);
    h.record(2_000, [], null);
    h.record(1_000, [], null);
    assert.equal(h.size, 1);
  });
});
