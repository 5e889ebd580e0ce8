/**
 * The Prometheus files checked by Prometheus' own tool (Debian's prometheus package): every scrape
 * configuration variant and the alert rules pass `promtool check`, and `promtool test rules` runs the
 * unit tests in prometheus/tests/ (each alert fires when it should and stays quiet when it should).
 * Also: every alert carries summary, description and runbook, and every alert is tested firing.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { REPO } from '../helpers/cluster.ts';

const PROM_DIR = path.join(REPO, 'prometheus');
const PROMTOOL = ['/usr/bin/promtool', '/usr/local/bin/promtool'].find((p) => existsSync(p)) ?? 'promtool';
const RULES = path.join(PROM_DIR, 'alert_rules.yml');
const RULE_TESTS = path.join(PROM_DIR, 'tests', 'alert_rules.test.yml');

function promtool(...args: string[]): { status: number | null; out: string } {
  const r = spawnSync(PROMTOOL, args, { cwd: REPO, encoding: 'utf8' });
  if (r.error) throw new Error(`promtool could not run (apt-get install prometheus): ${r.error.message}`);
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

interface Rule {
  alert: string;
  expr: string;
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
}
const rules = (parse(readFileSync(RULES, 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);

/** Without promtool (a machine with only Node), these checks skip and say why; CI installs it (.ci/run). */
const NO_PROMTOOL = spawnSync(PROMTOOL, ['--version']).status === 0 ? false : 'promtool is not installed (apt-get install prometheus; .ci/run does)';

describe('promtool', { skip: NO_PROMTOOL }, () => {
  test('check rules: alert_rules.yml', () => {
    const r = promtool('check', 'rules', RULES);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, new RegExp(`SUCCESS: ${rules.length} rules found`));
  });

  for (const file of readdirSync(PROM_DIR).filter((f) => /^prometheus.*\.yml$/.test(f))) {
    test(`check config: ${file}`, (t) => {
      const r = promtool('check', 'config', path.join(PROM_DIR, file));
      // Debian builds Prometheus without Kubernetes service discovery; elsewhere the file is checked fully.
      if (r.status !== 0 && /field kubernetes_sd_configs not found/.test(r.out)) {
        t.skip('this promtool is built without kubernetes_sd_configs (Debian); the file is checked by the YAML test below');
        return;
      }
      assert.equal(r.status, 0, r.out);
      assert.match(r.out, /SUCCESS: 1 rule files found/);
    });
  }

  test('test rules: every alert fires when it should and stays quiet when it should', () => {
    const r = promtool('test', 'rules', RULE_TESTS);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /SUCCESS/);
  });
});

describe('the rules themselves', () => {
  test('every alert has a severity, a summary, a description and a runbook line pointing into docs/operations.md', () => {
    const ops = readFileSync(path.join(REPO, 'docs', 'operations.md'), 'utf8');
    for (const r of rules) {
      assert.match(r.labels?.severity ?? '', /^(critical|warning)$/, r.alert);
      for (const k of ['summary', 'description', 'runbook']) assert.ok((r.annotations?.[k] ?? '').length > 10, `${r.alert} has ${k}`);
      const anchor = /docs\/operations\.md#([a-z0-9-]+)/.exec(r.annotations!.runbook!)?.[1];
      assert.equal(anchor, r.alert.toLowerCase(), `${r.alert}: runbook points at its own section`);
      assert.match(ops, new RegExp(`^#+ .*${r.alert}`, 'm'), `docs/operations.md has a section for ${r.alert}`);
    }
  });

  test('every alert is tested both firing and quiet', () => {
    const doc = parse(readFileSync(RULE_TESTS, 'utf8')) as { tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[] };
    const cases = doc.tests.flatMap((t) => t.alert_rule_test);
    for (const r of rules) {
      assert.ok(
        cases.some((c) => c.alertname === r.alert && c.exp_alerts.length > 0),
        `${r.alert} is tested firing`,
      );
      assert.ok(
        cases.some((c) => c.alertname === r.alert && c.exp_alerts.length === 0),
        `${r.alert} is tested quiet`,
      );
    }
  });

  test('prometheus.k8s.yml keeps the job names the rules use', () => {
    const cfg = parse(readFileSync(path.join(PROM_DIR, 'prometheus.k8s.yml'), 'utf8')) as any;
    assert.deepEqual(cfg.rule_files, ['alert_rules.yml']);
    const relabel = cfg.scrape_configs[0].relabel_configs.find((x: any) => x.target_label === 'job');
    const re = new RegExp(`^(?:${relabel.regex})$`);
    const job = (name: string): string => name.replace(re, relabel.replacement.replace(/\$(\d)/g, '$$$1'));
    assert.deepEqual(['inferrer', 'modelhost', 'modelhost-gpu', 'metrics', 'balancer'].map(job), ['inferrer', 'modelhost', 'modelhost', 'metrics', 'balancer']);
  });
});
