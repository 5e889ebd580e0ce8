/**
 * Drift detection end to end: a reference profile computed from sample rows (CSV) or sent with the model,
 * live statistics in both modelhosts, cluster-wide scores from the metrics service (scraping every 300 ms),
 * served at GET /api/v1/models/{name}/drift and exported to Prometheus; and a profile captured from live
 * requests. Traffic is synthetic iris-like rows from a seeded generator.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DEMO, type TestCluster, api, startTestCluster, uploadModel } from '../helpers/cluster.ts';

const MEANS = [5.84, 3.05, 3.76, 1.2];
const STDS = [0.83, 0.43, 1.76, 0.76];
const NAMES = ['input[0]', 'input[1]', 'input[2]', 'input[3]'];

function generator(seed: number): () => number {
  let a = seed >>> 0;
  const u = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
}
function rows(n: number, seed: number, shift = [0, 0, 0, 0]): number[][] {
  const g = generator(seed);
  return Array.from({ length: n }, () => MEANS.map((m, j) => Number((m + STDS[j]! * (g() + shift[j]!)).toFixed(3))));
}

let c: TestCluster;
before(async () => {
  c = await startTestCluster({ metricsEnv: { SCRAPE_INTERVAL_MS: '300', DRIFT_MIN_SAMPLES: '300', HOST_METRICS: 'false' } });
});
after(async () => {
  await c?.close();
});

async function send(model: string, data: number[][]): Promise<void> {
  for (let i = 0; i < data.length; i += 50) {
    const r = await api(c.url, `/api/v1/models/${model}/prediction`, { json: { values: data.slice(i, i + 50) } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
}

/** The drift answer once the window holds `samples` rows (the metrics service scrapes every 300 ms). */
async function driftWhen(model: string, ready: (d: any) => boolean): Promise<any> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const r = await api(c.url, `/api/v1/models/${model}/drift`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const d = r.body.drift.find((x: any) => x.version === 1);
    if (d && ready(d)) return d;
    if (Date.now() > deadline) assert.fail(`drift of ${model} never got there: ${JSON.stringify(r.body)}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

const inputs = (d: any) => Object.fromEntries(d.features.filter((f: any) => f.side === 'input').map((f: any) => [f.feature, f]));

describe('drift detection', () => {
  let profile: any;

  test('a profile computed from CSV sample rows is stored with the version', async () => {
    assert.equal((await uploadModel(c.url, 'drift-a', path.join(DEMO, 'iris.onnx'))).status, 201);
    const csv = `sepal_length,sepal_width,petal_length,petal_width\n${rows(2000, 1)
      .map((r) => r.join(','))
      .join('\n')}\n`;
    const put = await api(c.url, '/api/v1/models/drift-a/versions/1/profile', { method: 'PUT', body: csv, headers: { 'content-type': 'text/csv' } });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.deepEqual(put.body.profile.inputs, NAMES);
    const got = await api(c.url, '/api/v1/models/drift-a/versions/1/profile');
    profile = got.body.profile;
    assert.equal(profile.source, 'sample');
    assert.equal(profile.samples, 2000);
    assert.equal(profile.inputs[2].edges.length, 11);
    assert.ok(Math.abs(profile.inputs[2].mean - 3.76) < 0.15);
    const described = await api(c.url, '/api/v1/models/drift-a');
    assert.equal(described.body.model.version_details[0].profile.samples, 2000, 'descriptions carry the summary');
    assert.equal(described.body.model.version_details[0].profile.inputs, 4);
  });

  test('bad profiles and rows are refused with INVALID_PROFILE; no profile yet is PROFILE_NOT_FOUND', async () => {
    const bad = await api(c.url, '/api/v1/models/drift-a/versions/1/profile', {
      method: 'PUT',
      json: { inputs: [{ name: 'x', mean: 0, std: 1, edges: [0, 1, 2], counts: [1] }] },
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'INVALID_PROFILE');
    const empty = await api(c.url, '/api/v1/models/drift-a/versions/1/profile', { method: 'PUT', json: { inputs: [] } });
    assert.equal(empty.status, 400, 'a profile of no input compares nothing (the fuzzing stored one)');
    assert.match(empty.body.error.message, /at least one input/);
    const short = await api(c.url, '/api/v1/models/drift-a/versions/1/profile', { method: 'PUT', json: [[1, 2, 3]] });
    assert.equal(short.body.error.code, 'INVALID_PROFILE');
    assert.match(short.body.error.message, /4 finite numbers/);
    assert.equal((await api(c.url, '/api/v1/models/iris/versions/1/profile')).body.error.code, 'PROFILE_NOT_FOUND');
  });

  test('too few samples say so instead of a score', async () => {
    await send('drift-a', rows(40, 2));
    const d = await driftWhen('drift-a', (x) => x.samples >= 40);
    assert.equal(d.status, 'too_few_samples');
    assert.equal(d.min_samples, 300);
    for (const f of d.features) assert.deepEqual([f.status, f.psi, f.zscore], ['too_few_samples', null, null]);
  });

  test('traffic drawn from the reference distribution stays below the warning threshold', async () => {
    await send('drift-a', rows(700, 3));
    const d = await driftWhen('drift-a', (x) => x.samples >= 740);
    assert.equal(d.workers, 2, 'both workers counted');
    const f = inputs(d);
    assert.deepEqual(Object.keys(f), NAMES);
    for (const name of NAMES) {
      assert.equal(f[name].status, 'ok', JSON.stringify(f[name]));
      assert.ok(f[name].psi < d.thresholds.psi_warning && Math.abs(f[name].zscore) < d.thresholds.z_warning);
      assert.equal(f[name].samples, 740);
    }
    assert.equal(d.window_seconds, 900);
  });

  test('traffic with one shifted feature is flagged on that feature and no other (profile sent with the upload)', async () => {
    const { source: _s, created_at: _c, ...sent } = profile;
    assert.equal((await uploadModel(c.url, 'drift-b', path.join(DEMO, 'iris.onnx'), { profile: sent })).status, 201);
    await send('drift-b', rows(700, 4, [0, 0, 1.5, 0]));
    const d = await driftWhen('drift-b', (x) => x.samples >= 700);
    const f = inputs(d);
    assert.equal(f['input[2]'].status, 'drift', JSON.stringify(f['input[2]']));
    assert.ok(f['input[2]'].psi > 0.25 && f['input[2]'].zscore > 1);
    for (const name of ['input[0]', 'input[1]', 'input[3]']) assert.equal(f[name].status, 'ok', JSON.stringify(f[name]));
    assert.equal(d.status, 'drift');
    // Prometheus: scores with bounded labels, and the thresholds the alert rules compare with.
    const text = await (await fetch(`${c.metrics!.url}/metrics`)).text();
    const line = (name: string, ...labels: string[]) => text.split('\n').find((l) => l.startsWith(`${name}{`) && labels.every((x) => l.includes(x)));
    const psi = line('metrics_drift_psi', 'model="drift-b"', 'version="1"', 'side="input"', 'feature="input[2]"');
    assert.ok(psi && Number(psi.split(' ').at(-1)) > 0.25, `metrics_drift_psi exported: ${psi}`);
    assert.equal(line('metrics_drift_threshold', 'model="drift-b"', 'statistic="psi"', 'severity="critical"')?.split(' ').at(-1), '0.25');
    assert.equal(line('metrics_drift_samples', 'model="drift-b"')?.split(' ').at(-1), '700');
  });

  test('a profile captured from the next N live requests covers inputs and outputs', async () => {
    assert.equal((await uploadModel(c.url, 'drift-c', path.join(DEMO, 'iris.onnx'))).status, 201);
    const start = await api(c.url, '/api/v1/models/drift-c/profile/capture', { json: { samples: 300 } });
    assert.equal(start.status, 202, JSON.stringify(start.body));
    assert.equal(start.body.capture.version, 1);
    // Wait until both workers have seen the request, then send the traffic.
    await new Promise((r) => setTimeout(r, 600));
    await send('drift-c', rows(400, 5));
    const deadline = Date.now() + 15_000;
    let got: any;
    for (;;) {
      got = await api(c.url, '/api/v1/models/drift-c/versions/1/profile');
      if (got.status === 200 || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 300));
    }
    assert.equal(got.status, 200, JSON.stringify(got.body));
    const p = got.body.profile;
    assert.equal(p.source, 'capture');
    assert.ok(p.samples >= 300);
    assert.deepEqual(
      p.inputs.map((f: any) => f.name),
      NAMES,
    );
    assert.deepEqual(
      p.outputs.map((f: any) => f.name),
      ['label', 'probabilities:class', 'probabilities:score'],
    );
    assert.ok(Math.abs(p.inputs[0].mean - 5.84) < 0.2);
    assert.deepEqual((await api(c.url, '/api/v1/models/drift-c/profile/capture')).body.capture, null, 'the capture ended');
  });
});
