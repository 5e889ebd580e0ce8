/**
 * Execution plans through the real cluster (issue #17): each modelhost chooses a model's slots × threads
 * and batch size from runs it measures at load, keeps what a model's config sets, and says what it chose
 * and why in the model's configuration (GET /v2/models/{m}/config), in GET /api/v1/models/{name} and in
 * its log.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type TestCluster, DEMO, api, startTestCluster, uploadModel } from '../helpers/cluster.ts';

let c: TestCluster;
before(async () => {
  // Two cores each (whatever this machine has), so two layouts are measured, even for iris (PLAN_CHEAP_MS 0).
  c = await startTestCluster({
    env: { ...process.env, LOG_LEVEL: 'info', WATCH_INTERVAL_MS: '200', PLAN_MEASURE_MS: '10000', PLAN_CHEAP_MS: '0', CPUS: '2', BATCH_SIZE_CAP: '16' },
  });
});
after(async () => {
  await c?.close();
});

async function readyEverywhere(name: string): Promise<void> {
  const until = Date.now() + 60_000;
  while (Date.now() < until) {
    if ((await api(c.url, `/v2/models/${name}/ready`)).status === 200) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`${name} never became ready on every worker`);
}

describe('execution plans', () => {
  test('a preloaded model runs the layout and batch size measured at load; the configuration, the model and the log say so', async () => {
    const described = await api(c.url, '/api/v1/models/iris');
    assert.equal(described.status, 200);
    const e = described.body.model.execution;
    assert.ok(e, JSON.stringify(described.body.model));
    assert.deepEqual(e.sources, { instances: 'measured', intra_op_threads: 'measured', max_batch_size: 'measured' });
    assert.equal(e.cpus, 2);
    assert.equal(e.cpus_from, 'CPUS');
    assert.ok(['1x2', '2x1'].includes(`${e.instances}x${e.intra_op_threads}`), `a layout that uses both cores: ${e.instances}x${e.intra_op_threads}`);
    assert.ok(e.max_batch_size >= 1 && e.max_batch_size <= 16, String(e.max_batch_size));
    const layouts = new Set(e.measured.map((m: { instances: number; intra_op_threads: number }) => `${m.instances}x${m.intra_op_threads}`));
    assert.deepEqual([...layouts].sort(), ['1x2', '2x1']);
    assert.match(e.reason, /measured here \(best of 1 slot × 2 threads \/ 2 slots × 1 thread\)/);

    const cfg = (await api(c.url, '/v2/models/iris/config')).body;
    assert.match(cfg.parameters.execution_plan.string_value, /rows\/s measured here/);
    assert.equal(cfg.parameters.execution_plan_cpus.string_value, '2');
    assert.ok(['1', '2'].includes(cfg.parameters.intra_op_thread_count.string_value));
    assert.equal(cfg.instance_group[0].count * Number(cfg.parameters.intra_op_thread_count.string_value), 2);

    const loaded = c
      .jsonLogs('modelhost-1')
      .concat(c.jsonLogs('modelhost-2'))
      .filter((l) => l.msg === 'model loaded' && l.model === 'iris');
    assert.equal(loaded.length, 2, 'each modelhost loaded iris once');
    for (const l of loaded)
      assert.match(String(l.plan), /^(1 slot × 2 threads|2 slots × 1 thread), (batches of up to \d+|no batching): .* rows\/s measured here/);
  });

  test('a model unloaded and loaded again reuses the plan measured at its first load here', async () => {
    // Each modelhost's own answer (the Inferrer's is one of them).
    const plans = async (): Promise<{ reason: string; instances: number; intra_op_threads: number; max_batch_size: number; measured: unknown[] }[]> =>
      Promise.all(c.modelhosts.map(async (mh) => ((await (await fetch(`${mh.url}/v1/models/iris/settings`)).json()) as { execution: never }).execution));
    const first = await plans();
    assert.equal((await api(c.url, '/v2/repository/models/iris/unload', { method: 'POST' })).status, 200);
    assert.equal((await api(c.url, '/v2/repository/models/iris/load', { method: 'POST' })).status, 200);
    await readyEverywhere('iris');
    const again = await plans();
    for (const [i, e] of again.entries()) {
      const f = first[i]!;
      assert.equal(e.reason, `${f.reason} (measured at an earlier load here)`);
      assert.deepEqual([e.instances, e.intra_op_threads, e.max_batch_size], [f.instances, f.intra_op_threads, f.max_batch_size]);
      assert.deepEqual(e.measured, f.measured);
    }
  });

  test("what a model's config sets is kept, and the plan says where each value came from", async () => {
    const up = await uploadModel(c.url, 'set', path.join(DEMO, 'iris.onnx'), {
      config: { instances: 1, intra_op_threads: 1, batching: { max_batch_size: 4 } },
    });
    assert.equal(up.status, 201, JSON.stringify(up.body));
    await readyEverywhere('set');
    const e = (await api(c.url, '/api/v1/models/set')).body.model.execution;
    assert.deepEqual(e.sources, { instances: 'model config', intra_op_threads: 'model config', max_batch_size: 'model config' });
    assert.deepEqual([e.instances, e.intra_op_threads, e.max_batch_size], [1, 1, 4]);
    assert.equal(e.reason, '1 slot × 1 thread, batches of up to 4 (as set)');
    assert.deepEqual(e.measured, []);
    const cfg = (await api(c.url, '/v2/models/set/config')).body;
    assert.equal(cfg.max_batch_size, 4);
    assert.deepEqual(cfg.instance_group[0].count, 1);
    // It answers like iris does.
    const p = await api(c.url, '/api/v1/models/set/prediction', { json: { values: [6.7, 2.5, 5.8, 1.8] } });
    assert.equal(p.status, 200);
  });
});
