/**
 * A folder of models given at start (IMPORT_MODELS_FROM) is imported through the validated upload path:
 * `name.onnx` (+ `name.json` metadata) and Triton's `name/<version>/model.onnx` (+ `name/metadata.json`).
 * A broken model is skipped, the rest are served, and a restart with the same folder changes nothing.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { DEMO, FIXTURES, type TestCluster, api, startTestCluster } from '../helpers/cluster.ts';

let c: TestCluster;
let folder: string;

before(async () => {
  folder = await mkdtemp(path.join(os.tmpdir(), 'inferrer-folder-'));
  await copyFile(path.join(DEMO, 'iris.onnx'), path.join(folder, 'flowers.onnx'));
  await writeFile(path.join(folder, 'flowers.json'), JSON.stringify({ description: 'iris from a folder', labels: ['setosa', 'versicolor', 'virginica'] }));
  for (const [v, file] of [
    [1, path.join(DEMO, 'iris.onnx')],
    [2, path.join(FIXTURES, 'fixed_batch.onnx')],
  ] as const) {
    await mkdir(path.join(folder, 'triton-style', String(v)), { recursive: true });
    await copyFile(file, path.join(folder, 'triton-style', String(v), 'model.onnx'));
  }
  await writeFile(
    path.join(folder, 'triton-style', 'metadata.json'),
    JSON.stringify({ description: 'two versions', config: { batching: { max_batch_size: 4 } } }),
  );
  await copyFile(path.join(FIXTURES, 'not_onnx.onnx'), path.join(folder, 'broken.onnx'));
  c = await startTestCluster({ seedDemo: false, inferrerEnv: { IMPORT_MODELS_FROM: folder } });
});
after(async () => {
  await c?.close();
  await rm(folder, { recursive: true, force: true });
});

async function state(): Promise<Record<string, { description: string; versions: number[] }>> {
  const info = await api(c.url, '/api/v1/models/information');
  return Object.fromEntries(
    info.body.model_list.map((m: { model: string; description: string; versions: number[] }) => [
      m.model,
      { description: m.description, versions: m.versions },
    ]),
  );
}

test('both layouts are imported with their metadata; the broken model is skipped and named in the log', async () => {
  assert.deepEqual(await state(), {
    flowers: { description: 'iris from a folder', versions: [1] },
    'triton-style': { description: 'two versions', versions: [1, 2] },
  });
  const flowers = await api(c.url, '/api/v1/models/flowers');
  assert.deepEqual(flowers.body.model.labels, ['setosa', 'versicolor', 'virginica']);
  const triton = await api(c.url, '/api/v1/models/triton-style');
  assert.equal(triton.body.model.config.batching.max_batch_size, 4);
  const p = await api(c.url, '/api/v1/models/flowers/prediction', { json: { values: [6.7, 2.5, 5.8, 1.8] } });
  assert.equal(p.status, 200);
  assert.deepEqual(p.body.values, [2]);
  const skipped = c.jsonLogs('inferrer').find((l) => l.msg === 'model not imported');
  assert.equal(skipped?.model, 'broken');
  assert.equal((skipped?.err as { code?: string } | undefined)?.code, 'INVALID_MODEL');
});

test('a restart with the same folder imports nothing new; a changed file becomes a new version', async () => {
  const before = await state();
  await copyFile(path.join(FIXTURES, 'fixed_batch.onnx'), path.join(folder, 'flowers.onnx'));
  const restarts = c.inferrer.restarts;
  process.kill(c.inferrer.pid!, 'SIGKILL');
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (c.inferrer.restarts > restarts && (await api(c.url, '/health/live').catch(() => ({ status: 0 }))).status === 200) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const after = await state();
  assert.deepEqual(after['triton-style'], before['triton-style'], 'unchanged files are not imported again');
  assert.deepEqual(after.flowers!.versions, [1, 2], 'the changed file is version 2');
  const lines = c.jsonLogs('inferrer').filter((l) => l.msg === 'model folder imported');
  assert.equal(lines.length, 2);
  assert.deepEqual({ imported: lines[1]!.imported, unchanged: lines[1]!.unchanged }, { imported: 1, unchanged: 2 });
});
