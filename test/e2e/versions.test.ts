/** Zero-downtime model changes: canary split, promote, rollback and a blue-green switch under load. */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DEMO, type TestCluster, api, startTestCluster, steadyLoad, uploadModel } from '../helpers/cluster.ts';

let c: TestCluster;
before(async () => {
  c = await startTestCluster();
  // Version 2 lands beside version 1 without taking traffic.
  const up = await uploadModel(c.url, 'iris', path.join(DEMO, 'iris.onnx'), { make_default: false });
  assert.equal(up.status, 201, JSON.stringify(up.body));
  assert.equal(up.body.model.default_version, 1);
});
after(async () => {
  await c?.close();
});

const row = { values: [6.7, 2.5, 5.8, 1.8] };

async function versionsServed(n: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i += 20) {
    const answers = await Promise.all(Array.from({ length: 20 }, () => api(c.url, '/api/v1/models/iris/prediction', { json: row })));
    for (const a of answers) {
      assert.equal(a.status, 200);
      counts[`v${a.body.model_version}`] = (counts[`v${a.body.model_version}`] ?? 0) + 1;
    }
  }
  return counts;
}

async function settle(check: (counts: Record<string, number>) => boolean): Promise<Record<string, number>> {
  const end = Date.now() + 10_000;
  let counts: Record<string, number> = {};
  while (Date.now() < end) {
    counts = await versionsServed(40);
    if (check(counts)) return counts;
  }
  return counts;
}

describe('versions', () => {
  test('a canary takes its share of traffic, then promote makes it the default', async () => {
    const r = await api(c.url, '/api/v1/models/iris/canary', { json: { version: 2, percent: 30 } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.model.traffic, { '2': 30 });
    await settle((x) => (x.v2 ?? 0) > 0);
    const split = await versionsServed(400);
    const share = (split.v2 ?? 0) / 400;
    assert.ok(share > 0.18 && share < 0.42, `about 30% on the canary: ${JSON.stringify(split)}`);
    // An explicit version still goes where it says.
    const pinned = await api(c.url, '/api/v1/models/iris/prediction?version=1', { json: row });
    assert.equal(pinned.body.model_version, 1);

    const promoted = await api(c.url, '/api/v1/models/iris/promote', { method: 'POST' });
    assert.equal(promoted.status, 200);
    assert.equal(promoted.body.model.default_version, 2);
    assert.deepEqual(promoted.body.model.traffic, {});
    const after = await settle((x) => x.v1 === undefined);
    assert.deepEqual(Object.keys(after), ['v2']);
  });

  test("rollback sends the canary's traffic back to the default", async () => {
    const up = await uploadModel(c.url, 'iris', path.join(DEMO, 'iris.onnx'), { make_default: false });
    assert.equal(up.body.version, 3);
    await api(c.url, '/api/v1/models/iris/canary', { json: { version: 3, percent: 50 } });
    await settle((x) => (x.v3 ?? 0) > 0);
    const r = await api(c.url, '/api/v1/models/iris/rollback', { method: 'POST' });
    assert.equal(r.status, 200);
    const after = await settle((x) => x.v3 === undefined);
    assert.deepEqual(Object.keys(after), ['v2']);
  });

  test('bad canary requests are refused and change nothing', async () => {
    for (const [body, status] of [
      [{ version: 9, percent: 10 }, 404],
      [{ version: 2, percent: 150 }, 400],
      [{ version: 'two', percent: 10 }, 400],
      [{}, 400],
    ] as const) {
      const r = await api(c.url, '/api/v1/models/iris/canary', { json: body });
      assert.equal(r.status, status, JSON.stringify(r.body));
    }
    assert.deepEqual((await api(c.url, '/api/v1/models/iris')).body.model.traffic, {});
  });

  test('a blue-green switch of the default version under load loses no request', async () => {
    let stop = false;
    const load = steadyLoad(
      8,
      async () => {
        const r = await api(c.url, '/api/v1/models/iris/prediction', { json: row });
        return r.status === 200 ? `ok v${r.body.model_version}` : `status ${r.status}`;
      },
      () => stop,
    );
    await new Promise((r) => setTimeout(r, 400));
    const sw = await api(c.url, '/api/v1/models/iris', { json: { default_version: 1 } });
    assert.equal(sw.status, 200);
    await settle((x) => x.v2 === undefined);
    stop = true;
    const counts = await load;
    assert.deepEqual(
      Object.keys(counts).filter((k) => !k.startsWith('ok')),
      [],
      JSON.stringify(counts),
    );
    assert.ok((counts['ok v1'] ?? 0) > 0 && (counts['ok v2'] ?? 0) > 0, JSON.stringify(counts));
  });
});
