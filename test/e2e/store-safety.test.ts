/**
 * Requests that used to break the store, bloat the Inferrer or reach where they should not (issue 13,
 * items 4, 5, 6 and 8), sent exactly as the attack run sent them to a real cluster. Each asserts the
 * answer, the store (byte for byte, no leftovers) and the processes (no restarts, no stray children,
 * memory back at its baseline).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, stat, unlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { constantOfShapeModel, identityChainModel, oddReshapeModel, unknownOperatorModel } from '../helpers/costly-models.ts';
import { DEMO, REPO, type TestCluster, api, snapshotStore, stagingLeftovers, startTestCluster } from '../helpers/cluster.ts';

const MB = 1024 * 1024;
const row = { values: [6.7, 2.5, 5.8, 1.8] };
const clusters: TestCluster[] = [];
after(async () => {
  for (const c of clusters) await c.close();
});

function put(c: TestCluster, name: string, bytes: Buffer): ReturnType<typeof api> {
  const form = new FormData();
  form.append('path', new Blob([new Uint8Array(bytes)]), 'model.onnx');
  return api(c.url, `/api/v1/models/${name}`, { method: 'PUT', body: form });
}

/** Resident memory of a process, bytes (Linux). */
function rss(pid: number | undefined): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
}

/**
 * Validation children of `pid` still running (by command line: the TypeScript loader may keep its own
 * esbuild child around, which is not ours to count).
 */
function validationChildrenOf(pid: number | undefined): string[] {
  const out: string[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const s = readFileSync(`/proc/${e}/stat`, 'utf8');
      if (Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]) !== pid) continue;
      const cmdline = readFileSync(`/proc/${e}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (cmdline.includes('validate-child')) out.push(cmdline);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** No absolute file path, store path, staging folder or runtime source path in an answer. */
function assertNoPaths(c: TestCluster, body: unknown): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  for (const bad of [c.modelDir, REPO, os.tmpdir() + path.sep, '.staging', '/onnxruntime_src', 'model.onnx'])
    assert.ok(!text.includes(bad), `${bad} in ${text}`);
  assert.doesNotMatch(text, /(^|[\s"'(:=])\/(tmp|work|home|root|usr|opt|var|srv|app)\//);
}

describe('names, path leaks, costly models and imports (one cluster)', () => {
  let c: TestCluster;
  /** The fake STAC server: 127.0.0.2 is in MODEL_IMPORT_ALLOWED_CIDRS, 127.0.0.1 (and so localhost) is not. */
  const seen = { allowed: 0, loopback: 0 };
  let port = 0;
  const servers: http.Server[] = [];
  before(async () => {
    const allowed = http.createServer((req, res) => {
      seen.allowed++;
      if (req.url === '/item.json') return void res.writeHead(302, { location: `http://localhost:${port}/item.json` }).end();
      res.writeHead(404).end();
    });
    const loopback = http.createServer((_req, res) => {
      seen.loopback++;
      res.writeHead(404).end();
    });
    servers.push(allowed, loopback);
    await new Promise<void>((r) => allowed.listen(0, '127.0.0.2', r));
    port = (allowed.address() as { port: number }).port;
    await new Promise<void>((r) => loopback.listen(port, '127.0.0.1', r));
    c = await startTestCluster({
      inferrerEnv: {
        MODEL_IMPORT_ENABLED: 'true',
        MODEL_IMPORT_ALLOWED_HOSTS: `localhost:${port},127.0.0.1:${port},127.0.0.2:${port}`,
        MODEL_IMPORT_ALLOWED_CIDRS: '127.0.0.2/32',
      },
      modelhostEnv: { MODEL_MAX_MEMORY_MB: '100' },
    });
    clusters.push(c);
  });
  after(() => {
    for (const s of servers) s.close();
  });

  test('PUT /api/v1/models/zz.onnx.onnx is 400 and stores nothing', async () => {
    const before = await snapshotStore(c.modelDir);
    const r = await put(c, 'zz.onnx.onnx', await readFile(path.join(DEMO, 'iris.onnx')));
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'INVALID_MODEL_NAME');
    assert.match(r.body.error.message, /may end in "\.onnx" only once/);
    assert.deepEqual(await snapshotStore(c.modelDir), before);
    assert.deepEqual(await stagingLeftovers(c.modelDir), []);
    assert.equal((await api(c.url, '/api/v1/models/zz.onnx')).status, 404);
    assert.ok(!(await api(c.url, '/api/v1/models')).body.model_list.includes('zz'));
  });

  test('DELETE /api/v1/models/iris.onnx.onnx is 400, and so is every other route given that name; iris is untouched', async () => {
    const before = await snapshotStore(c.modelDir);
    const json = (method: string, body: unknown) => ({ method, body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    const routes: [string, string, RequestInit][] = [
      ['DELETE', '/api/v1/models/iris.onnx.onnx', { method: 'DELETE' }],
      ['GET', '/api/v1/models/iris.onnx.onnx', {}],
      ['POST', '/api/v1/models/iris.onnx.onnx', json('POST', { model_description: 'defaced' })],
      ['POST', '/api/v1/models/iris.onnx.onnx/prediction', json('POST', row)],
      ['POST', '/api/v1/models/iris.onnx.onnx/canary', json('POST', { version: 1, percent: 10 })],
      [
        'POST',
        '/api/v1/models/iris.onnx.onnx/jobs',
        { method: 'POST', body: '{"values": [1, 2, 3, 4]}\n', headers: { 'content-type': 'application/x-ndjson' } },
      ],
      ['GET', '/v2/models/iris.onnx.onnx', {}],
      ['POST', '/v2/models/iris.onnx.onnx/infer', json('POST', { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: row.values }] })],
      ['POST', '/v2/repository/models/iris.onnx.onnx/unload', { method: 'POST' }],
    ];
    for (const [method, route, init] of routes) {
      const r = await api(c.url, route, init);
      assert.equal(r.status, 400, `${method} ${route}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error?.code ?? r.body.code, 'INVALID_MODEL_NAME', `${method} ${route}`);
    }
    assert.deepEqual(await snapshotStore(c.modelDir), before);
    assert.equal((await api(c.url, '/api/v1/models/iris/prediction', { json: row })).status, 200);
  });

  test('a.b.onnx is stored as a.b, and every route finds it by either name', async () => {
    const up = await put(c, 'a.b.onnx', await readFile(path.join(DEMO, 'iris.onnx')));
    assert.equal(up.status, 201, JSON.stringify(up.body));
    assert.equal(up.headers.get('location'), '/api/v1/models/a.b');
    assert.equal(up.body.model.name, 'a.b');
    for (const name of ['a.b', 'a.b.onnx']) assert.equal((await api(c.url, `/api/v1/models/${name}`)).body.model.name, 'a.b');
    assert.equal((await api(c.url, '/api/v1/models/a.b.onnx', { method: 'DELETE' })).status, 200);
    assert.equal((await api(c.url, '/api/v1/models/a.b')).status, 404);
    assert.equal(await stat(path.join(c.modelDir, 'a.b')).catch(() => undefined), undefined);
  });

  test('ONNX Runtime errors at upload and at inference reach the client without a file path', async () => {
    const refused = await put(c, 'badop', unknownOperatorModel());
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.equal(refused.body.error.code, 'INVALID_MODEL');
    assert.match(refused.body.error.message, /NoSuchOperator/);
    assertNoPaths(c, refused.body);

    const up = await put(c, 'odd', oddReshapeModel());
    assert.equal(up.status, 201, JSON.stringify(up.body));
    const v2 = await api(c.url, '/v2/models/odd/infer', { json: { inputs: [{ name: 'x', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }] } });
    assert.ok(v2.status === 400 || v2.status === 500, JSON.stringify(v2.body));
    assert.match(JSON.stringify(v2.body), /cannot be reshaped/);
    assertNoPaths(c, v2.body);
    const v1 = await api(c.url, '/api/v1/models/odd/prediction', { json: { values: [[1, 2, 3]] } });
    assert.ok(v1.status === 400 || v1.status === 500, JSON.stringify(v1.body));
    assertNoPaths(c, v1.body);
  });

  for (const [what, bytes] of [
    ['a 118-byte model that folds ConstantOfShape into 64 M floats', () => constantOfShapeModel()],
    ['an 8.8 MB chain of 300 000 Identity nodes', () => identityChainModel()],
  ] as const) {
    test(`PUT of ${what} is 413 MODEL_TOO_COSTLY; the Inferrer's memory stays at its baseline`, async () => {
      const model = bytes();
      const before = await snapshotStore(c.modelDir);
      const pid = c.inferrer.pid;
      const baseline = rss(pid);
      const r = await put(c, 'costly', model);
      assert.equal(r.status, 413, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'MODEL_TOO_COSTLY');
      assert.match(r.body.error.message, /VALIDATION_MAX_MEMORY_MB/);
      assert.deepEqual(await snapshotStore(c.modelDir), before);
      assert.deepEqual(await stagingLeftovers(c.modelDir), []);
      assert.deepEqual(validationChildrenOf(pid), [], 'the validation process is gone');
      const grew = rss(pid) - baseline;
      console.log(`${what}: ${r.status} ${r.body.error.code}; Inferrer RSS ${Math.round(baseline / MB)} MB before, ${Math.round(grew / MB)} MB more after`);
      assert.ok(grew < 64 * MB, `the Inferrer grew by ${Math.round(grew / MB)} MB`);
      assert.equal(c.inferrer.restarts, 0);
    });
  }

  test('a model validation lets through but a worker cannot fit (MODEL_MAX_MEMORY_MB) is refused by the modelhost, which stays up', async () => {
    const up = await put(c, 'wide', constantOfShapeModel(6000));
    assert.equal(up.status, 201, JSON.stringify(up.body));
    const cost = up.body.model.version_details[0].validation;
    assert.ok(cost.memory_bytes > 100 * MB && cost.memory_bytes < 256 * MB, JSON.stringify(cost));
    const before = c.modelhosts.map((m) => rss(m.process.pid));
    const r = await api(c.url, '/v2/models/wide/infer', { json: { inputs: [{ name: 'x', shape: [1], datatype: 'FP32', data: [1] }] } });
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.equal(r.body.code, 'MODEL_LOAD_FAILED');
    assert.match(r.body.error, /MODEL_MAX_MEMORY_MB/);
    c.modelhosts.forEach((m, i) => assert.ok(rss(m.process.pid) - before[i]! < 64 * MB, `${m.id} did not load it`));
    assert.deepEqual(
      c.modelhosts.map((m) => m.process.restarts),
      [0, 0],
    );
    assert.equal((await api(c.url, '/api/v1/models/iris/prediction', { json: row })).status, 200);
  });

  test('an import from an allow-listed name that resolves to loopback is 403 and never fetched', async () => {
    const before = await snapshotStore(c.modelDir);
    seen.allowed = seen.loopback = 0;
    for (const url of [`http://localhost:${port}/item.json`, `http://127.0.0.1:${port}/item.json`]) {
      const r = await api(c.url, '/api/v1/models/imported/import', { json: { url } });
      assert.equal(r.status, 403, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'IMPORT_HOST_NOT_ALLOWED');
      assert.match(r.body.error.message, /loopback/);
    }
    assert.deepEqual(seen, { allowed: 0, loopback: 0 }, 'no connection was made');
    assert.deepEqual(await snapshotStore(c.modelDir), before);
    assert.deepEqual(await stagingLeftovers(c.modelDir), []);
  });

  test('a redirect from an allowed address to a name that resolves to loopback is refused at that hop', async () => {
    const before = await snapshotStore(c.modelDir);
    seen.allowed = seen.loopback = 0;
    const r = await api(c.url, '/api/v1/models/imported/import', { json: { url: `http://127.0.0.2:${port}/item.json` } });
    assert.equal(r.status, 403, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'IMPORT_HOST_NOT_ALLOWED');
    assert.deepEqual(seen, { allowed: 1, loopback: 0 }, 'the allowed address answered; the loopback one was never reached');
    assert.deepEqual(await snapshotStore(c.modelDir), before);
  });
});

describe('a full volume and leftovers (a small tmpfs)', () => {
  let c: TestCluster | undefined;
  let volume: string | undefined;
  let filler = '';
  before(async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-full-'));
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', dir], { stdio: 'ignore' });
      volume = dir;
    } catch {
      await rm(dir, { recursive: true, force: true });
      return;
    }
    filler = path.join(volume, 'filler');
    c = await startTestCluster({ modelDir: path.join(volume, 'models') });
    clusters.push(c);
  });
  after(async () => {
    if (!volume) return;
    await c?.close();
    clusters.splice(clusters.indexOf(c!), 1);
    execFileSync('umount', [volume]);
    await rm(volume, { recursive: true, force: true });
  });

  /** Takes every byte left on the volume. */
  async function fill(): Promise<void> {
    for (const size of [MB, 64 * 1024, 4096, 1]) {
      for (;;) {
        try {
          await writeFile(`${filler}-${size}-${Date.now()}-${Math.random()}`, Buffer.alloc(size));
        } catch {
          break;
        }
      }
    }
    await assert.rejects(writeFile(path.join(volume!, 'probe'), 'x'), { code: 'ENOSPC' });
  }
  async function empty(): Promise<void> {
    for (const e of await readdir(volume!)) if (e.startsWith('filler')) await unlink(path.join(volume!, e));
  }
  /** Temporary files of writes that failed, anywhere in the store. */
  async function temporaries(): Promise<string[]> {
    const all = (await readdir(c!.modelDir, { recursive: true })) as string[];
    return all.filter((p) => /\.tmp/.test(p));
  }

  test('DELETE on a full volume succeeds whole: 200, the model gone, the generation moved', async (t) => {
    if (!c) return t.skip('mounting a tmpfs needs root with CAP_SYS_ADMIN');
    await fill();
    const generation = Number(await readFile(path.join(c.modelDir, '.generation'), 'utf8'));
    const r = await api(c.url, '/api/v1/models/diabetes', { method: 'DELETE' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(Number(await readFile(path.join(c.modelDir, '.generation'), 'utf8')), generation + 1);
    assert.ok(!(await api(c.url, '/api/v1/models')).body.model_list.includes('diabetes'));
    assert.equal((await api(c.url, '/api/v1/models/diabetes')).status, 404);
    await empty();
  });

  test('POST /api/v1/models/{name}, PUT and job submission on a full volume answer 507 and change nothing', async (t) => {
    if (!c) return t.skip('mounting a tmpfs needs root with CAP_SYS_ADMIN');
    await fill();
    const before = await snapshotStore(c.modelDir);
    const update = await api(c.url, '/api/v1/models/iris', { json: { model_description: 'defaced' } });
    assert.equal(update.status, 507, JSON.stringify(update.body));
    assert.equal(update.body.error.code, 'STORAGE_FULL');
    const upload = await put(c, 'newmodel', await readFile(path.join(DEMO, 'iris.onnx')));
    assert.equal(upload.status, 507, JSON.stringify(upload.body));
    assert.equal(upload.body.error.code, 'STORAGE_FULL');
    const job = await api(c.url, '/api/v1/models/iris/jobs', {
      method: 'POST',
      body: '{"values": [1, 2, 3, 4]}\n{"values": [5, 6, 7, 8]}\n',
      headers: { 'content-type': 'application/x-ndjson' },
    });
    assert.equal(job.status, 507, JSON.stringify(job.body));
    assert.equal(job.body.error.code, 'STORAGE_FULL');
    assert.deepEqual(await snapshotStore(c.modelDir), before, 'nothing stored changed');
    assert.deepEqual(await stagingLeftovers(c.modelDir), []);
    assert.deepEqual(await temporaries(), []);
    assert.deepEqual((await api(c.url, '/api/v1/jobs')).body.jobs, []);
    // With room again, the same requests succeed.
    await empty();
    assert.equal((await api(c.url, '/api/v1/models/iris', { json: { model_description: 'Iris' } })).status, 200);
    assert.equal((await put(c, 'newmodel', await readFile(path.join(DEMO, 'iris.onnx')))).status, 201);
    assert.equal(c.inferrer.restarts, 0);
  });

  test('kill -9 mid-upload and mid-job-submission: the restarted Inferrer reclaims both at start', async (t) => {
    if (!c) return t.skip('mounting a tmpfs needs root with CAP_SYS_ADMIN');
    const send = (route: string, method: string, type: string, length: number, first: Buffer): http.ClientRequest => {
      const url = new URL(`${c!.url}${route}`);
      const req = http.request({
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method,
        headers: { 'content-type': type, 'content-length': String(length) },
      });
      req.on('error', () => undefined);
      req.write(first);
      return req;
    };
    const upload = send('/api/v1/models/interrupted', 'PUT', 'application/octet-stream', 2 * MB, Buffer.alloc(MB, 1));
    const rows = Buffer.from('{"values": [1, 2, 3, 4]}\n'.repeat(4000));
    const job = send('/api/v1/models/iris/jobs', 'POST', 'application/x-ndjson', rows.length * 2, rows);
    const jobFolders = async (): Promise<string[]> =>
      (await readdir(path.join(c!.modelDir, '.jobs')).catch(() => [] as string[])).filter((e) => e.startsWith('j'));
    const staged = async (): Promise<number> => {
      let bytes = 0;
      for (const d of await stagingLeftovers(c!.modelDir))
        for (const f of await readdir(path.join(c!.modelDir, '.staging', d)).catch(() => []))
          bytes += (await stat(path.join(c!.modelDir, '.staging', d, f))).size;
      return bytes;
    };
    for (let i = 0; i < 200 && ((await staged()) < 512 * 1024 || (await jobFolders()).length === 0); i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok((await staged()) >= 512 * 1024, 'the upload is being written');
    assert.equal((await jobFolders()).length, 1, 'the job input is being written');
    c.inferrer.kill('SIGKILL');
    upload.destroy();
    job.destroy();
    for (let i = 0; i < 600 && c.inferrer.restarts === 0; i++) await new Promise((r) => setTimeout(r, 50));
    let ready = false;
    for (let i = 0; i < 600 && !ready; i++) {
      ready = await fetch(`${c.url}/health/live`).then(
        (r) => r.ok,
        () => false,
      );
      if (!ready) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(ready, 'the Inferrer came back');
    assert.deepEqual(await stagingLeftovers(c.modelDir), [], 'the upload is reclaimed at start');
    assert.deepEqual(await jobFolders(), [], 'so is the job submission');
    assert.deepEqual((await api(c.url, '/api/v1/jobs')).body.jobs, []);
    assert.equal((await api(c.url, '/api/v1/models/interrupted')).status, 404);
    assert.equal((await api(c.url, '/api/v1/models/iris/prediction', { json: row })).status, 200);
  });
});
