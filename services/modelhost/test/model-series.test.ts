import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LATENCY_BUCKETS_SECONDS, client } from '@inferrer/telemetry';
import { ModelhostMetrics } from '../src/metrics.ts';
import { ModelSeries } from '../src/model-series.ts';

/** The samples of an exposition: `name{labels sorted}` → value, and each family's help and type. */
function samples(text: string): { values: Map<string, string>; meta: Map<string, string> } {
  const values = new Map<string, string>();
  const meta = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (m) {
      meta.set(`${m[1]} ${m[2]}`, m[3]!);
      continue;
    }
    const s = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(s, `not a sample line: ${line}`);
    const labels = (s[2] ?? '').match(/[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"/g) ?? [];
    const key = `${s[1]}{${[...labels].sort().join(',')}}`;
    assert.ok(!values.has(key), `two samples for ${key}`);
    values.set(key, s[3]!);
  }
  return { values, meta };
}

describe('per-model series', () => {
  test('write the same exposition as prom-client for the same observations (escaping, buckets, +Inf, sums, removal)', async () => {
    const registry = new client.Registry();
    registry.setDefaultLabels({ service: 'modelhost' });
    const ours = new ModelSeries({ service: 'modelhost' });
    const help = 'Time "from" request\\to answer\nin two lines';
    const theirs = {
      h: new client.Histogram({ name: 't_duration_seconds', help, labelNames: ['model', 'version'], buckets: LATENCY_BUCKETS_SECONDS, registers: [registry] }),
      c: new client.Counter({ name: 't_requests_total', help: 'Requests', labelNames: ['model', 'version', 'code'], registers: [registry] }),
      b: new client.Histogram({ name: 't_batch_size', help: 'Rows', labelNames: ['model'], buckets: [1, 2, 4], registers: [registry] }),
    };
    const mine = {
      h: ours.histogram({ name: 't_duration_seconds', help, labelNames: ['model', 'version'], buckets: LATENCY_BUCKETS_SECONDS }),
      c: ours.counter({ name: 't_requests_total', help: 'Requests', labelNames: ['model', 'version', 'code'] }),
      b: ours.histogram({ name: 't_batch_size', help: 'Rows', labelNames: ['model'], buckets: [1, 2, 4] }),
    };
    const names = ['iris', 'm-7', 'odd"name\\with\nbreaks', 'gone'];
    const durations = [0, 0.0005, 0.0004, 0.003, 0.0025, 1e-9, 0.7, 59.9, 60, 61, 1e6, 0.1 + 0.2];
    for (const [i, model] of names.entries()) {
      for (const d of durations.slice(i)) {
        theirs.h.observe({ model, version: '1' }, d);
        mine.h.observe({ model, version: '1' }, d);
      }
      for (const [code, n] of [
        ['OK', 3 + i],
        ['QUEUE_FULL', 0.5],
      ] as const) {
        theirs.c.inc({ model, version: String(i + 1), code }, n);
        mine.c.inc({ model, version: String(i + 1), code }, n);
      }
      for (const rows of [1, 2, 3, 4, 5, 16]) {
        theirs.b.observe({ model }, rows);
        mine.b.observe({ model }, rows);
      }
    }
    // A series removed on both sides, and a family that has none left.
    theirs.h.remove({ model: 'gone', version: '1' });
    mine.h.remove({ model: 'gone', version: '1' });
    const a = samples(await registry.metrics());
    const b = samples(await ours.render());
    assert.equal(b.values.size, a.values.size);
    assert.deepEqual(b.values, a.values);
    assert.deepEqual(b.meta, a.meta);
    assert.ok(!(await ours.render()).includes('model="gone",version="1",service'), 'the removed series is gone');
    assert.deepEqual(
      mine.c.labelSets().map((l) => l.model),
      names.flatMap((n) => [n, n]),
    );
    assert.throws(() => mine.c.inc({ model: 'iris', version: '1', code: 'OK' }, -1), /finite amount ≥ 0/);
    assert.throws(() => mine.h.observe({ model: 'iris', version: '1' }, Number.NaN), /not a finite number/);
  });

  test('a scrape of a worker that served 400 models lets other work in between its families', async () => {
    const metrics = new ModelhostMetrics(() => undefined);
    const hooks = metrics.hooks();
    for (let i = 0; i < 400; i++) {
      const model = `m-${i}`;
      const o = hooks.observer(model, 1);
      o.onBatch?.(1, 1, 0.2);
      o.onQueued?.(0.1);
      hooks.onLoad?.(model, 1, 0.005, true);
      hooks.onUnload?.(model, 1, 'evicted');
      metrics.requests.inc({ model, version: '1', code: 'OK' });
      metrics.requestDuration.observe({ model, version: '1' }, 0.004);
    }
    // Turns of the event loop that other work (requests) got while the scrape was written: none when the
    // whole exposition (about 36,600 lines) is written in one stretch, as prom-client alone does.
    let turns = 0;
    let counting = true;
    const count = (): void => {
      if (!counting) return;
      turns++;
      setImmediate(count);
    };
    setImmediate(count);
    const text = await metrics.render();
    counting = false;
    assert.ok(text.split('\n').length > 36_000, `${text.split('\n').length} lines`);
    assert.match(text, /^modelhost_request_duration_seconds_bucket\{le="0.005",model="m-399",version="1",service="modelhost"\} 1$/m);
    assert.ok(turns >= 10, `other work got ${turns} turns of the event loop during the scrape`);
  });
});
