/**
 * Batch jobs against real clusters: a few thousand iris rows come back complete and in order; malformed
 * rows fail alone with their line numbers; a broken archive is refused; cancel; and the durability cases —
 * SIGKILL of the Inferrer and of a modelhost mid-job (embedded queue), and of redis-server mid-job
 * (BullMQ), each ending with every item present exactly once.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../../services/cli/src/launcher.ts';
import { FIXTURES, REPO, type TestCluster, api, startTestCluster, uploadModel } from '../helpers/cluster.ts';

const IRIS = [
  [5.1, 3.5, 1.4, 0.2],
  [6.7, 2.5, 5.8, 1.8],
  [5.9, 3.0, 4.2, 1.5],
];

async function submit(
  base: string,
  model: string,
  body: string | Buffer,
  type: string,
): Promise<{ status: number; id: string; body: any; location: string | null }> {
  const res = await fetch(`${base}/api/v1/models/${model}/jobs`, {
    method: 'POST',
    headers: { 'content-type': type },
    body: typeof body === 'string' ? body : new Uint8Array(body),
  });
  const json = (await res.json()) as any;
  return { status: res.status, id: json.job?.id, body: json, location: res.headers.get('location') };
}

async function waitJob(
  base: string,
  id: string,
  timeoutMs = 60_000,
  until: (job: any) => boolean = (j) => ['SUCCEEDED', 'PARTIAL', 'FAILED', 'CANCELLED'].includes(j.state),
): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  let last: any;
  while (Date.now() < deadline) {
    try {
      const r = await api(base, `/api/v1/jobs/${id}`);
      if (r.status === 200) {
        last = r.body.job;
        if (until(last)) return last;
      }
    } catch {
      // the Inferrer may be restarting
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`job ${id} did not get there in time: ${JSON.stringify(last)}`);
}

async function results(base: string, id: string): Promise<any[]> {
  const res = await fetch(`${base}/api/v1/jobs/${id}/results`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/x-ndjson');
  return (await res.text())
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

/** Every index from 0 to n-1 exactly once, in order. */
function assertExactlyOnce(lines: any[], n: number): void {
  assert.equal(lines.length, n, `${lines.length} result lines for ${n} items`);
  lines.forEach((l, i) => assert.equal(l.index, i, `line ${i} has index ${l.index}`));
}

const IMAGES = path.join(REPO, 'test', 'fixtures', 'images');

/** The top label of an image answer. */
function labelOf(outputs: any): number {
  return Number(outputs.predictions[0].classes[0].label);
}

function rows(n: number): string {
  let out = '';
  for (let i = 0; i < n; i++) out += `${JSON.stringify(IRIS[i % 3])}\n`;
  return out;
}

describe('batch jobs, embedded queue', () => {
  let c: TestCluster;
  before(async () => {
    c = await startTestCluster({ inferrerEnv: { JOBS_MAX_ITEMS: '50000', JOBS_MAX_ACTIVE_PER_CLIENT: '3' } });
    const up = await uploadModel(c.url, 'slow', path.join(FIXTURES, 'slow.onnx'));
    assert.equal(up.status, 201, JSON.stringify(up.body));
  });
  after(async () => c?.close());

  test('3000 iris rows: 202 + Location, then every result in input order', async () => {
    const s = await submit(c.url, 'iris', rows(3000), 'application/x-ndjson');
    assert.equal(s.status, 202, JSON.stringify(s.body));
    assert.equal(s.location, `/api/v1/jobs/${s.id}`);
    assert.equal(s.body.job.items.total, 3000);
    const job = await waitJob(c.url, s.id);
    assert.equal(job.state, 'SUCCEEDED');
    assert.deepEqual(job.items, { total: 3000, done: 3000, succeeded: 3000, failed: 0 });
    assert.ok(job.rate > 0);
    const lines = await results(c.url, s.id);
    assertExactlyOnce(lines, 3000);
    // The same answers as online predictions.
    const online = await api(c.url, '/api/v1/models/iris/prediction?outputs=all', { json: { values: IRIS } });
    for (let i = 0; i < 3000; i++) {
      assert.equal(lines[i].line, i + 1);
      assert.deepEqual(lines[i].outputs.label, online.body.outputs.label[i % 3], `item ${i}`);
    }
    const list = await api(c.url, '/api/v1/jobs');
    assert.ok(list.body.jobs.some((j: any) => j.id === s.id));
  });

  test('CSV with a header; malformed rows fail alone, with their line numbers', async () => {
    const csv = ['sepal_length,sepal_width,petal_length,petal_width', '5.1,3.5,1.4,0.2', '6.7,abc,5.8,1.8', '', '5.9,3.0,4.2', '6.7,2.5,5.8,1.8'].join('\n');
    const s = await submit(c.url, 'iris', csv, 'text/csv');
    assert.equal(s.status, 202, JSON.stringify(s.body));
    const job = await waitJob(c.url, s.id);
    assert.equal(job.state, 'PARTIAL', 'some items failed');
    assert.deepEqual(job.items, { total: 4, done: 4, succeeded: 2, failed: 2 });
    const lines = await results(c.url, s.id);
    assertExactlyOnce(lines, 4);
    assert.deepEqual(
      lines.map((l) => l.line),
      [2, 3, 5, 6],
    );
    assert.ok(lines[0].outputs && lines[3].outputs);
    assert.equal(lines[1].error.code, 'INVALID_INPUT');
    assert.match(lines[1].error.message, /^line 3: field 2 \("abc"\) is not a number/);
    assert.equal(lines[2].error.code, 'INVALID_INPUT');
    assert.match(lines[2].error.message, /shape/);

    const nd = await submit(c.url, 'iris', '[5.1,3.5,1.4,0.2]\n{not json\n[1,2,3,4]\n', 'application/x-ndjson');
    const j2 = await waitJob(c.url, nd.id);
    const l2 = await results(c.url, nd.id);
    assert.equal(j2.items.failed, 1);
    assert.equal(l2[1].error.code, 'INVALID_JSON');
    assert.match(l2[1].error.message, /^line 2: /);
  });

  test('a job of one huge row is read off the event loop: the Inferrer answers other clients meanwhile', async () => {
    // 4 million CSV fields on one line (16 MB): seconds of splitting and checking, which on the event loop
    // kept every other request waiting (13 s for 20 MB). Health checks sent one after another meanwhile
    // must keep coming back; the row itself fails alone (iris takes 4 values).
    const csv = `${'1.5,'.repeat(4_000_000 - 1)}1.5\n5.1,3.5,1.4,0.2\n`;
    let submitting = true;
    let answered = 0;
    let last = performance.now();
    let longestGapMs = 0;
    const polling = (async () => {
      while (submitting) {
        const r = await fetch(`${c.url}/health/live`);
        await r.arrayBuffer();
        if (!submitting || r.status !== 200) continue;
        answered++;
        longestGapMs = Math.max(longestGapMs, performance.now() - last);
        last = performance.now();
      }
    })();
    const started = performance.now();
    const s = await submit(c.url, 'iris', csv, 'text/csv');
    const tookMs = performance.now() - started;
    submitting = false;
    await polling;
    assert.equal(s.status, 202, JSON.stringify(s.body));
    // A loop held for the whole row answers nothing while it reads it: the longest wait is most of the submission.
    assert.ok(
      answered >= 10 && longestGapMs < tookMs / 2,
      `${answered} health checks answered during a ${tookMs.toFixed(0)} ms submission, the longest wait ${longestGapMs.toFixed(0)} ms`,
    );
    const job = await waitJob(c.url, s.id);
    assert.deepEqual(job.items, { total: 2, done: 2, succeeded: 1, failed: 1 });
  });

  test('a gzipped tar of images: each file is a multipart image prediction; a bad file fails alone', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-tar-'));
    try {
      const expected = JSON.parse(await readFile(path.join(IMAGES, 'images.json'), 'utf8')).digits as Record<string, number>;
      const names = [...Object.keys(expected).sort(), 'not_an_image.jpg'];
      const archive = path.join(dir, 'digits.tar.gz');
      const tar = spawnSync('tar', ['-czf', archive, '-C', IMAGES, ...names]);
      assert.equal(tar.status, 0, String(tar.stderr));
      const s = await submit(c.url, 'digits', await readFile(archive), 'application/gzip');
      assert.equal(s.status, 202, JSON.stringify(s.body));
      assert.equal(s.body.job.format, 'tar');
      assert.equal(s.body.job.items.total, names.length);
      const job = await waitJob(c.url, s.id);
      assert.equal(job.state, 'PARTIAL', 'one file is not an image');
      const lines = await results(c.url, s.id);
      assertExactlyOnce(lines, names.length);
      lines.forEach((l, i) => assert.equal(l.file, names[i]));
      const bad = lines.at(-1);
      assert.equal(bad.error?.code, 'INVALID_IMAGE', JSON.stringify(bad));
      assert.equal(job.items.failed, 1, JSON.stringify(lines.filter((l) => l.error)));
      for (const l of lines.slice(0, -1)) assert.equal(labelOf(l.outputs), expected[l.file], JSON.stringify(l));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a malformed archive or an unknown model fails the submission with a 4xx', async () => {
    const zip = await submit(c.url, 'iris', Buffer.concat([Buffer.from('PK\x03\x04'), Buffer.alloc(100, 7)]), 'application/zip');
    assert.equal(zip.status, 400);
    assert.equal(zip.body.error.code, 'INVALID_ARCHIVE');
    const tar = await submit(c.url, 'iris', Buffer.alloc(2000, 65), 'application/x-tar');
    assert.equal(tar.status, 400);
    assert.equal(tar.body.error.code, 'INVALID_ARCHIVE');
    const missing = await submit(c.url, 'nope', rows(2), 'application/x-ndjson');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'MODEL_NOT_FOUND');
    const unknown = await api(c.url, '/api/v1/jobs/j0000000000000');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.code, 'JOB_NOT_FOUND');
  });

  test('cancel stops a running job; its results so far stay readable', async () => {
    const s = await submit(c.url, 'slow', rows(400), 'application/x-ndjson');
    await waitJob(c.url, s.id, 30_000, (j) => j.items.done > 0);
    const del = await api(c.url, `/api/v1/jobs/${s.id}`, { method: 'DELETE' });
    assert.equal(del.status, 200);
    assert.equal(del.body.job.state, 'CANCELLED');
    const done = del.body.job.items.done;
    await new Promise((r) => setTimeout(r, 1000));
    const later = await waitJob(c.url, s.id);
    assert.equal(later.state, 'CANCELLED');
    assert.ok(later.items.done < 400);
    const lines = await results(c.url, s.id);
    assert.ok(lines.length >= done - 128 && lines.length <= later.items.done);
    lines.forEach((l, i) => assert.equal(l.index, i));
    const purge = await api(c.url, `/api/v1/jobs/${s.id}?purge=true`, { method: 'DELETE' });
    assert.equal(purge.status, 200);
    assert.equal((await api(c.url, `/api/v1/jobs/${s.id}`)).status, 404);
  });

  test('SIGKILL of the Inferrer and of a modelhost mid-job: the job finishes, every item exactly once', async () => {
    const s = await submit(c.url, 'slow', rows(600), 'application/x-ndjson');
    assert.equal(s.status, 202);
    await waitJob(c.url, s.id, 30_000, (j) => j.items.done >= 128);
    c.inferrer.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 300));
    const mid = await waitJob(c.url, s.id, 30_000, (j) => j.state === 'RUNNING');
    c.modelhosts[0]!.process.kill('SIGKILL');
    const job = await waitJob(c.url, s.id, 60_000);
    assert.equal(job.state, 'SUCCEEDED', JSON.stringify(job));
    assert.deepEqual(job.items, { total: 600, done: 600, succeeded: 600, failed: 0 });
    assert.ok(mid.items.done < 600, 'the Inferrer restarted mid-job');
    const lines = await results(c.url, s.id);
    assertExactlyOnce(lines, 600);
    for (const l of lines) assert.ok(Array.isArray(l.outputs.y), JSON.stringify(l));
    assert.ok(
      c.jsonLogs('inferrer').some((l) => l.msg === 'job running' && l.resumed === true),
      'the restarted Inferrer resumed the job',
    );
  });

  test('the CLI submits a file, shows progress until the job ends, and writes the results', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-cli-'));
    try {
      const input = path.join(dir, 'rows.csv');
      await writeFile(input, rows(300).replace(/[[\]]/g, ''));
      const out = path.join(dir, 'out.ndjson');
      const r = spawnSync(process.execPath, ['--import', 'tsx', 'services/cli/src/main.ts', 'jobs', 'submit', 'iris', input, '--wait', '--out', out], {
        cwd: REPO,
        encoding: 'utf8',
        env: { ...process.env, INFERRER_URL: c.url },
        timeout: 60_000,
      });
      assert.equal(r.status, 0, r.stderr + r.stdout);
      assert.match(r.stdout, /^job j[a-z0-9]+: 300 items for model iris/m);
      assert.match(r.stdout, /\[#{30}\] 100% 300\/300 \(0 failed\) SUCCEEDED/);
      assert.match(r.stdout, /300 results written to /);
      assertExactlyOnce(
        (await readFile(out, 'utf8'))
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l)),
        300,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('quota: concurrent jobs per client', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await submit(c.url, 'slow', rows(64), 'application/x-ndjson')).id);
    const over = await submit(c.url, 'slow', rows(4), 'application/x-ndjson');
    assert.equal(over.status, 429);
    assert.equal(over.body.error.code, 'QUOTA_EXCEEDED');
    for (const id of ids) await api(c.url, `/api/v1/jobs/${id}`, { method: 'DELETE' });
    const big = await submit(c.url, 'iris', rows(50_001), 'application/x-ndjson');
    assert.equal(big.status, 413);
    assert.equal(big.body.error.code, 'JOB_TOO_LARGE');
  });
});

const redisServer = spawnSync('redis-server', ['--version']).status === 0 ? 'redis-server' : undefined;

describe('batch jobs on Redis (BullMQ)', { skip: redisServer ? false : 'redis-server is not installed (apt-get install redis-server)' }, () => {
  let c: TestCluster;
  let redis: ChildProcess | undefined;
  let port: number;
  let dir: string;
  const startRedis = async (): Promise<void> => {
    redis = spawn(redisServer!, ['--port', String(port), '--bind', '127.0.0.1', '--appendonly', 'yes', '--dir', dir, '--save', ''], { stdio: 'ignore' });
    for (let i = 0; i < 100; i++) {
      if (spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' }).stdout.trim() === 'PONG') return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('redis-server did not start');
  };
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-redis-'));
    port = await freePort();
    await startRedis();
    c = await startTestCluster({ inferrerEnv: { REDIS_URL: `redis://127.0.0.1:${port}` } });
    const up = await uploadModel(c.url, 'slow', path.join(FIXTURES, 'slow.onnx'));
    assert.equal(up.status, 201);
  });
  after(async () => {
    await c?.close();
    redis?.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  test('the Inferrer says it uses Redis', () => {
    assert.ok(c.jsonLogs('inferrer').some((l) => String(l.msg).startsWith('batch jobs: queue Redis (BullMQ)')));
  });

  test('redis-server killed and restarted mid-job: the job finishes, every item exactly once', async () => {
    const s = await submit(c.url, 'slow', rows(480), 'application/x-ndjson');
    assert.equal(s.status, 202, JSON.stringify(s.body));
    await waitJob(c.url, s.id, 30_000, (j) => j.items.done >= 128);
    redis!.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 1500));
    await startRedis();
    const job = await waitJob(c.url, s.id, 60_000);
    assert.equal(job.state, 'SUCCEEDED', JSON.stringify(job));
    assert.equal(job.items.done, 480);
    assertExactlyOnce(await results(c.url, s.id), 480);
  });
});
