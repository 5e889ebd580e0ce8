/**
 * The Grafana dashboards' JSON (grafana/provisioning/dashboards): each panel's unit fits what its queries
 * measure (read from the metric names' unit suffixes and the PromQL functions around them), a panel never
 * mixes quantities under one unit, and panels drawn over time take rates over `$__rate_interval`, never
 * `$__range` (one window as wide as the whole dashboard, the same value at every point). What the queries
 * return against a live Prometheus is checked in test/e2e/monitoring.test.ts.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';

const ROOT = path.resolve(import.meta.dirname, '..', '..', 'grafana', 'provisioning', 'dashboards');

type Kind = 'duration' | 'count' | 'per second' | 'bytes' | 'bytes per second' | 'ratio';

/** Grafana unit ids that fit each kind of quantity. */
const UNITS: Record<Kind, string[]> = {
  duration: ['s', 'ms', 'µs', 'ns'],
  count: ['short', 'none'],
  'per second': ['reqps', 'ops', 'rps', 'wps', 'cps'],
  bytes: ['bytes', 'decbytes'],
  'bytes per second': ['Bps', 'binBps', 'decBps'],
  ratio: ['percentunit'],
};

/** Panels that draw values over time (the rest, such as stat, show one value for the range). */
const OVER_TIME = new Set(['timeseries', 'heatmap', 'barchart', 'state-timeline', 'status-history', 'graph']);

interface Panel {
  id: number;
  type: string;
  title: string;
  fieldConfig?: { defaults?: { unit?: string } };
  targets?: { expr: string }[];
  panels?: Panel[];
}

const PROMQL_WORDS = new Set([
  'sum',
  'avg',
  'min',
  'max',
  'count',
  'rate',
  'irate',
  'increase',
  'histogram_quantile',
  'abs',
  'by',
  'without',
  'on',
  'and',
  'or',
  'unless',
  'group_left',
  'group_right',
  'offset',
]);

/** The metric names an expression reads, in order. */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\b(by|without)\s*\([^)]*\)/g, '');
  return [...stripped.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)].map((m) => m[0]).filter((n) => !PROMQL_WORDS.has(n));
}

/** What a metric measures, from its unit suffix (docs/operations.md: names carry their unit). */
function suffixKind(name: string): Kind {
  const base = name.replace(/_(total|bucket|sum|count)$/, '');
  if (/_seconds$/.test(base)) return 'duration';
  if (/_bytes$/.test(base)) return 'bytes';
  if (/_ratio$/.test(base)) return 'ratio';
  if (/_per_second$/.test(base)) return 'per second';
  return 'count';
}

/** What one query's result measures. */
function kindOf(expr: string, panelType: string): Kind {
  const names = metricNames(expr);
  assert.ok(names.length > 0, `no metric in ${expr}`);
  const first = names[0]!;
  // Quantiles, and the y axis of a heatmap of buckets, are in the unit of the observed value.
  if (/histogram_quantile\s*\(/.test(expr) || (panelType === 'heatmap' && first.endsWith('_bucket'))) return suffixKind(first);
  // increase() counts events over the window.
  if (/\bincrease\s*\(/.test(expr)) return 'count';
  // rate(x_sum) / rate(x_count): the mean of the observed value.
  if (names.length === 2 && first.endsWith('_sum') && names[1] === first.replace(/_sum$/, '_count')) return suffixKind(first);
  if (/\b(i?rate)\s*\(/.test(expr)) {
    const k = suffixKind(first);
    if (k === 'bytes') return 'bytes per second';
    if (k === 'duration') return 'ratio'; // seconds per second: a share of time
    return 'per second';
  }
  // a / b of two gauges in the same unit: a share.
  if (names.length === 2 && expr.includes('/') && suffixKind(first) === suffixKind(names[1]!)) return 'ratio';
  return suffixKind(first);
}

/** Everything wrong with a panel; empty when it is right. */
function panelProblems(p: Panel): string[] {
  const problems: string[] = [];
  const targets = p.targets ?? [];
  if (targets.length === 0) return problems;
  const where = `panel ${p.id} "${p.title}"`;
  const kinds = new Set(targets.map((t) => kindOf(t.expr, p.type)));
  const unit = p.fieldConfig?.defaults?.unit;
  if (kinds.size > 1) problems.push(`${where} mixes ${[...kinds].join(' and ')} under one unit (${unit}): split it`);
  for (const k of kinds)
    if (!unit || !UNITS[k].includes(unit)) problems.push(`${where} shows ${k} in unit ${unit ?? '(none)'}; use one of ${UNITS[k].join(', ')}`);
  if (OVER_TIME.has(p.type)) {
    for (const t of targets) {
      if (t.expr.includes('$__range')) problems.push(`${where} is drawn over time but uses $__range: ${t.expr}`);
      for (const m of t.expr.matchAll(/\[([^\]]*)\]/g)) {
        if (m[1] !== '$__rate_interval' && m[1] !== '$__range') problems.push(`${where} takes a window of [${m[1]}] (use [$__rate_interval]): ${t.expr}`);
      }
    }
  }
  return problems;
}

function dashboards(dir = ROOT): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? dashboards(path.join(dir, e.name)) : e.name.endsWith('.json') ? [path.join(dir, e.name)] : [],
  );
}

const allPanels = (panels: Panel[]): Panel[] => panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);

describe('Grafana dashboards', () => {
  const files = dashboards();

  test('there are dashboards to check', () => {
    assert.ok(files.length >= 1, `no dashboard JSON under ${ROOT}`);
  });

  for (const file of files) {
    test(`${path.relative(ROOT, file)}: units fit the quantities; over time, rates use $__rate_interval`, () => {
      const d = JSON.parse(readFileSync(file, 'utf8')) as { panels: Panel[] };
      const panels = allPanels(d.panels).filter((p) => (p.targets ?? []).length > 0);
      assert.ok(panels.length >= 20, `${panels.length} panels with queries`);
      assert.deepEqual(panels.flatMap(panelProblems), []);
      const ids = allPanels(d.panels).map((p) => p.id);
      assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
    });
  }

  test('the check finds a wrong unit, a mixed panel and $__range in a time series', () => {
    const target = (expr: string) => ({ expr });
    // The load panel as it was: a duration and a count under "s", both over [$__range].
    const old: Panel = {
      id: 14,
      type: 'timeseries',
      title: 'Model loads: duration p95 and failures',
      fieldConfig: { defaults: { unit: 's' } },
      targets: [
        target('histogram_quantile(0.95, sum by (model, le) (rate(modelhost_model_load_duration_seconds_bucket[$__range])))'),
        target('sum by (model) (increase(modelhost_model_load_failures_total[$__range]))'),
      ],
    };
    const problems = panelProblems(old);
    assert.ok(
      problems.some((x) => x.includes('mixes duration and count')),
      problems.join('\n'),
    );
    assert.ok(
      problems.some((x) => x.includes('shows count in unit s')),
      problems.join('\n'),
    );
    assert.equal(problems.filter((x) => x.includes('uses $__range')).length, 2, problems.join('\n'));
    assert.deepEqual(
      panelProblems({ ...old, type: 'timeseries', targets: [target('sum(rate(modelhost_requests_total[5m]))')], fieldConfig: { defaults: { unit: 'reqps' } } })
        .length,
      1,
      'a fixed window is reported',
    );
    assert.deepEqual(
      panelProblems({
        ...old,
        type: 'stat',
        targets: [target('sum(increase(modelhost_model_load_failures_total[$__range]))')],
        fieldConfig: { defaults: { unit: 'short' } },
      }),
      [],
      'a stat panel may sum the whole range',
    );
  });

  test('kinds read from names and functions', () => {
    const cases: [string, Kind][] = [
      ['sum by (model) (rate(modelhost_requests_total{code="OK"}[$__rate_interval]))', 'per second'],
      ['histogram_quantile(0.95, sum by (le) (rate(inferrer_request_duration_seconds_bucket[$__rate_interval])))', 'duration'],
      ['sum(rate(inferrer_request_bytes_total[$__rate_interval]))', 'bytes per second'],
      ['sum by (model) (rate(modelhost_batch_size_sum[$__rate_interval])) / sum by (model) (rate(modelhost_batch_size_count[$__rate_interval]))', 'count'],
      ['metrics_host_gpu_memory_used_bytes / metrics_host_gpu_memory_total_bytes', 'ratio'],
      ['modelhost_process_resident_memory_bytes', 'bytes'],
      ['metrics_cluster_model_client_errors_per_second{model=~"$model"}', 'per second'],
      ['sum(up{job="modelhost"})', 'count'],
    ];
    for (const [expr, kind] of cases) assert.equal(kindOf(expr, 'timeseries'), kind, expr);
  });
});
