/** The per-model summary from successive scrapes: increases with restarts, quantiles, rates, workers. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LATENCY_BUCKETS_SECONDS, client } from '@inferrer/telemetry';
import { type WorkerState, histogramQuantile, increases, isClientError, record, summarize, toScrape } from '../src/cluster-stats.ts';
import { parsePromText } from '../src/prom-text.ts';

describe('histogramQuantile (as Prometheus computes it)', () => {
  const b = (pairs: [number, number][]) => pairs.map(([le, count]) => ({ le, count }));
  test('linear inside the bucket that holds the rank', () => {
    const buckets = b([
      [0.1, 10],
      [0.5, 20],
      [1, 20],
      [Infinity, 20],
    ]);
    assert.equal(histogramQuantile(0.5, buckets), 0.1);
    assert.ok(Math.abs(histogramQuantile(0.75, buckets)! - 0.3) < 1e-12);
    assert.equal(histogramQuantile(0.25, buckets), 0.05);
  });
  test('the highest finite bound when the rank lies in +Inf; null without observations', () => {
    assert.equal(
      histogramQuantile(
        0.99,
        b([
          [0.1, 1],
          [1, 1],
          [Infinity, 10],
        ]),
      ),
      1,
    );
    assert.equal(
      histogramQuantile(
        0.5,
        b([
          [0.1, 0],
          [Infinity, 0],
        ]),
      ),
      null,
    );
    assert.equal(histogramQuantile(0.5, []), null);
  });
});

describe('increases', () => {
  const scrape = (time: number, v: number) =>
    toScrape(time, [{ name: 'modelhost_requests_total', labels: { model: 'm', version: '1', code: 'OK' }, value: v }], []);
  test('sums rises between scrapes; a restart (smaller value) counts from zero, like increase()', () => {
    const { span, inc } = increases([scrape(0, 10), scrape(1000, 15), scrape(2000, 3), scrape(3000, 8)]);
    assert.equal(span, 3);
    assert.equal([...inc.values()][0], 5 + 3 + 5);
  });
  test('record keeps one scrape before the window as the baseline', () => {
    const w: WorkerState = { url: 'u', id: 'w', up: true, history: [] };
    for (let t = 0; t <= 10_000; t += 1000) record(w, scrape(t, t / 100), 3000);
    assert.deepEqual(
      w.history.map((s) => s.time),
      [7000, 8000, 9000, 10_000],
    );
  });
});

/** A worker's metrics as prom-client serves them, with the modelhost's metric names. */
function fakeModelhost() {
  const r = new client.Registry();
  r.setDefaultLabels({ service: 'modelhost' });
  const mv = ['model', 'version'] as const;
  return {
    r,
    requests: new client.Counter({ name: 'modelhost_requests_total', help: 'h', labelNames: [...mv, 'code'], registers: [r] }),
    errors: new client.Counter({ name: 'modelhost_errors_total', help: 'h', labelNames: [...mv, 'code'], registers: [r] }),
    duration: new client.Histogram({ name: 'modelhost_request_duration_seconds', help: 'h', labelNames: mv, buckets: LATENCY_BUCKETS_SECONDS, registers: [r] }),
    batch: new client.Histogram({ name: 'modelhost_batch_size', help: 'h', labelNames: mv, buckets: [1, 2, 4, 8], registers: [r] }),
  };
}

describe('summarize across workers', () => {
  test('rates, error rate, quantiles, mean batch and workers of each model, from real prom-client text', async () => {
    const a = fakeModelhost();
    const b = fakeModelhost();
    const workers: WorkerState[] = [
      { url: 'http://a', id: 'modelhost-1', up: true, history: [] },
      { url: 'http://b', id: 'modelhost-2', up: true, history: [] },
    ];
    const loaded = [{ name: 'iris', version: 1, state: 'READY', queue_depth: 2 }];
    // Baseline: traffic before the window counts for nothing.
    a.requests.inc({ model: 'iris', version: '1', code: 'OK' }, 1000);
    for (const [w, m] of [
      [workers[0]!, a],
      [workers[1]!, b],
    ] as const)
      record(w, toScrape(0, parsePromText(await m.r.metrics()), loaded), 60_000);
    // 10 s later: 90 fast + 10 slow requests on a, 5 failures on b, batches of 2 rows.
    for (let i = 0; i < 90; i++) a.duration.observe({ model: 'iris', version: '1' }, 0.004);
    for (let i = 0; i < 10; i++) a.duration.observe({ model: 'iris', version: '1' }, 0.8);
    a.requests.inc({ model: 'iris', version: '1', code: 'OK' }, 100);
    b.requests.inc({ model: 'iris', version: '1', code: 'QUEUE_FULL' }, 5);
    b.errors.inc({ model: 'iris', version: '1', code: 'QUEUE_FULL' }, 5);
    b.requests.inc({ model: '', version: '', code: 'MODEL_NOT_FOUND' }, 7);
    a.requests.inc({ model: 'iris', version: '1', code: 'INVALID_INPUT' }, 20);
    a.requests.inc({ model: 'iris', version: '', code: 'VERSION_NOT_FOUND' }, 5);
    for (let i = 0; i < 50; i++) a.batch.observe({ model: 'iris', version: '1' }, 2);
    for (const [w, m] of [
      [workers[0]!, a],
      [workers[1]!, b],
    ] as const)
      record(w, toScrape(10_000, parsePromText(await m.r.metrics()), loaded), 60_000);

    const [iris, ...rest] = summarize(workers);
    assert.equal(rest.length, 0, 'requests for unknown models (model="") make no row');
    assert.equal(iris!.model, 'iris');
    assert.equal(iris!.requests, 130);
    assert.equal(iris!.requests_per_second, 13);
    assert.equal(iris!.errors_per_second, 0.5, '5xx: QUEUE_FULL');
    assert.equal(iris!.error_rate, Number((5 / 130).toFixed(4)));
    assert.equal(iris!.client_errors_per_second, 2.5, '4xx: INVALID_INPUT and VERSION_NOT_FOUND');
    assert.equal(iris!.client_error_rate, Number((25 / 130).toFixed(4)));
    assert.ok(iris!.latency_seconds.p50! > 0.0025 && iris!.latency_seconds.p50! <= 0.005, String(iris!.latency_seconds.p50));
    assert.ok(iris!.latency_seconds.p95! > 0.5 && iris!.latency_seconds.p95! <= 1, String(iris!.latency_seconds.p95));
    assert.ok(Math.abs(iris!.latency_seconds.mean! - (90 * 0.004 + 10 * 0.8) / 100) < 1e-6);
    assert.equal(iris!.batch_size_mean, 2);
    assert.equal(iris!.queue_depth, 4);
    assert.deepEqual(iris!.workers, ['modelhost-1', 'modelhost-2']);
    assert.deepEqual(iris!.versions, [1]);
  });

  test('a model whose series the workers dropped (deleted) leaves the summary at the next scrape', async () => {
    const a = fakeModelhost();
    const w: WorkerState = { url: 'http://a', id: 'modelhost-1', up: true, history: [] };
    const loaded = [{ name: 'iris', version: 1, state: 'READY', queue_depth: 0 }];
    record(w, toScrape(0, parsePromText(await a.r.metrics()), loaded), 60_000);
    a.requests.inc({ model: 'iris', version: '1', code: 'OK' }, 10);
    a.requests.inc({ model: 'gone', version: '2', code: 'OK' }, 10);
    record(w, toScrape(1000, parsePromText(await a.r.metrics()), loaded), 60_000);
    assert.deepEqual(
      summarize([w]).map((m) => m.model),
      ['gone', 'iris'],
    );
    a.requests.remove({ model: 'gone', version: '2', code: 'OK' });
    record(w, toScrape(2000, parsePromText(await a.r.metrics()), loaded), 60_000);
    assert.deepEqual(
      summarize([w]).map((m) => m.model),
      ['iris'],
      'its increases in the window no longer count',
    );
    // Loaded on a worker without any series yet: still there.
    record(w, toScrape(3000, [], [{ name: 'fresh', version: 1, state: 'READY', queue_depth: 0 }]), 60_000);
    assert.deepEqual(
      summarize([w]).map((m) => m.model),
      ['fresh'],
    );
  });

  test('isClientError: 4xx codes from the error catalogue', () => {
    for (const code of ['INVALID_INPUT', 'VERSION_NOT_FOUND', 'BODY_TOO_LARGE', 'RATE_LIMITED']) assert.equal(isClientError(code), true, code);
    for (const code of ['OK', 'QUEUE_FULL', 'MODEL_NOT_READY', 'DEADLINE_EXCEEDED', 'INTERNAL', 'NOT_A_CODE']) assert.equal(isClientError(code), false, code);
  });

  test('a worker that is down adds no loaded models and no queue', () => {
    const w: WorkerState = {
      url: 'u',
      id: 'modelhost-1',
      up: false,
      history: [toScrape(0, [], [{ name: 'iris', version: 1, state: 'READY', queue_depth: 3 }])],
    };
    assert.deepEqual(summarize([w]), []);
  });
});
