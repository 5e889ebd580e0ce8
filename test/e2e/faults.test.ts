/**
 * Failures that must cost the client nothing: a modelhost killed (-9) or stopped (SIGTERM, it drains)
 * under steady load, and a new model version rolled out under load.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DEMO, type TestCluster, api, startTestCluster, steadyLoad, uploadModel, waitReady } from '../helpers/cluster.ts';

let c: TestCluster;
before(async () => {
  c = await startTestCluster();
});
after(async () => {
  await c?.close();
});

const ROW = [6.7, 2.5, 5.8, 1.8];

async function predictOutcome(): Promise<string> {
  const r = await api(c.url, '/api/v1/models/iris/prediction', { json: { values: ROW } });
  if (r.status === 200 && r.body.values?.[0] === 2) return `ok v${r.body.model_version}`;
  return `status ${r.status} ${r.body?.error?.code ?? ''} ${r.body?.error?.message ?? ''}`;
}

function failures(counts: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).filter(([k]) => !k.startsWith('ok')));
}

/** Both workers answer through the balancer (nginx keeps a failed worker out for fail_timeout). */
async function waitBothServing(ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const r = await api(c.url, '/api/test/sendtomodelhost', { json: { data: Array.from({ length: 20 }, (_, i) => String(i)) } });
    if (r.status === 200 && new Set(r.body.results.map((x: { modelhost: string }) => x.modelhost)).size === 2) return;
    await new Promise((res) => setTimeout(res, 200));
  }
  assert.fail('both modelhosts did not come back into the balancer');
}

describe('faults under steady load', () => {
  test('kill -9 of a modelhost costs no request; the launcher restarts it', async () => {
    const victim = c.modelhosts[0]!;
    const pid = victim.process.pid;
    let stop = false;
    const load = steadyLoad(8, predictOutcome, () => stop);
    await new Promise((r) => setTimeout(r, 800));
    victim.process.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 1500));
    stop = true;
    const counts = await load;
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    assert.ok(total > 100, `load was steady: ${JSON.stringify(counts)}`);
    assert.deepEqual(failures(counts), {}, `no failed request: ${JSON.stringify(counts)}`);
    await waitReady(victim.url);
    assert.notEqual(victim.process.pid, pid, 'a new process serves the worker again');
    await waitBothServing();
  });

  test('SIGTERM drains a modelhost without failing requests', async () => {
    await waitBothServing();
    const victim = c.modelhosts[1]!;
    let stop = false;
    const load = steadyLoad(8, predictOutcome, () => stop);
    await new Promise((r) => setTimeout(r, 800));
    victim.process.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 1500));
    stop = true;
    const counts = await load;
    assert.deepEqual(failures(counts), {}, JSON.stringify(counts));
    await waitReady(victim.url);
  });

  test('a new version rolled out under load: no request fails, and the new version takes over', async () => {
    await waitBothServing();
    let stop = false;
    const load = steadyLoad(8, predictOutcome, () => stop);
    await new Promise((r) => setTimeout(r, 500));
    const up = await uploadModel(c.url, 'iris', path.join(DEMO, 'iris.onnx'), { description: 'iris, second upload' });
    assert.equal(up.status, 201, JSON.stringify(up.body));
    const version = up.body.version as number;
    // Keep the load on until every worker answers with the new version.
    const end = Date.now() + 10_000;
    let seen = new Set<string>();
    while (Date.now() < end) {
      const r = await api(c.url, '/api/test/sendtomodelhost', { json: { data: ['a'] } });
      assert.equal(r.status, 200);
      const answers = await Promise.all(Array.from({ length: 10 }, predictOutcome));
      seen = new Set(answers);
      if (seen.size === 1 && seen.has(`ok v${version}`)) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    stop = true;
    const counts = await load;
    assert.deepEqual([...seen], [`ok v${version}`], 'every worker serves the new version');
    assert.deepEqual(failures(counts), {}, JSON.stringify(counts));
    assert.ok(
      (counts[`ok v${version - 1}`] ?? 0) > 0 && (counts[`ok v${version}`] ?? 0) > 0,
      `both versions served during the switch: ${JSON.stringify(counts)}`,
    );
  });

  test('nginx reloaded again and again under steady load costs no request', { skip: process.env.E2E_BALANCER === 'builtin' }, async (t) => {
    if (c.balancer.kind !== 'nginx') return t.skip('the balancer is not nginx here');
    await waitBothServing();
    const pid = c.balancer.process.pid!;
    let stop = false;
    // A reload closes the old nginx workers' idle keep-alive connections: a prediction the Inferrer writes
    // on one of them as it closes finds the connection gone before any answer.
    const load = steadyLoad(8, predictOutcome, () => stop);
    for (let i = 0; i < 25; i++) {
      await new Promise((r) => setTimeout(r, 120));
      process.kill(pid, 'SIGHUP');
    }
    await new Promise((r) => setTimeout(r, 500));
    stop = true;
    const counts = await load;
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    assert.ok(total > 200, `load was steady: ${JSON.stringify(counts)}`);
    assert.deepEqual(failures(counts), {}, `no failed request across 25 reloads: ${JSON.stringify(counts)}`);
  });
});
