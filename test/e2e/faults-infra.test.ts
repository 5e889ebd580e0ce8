/**
 * Infrastructure faults: the model volume fills up during an upload, and the load balancer stops under
 * steady load. For each: what the client saw, that nothing stored was lost or half-written, and that the
 * cluster recovers without a restart. Prints the counts (they go into the closing report).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { DEMO, type TestCluster, api, snapshotStore, stagingLeftovers, startTestCluster, steadyLoad, uploadModel } from '../helpers/cluster.ts';

const row = { values: [6.7, 2.5, 5.8, 1.8] };
const clusters: TestCluster[] = [];
let mountPoint: string | undefined;
after(async () => {
  for (const c of clusters) await c.close();
  if (mountPoint) {
    try {
      execFileSync('umount', [mountPoint]);
    } catch {
      // already gone
    }
    await rm(mountPoint, { recursive: true, force: true });
  }
});

/** A 3 MiB tmpfs for the model store, or undefined where mounting is not allowed. */
async function tinyVolume(): Promise<string | undefined> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', dir], { stdio: 'ignore' });
    mountPoint = dir;
    return dir;
  } catch {
    await rm(dir, { recursive: true, force: true });
    return undefined;
  }
}

describe('infrastructure faults', () => {
  test('the volume fills up during an upload: 507, nothing stored changes, and the store works once there is room', async (t) => {
    const volume = await tinyVolume();
    if (!volume) {
      t.skip('mounting a tmpfs needs root with CAP_SYS_ADMIN');
      return;
    }
    const c = await startTestCluster({ modelDir: path.join(volume, 'models') });
    clusters.push(c);
    const before = await snapshotStore(c.modelDir);
    const outcomes: Record<string, number> = {};
    // Bigger than what is left: the write fails part-way through.
    for (const type of ['multipart', 'raw'] as const) {
      const big = Buffer.alloc(4 * 1024 * 1024, 1);
      const r =
        type === 'multipart'
          ? await (async () => {
              const form = new FormData();
              form.append('path', new Blob([big]), 'big.onnx');
              return api(c.url, '/api/v1/models/huge', { method: 'PUT', body: form });
            })()
          : await api(c.url, '/api/v1/models/huge', { method: 'PUT', body: big, headers: { 'content-type': 'application/octet-stream' } });
      outcomes[`${type}: ${r.status} ${r.body?.error?.code}`] = 1;
      assert.equal(r.status, 507, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'STORAGE_FULL');
      assert.deepEqual(await snapshotStore(c.modelDir), before, 'nothing stored changed');
      assert.deepEqual(await stagingLeftovers(c.modelDir), [], 'the partial upload was removed');
    }
    // Predictions never stopped, and a model that fits still uploads.
    assert.equal((await api(c.url, '/api/v1/models/iris/prediction', { json: row })).status, 200);
    const small = await uploadModel(c.url, 'fits', path.join(DEMO, 'iris.onnx'));
    assert.equal(small.status, 201, JSON.stringify(small.body));
    console.log(`disk full during upload: ${JSON.stringify(outcomes)}`);
  });

  test('the load balancer dies under steady load: explicit 502s only while it is down, then full recovery', async () => {
    const c = await startTestCluster();
    clusters.push(c);
    let stop = false;
    const load = steadyLoad(
      8,
      async () => {
        const r = await api(c.url, '/api/v1/models/iris/prediction', { json: row });
        return r.status === 200 ? 'ok' : `${r.status} ${r.body?.error?.code}${r.headers.get('retry-after') ? ' (Retry-After)' : ''}`;
      },
      () => stop,
    );
    await new Promise((r) => setTimeout(r, 600));
    c.balancer.process.kill('SIGKILL');
    // The launcher restarts it; wait until it answers again, then keep the load on a little longer.
    const end = Date.now() + 15_000;
    while (Date.now() < end) {
      await new Promise((r) => setTimeout(r, 100));
      try {
        if ((await fetch(`${c.balancerUrl}/health/ready`)).ok) break;
      } catch {
        // still down
      }
    }
    await new Promise((r) => setTimeout(r, 800));
    stop = true;
    const counts = await load;
    console.log(`balancer killed under load: ${JSON.stringify(counts)}`);
    assert.ok((counts.ok ?? 0) > 50, JSON.stringify(counts));
    for (const k of Object.keys(counts))
      assert.ok(k === 'ok' || k === '502 UPSTREAM_UNAVAILABLE (Retry-After)', `only explicit 502s: ${JSON.stringify(counts)}`);
    // Recovered without restarting anything else.
    const after = await Promise.all(Array.from({ length: 20 }, () => api(c.url, '/api/v1/models/iris/prediction', { json: row })));
    assert.ok(after.every((a) => a.status === 200));
    assert.equal(c.inferrer.restarts, 0);
    assert.deepEqual(
      c.modelhosts.map((m) => m.process.restarts),
      [0, 0],
    );
    assert.ok(JSON.parse(await readFile(path.join(c.modelDir, 'iris', 'model.json'), 'utf8')).name === 'iris');
  });
});
