/** The exposition-format reader against what prom-client really serves. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { client } from '@inferrer/telemetry';
import { parsePromText } from '../src/prom-text.ts';

test('reads counters, gauges and histograms with escaped label values', async () => {
  const r = new client.Registry();
  const c = new client.Counter({ name: 'x_total', help: 'h', labelNames: ['model', 'code'], registers: [r] });
  c.inc({ model: 'a "quoted"\\name\nnext', code: 'OK' }, 3);
  new client.Gauge({ name: 'g', help: 'h', registers: [r] }).set(-1.5);
  const h = new client.Histogram({ name: 'h_seconds', help: 'h', buckets: [0.1, 1], registers: [r] });
  h.observe(0.05);
  h.observe(5);
  const samples = parsePromText(await r.metrics());
  assert.deepEqual(
    samples.find((s) => s.name === 'x_total'),
    { name: 'x_total', labels: { model: 'a "quoted"\\name\nnext', code: 'OK' }, value: 3 },
  );
  assert.equal(samples.find((s) => s.name === 'g')!.value, -1.5);
  assert.deepEqual(
    samples.filter((s) => s.name === 'h_seconds_bucket').map((s) => [s.labels.le, s.value]),
    [
      ['0.1', 1],
      ['1', 1],
      ['+Inf', 2],
    ],
  );
  assert.equal(samples.find((s) => s.name === 'h_seconds_sum')!.value, 5.05);
});

test('skips comments, blank and broken lines; reads NaN, ±Inf and timestamps', () => {
  const s = parsePromText('# HELP a b\n\na 1 1700000000000\nb{x="1"} NaN\nc +Inf\nd{x="unterminated} 1\n{} 2\ne -Inf\n');
  assert.deepEqual(
    s.map((x) => x.name),
    ['a', 'b', 'c', 'e'],
  );
  assert.equal(s[0]!.value, 1);
  assert.ok(Number.isNaN(s[1]!.value));
  assert.equal(s[2]!.value, Infinity);
  assert.equal(s[3]!.value, -Infinity);
});

test('with a filter, reads only the metric names it keeps (names with digits and colons included)', () => {
  const text = 'a_total{x="1"} 1\nb:rate5m 2\nh2_bucket{le="1"} 3\nkept_total{x="a\\"b"} 4\nkept_total 5\nbroken{x="1 6\n';
  const kept = new Set(['b:rate5m', 'h2_bucket', 'kept_total', 'broken']);
  assert.deepEqual(
    parsePromText(text, (n) => kept.has(n)).map((s) => [s.name, s.value]),
    [
      ['b:rate5m', 2],
      ['h2_bucket', 3],
      ['kept_total', 4],
      ['kept_total', 5],
    ],
  );
  assert.deepEqual(
    parsePromText(text, () => false),
    [],
  );
  assert.equal(parsePromText(text).length, 5);
});
