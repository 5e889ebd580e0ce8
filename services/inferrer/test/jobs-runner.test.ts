/**
 * JobStore + JobRunner + Pacer against a fake load balancer that answers like a modelhost (v1 predict):
 * order, transient errors waited out, bad rows failing alone, resume without duplicates, idempotent
 * chunk writes, retention, and the pacer's back-off while online requests run.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { writeAtomic } from '@inferrer/core';
import { ownerTag } from '@inferrer/model-store';
import { createLogger } from '@inferrer/telemetry';
import { loadConfig } from '../src/config.ts';
import { DataPlane, OnlineLoad } from '../src/dataplane.ts';
import { prepareRows } from '../src/jobs/job-input.ts';
import { JobRunner } from '../src/jobs/job-runner.ts';
import { JobStore } from '../src/jobs/job-store.ts';
import { Pacer } from '../src/jobs/pacer.ts';
import type { JobRecord } from '../src/jobs/types.ts';
import { Upstream } from '../src/upstream.ts';

let dir: string;
let server: http.Server;
let dataplane: DataPlane;
let upstream: Upstream;
const seen: number[][] = [];
let failNext = 0;
/** Delay before each answer, so a test can stop a run part-way whatever the machine's speed. */
let answerDelayMs = 0;
const logger = createLogger({ service: 'inferrer', stream: new Writable({ write: (_c, _e, cb) => cb() }) });

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-jobs-runner-'));
  // A modelhost stand-in: label = first value; a row of the wrong length is INVALID_INPUT for the request.
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', async () => {
      if (answerDelayMs > 0) await new Promise((r) => setTimeout(r, answerDelayMs));
      if (failNext > 0) {
        failNext--;
        res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '0' });
        res.end(JSON.stringify({ error: { code: 'QUEUE_FULL', kind: 'unavailable', message: 'full', details: {} } }));
        return;
      }
      const rows = (JSON.parse(body) as { values: number[][] }).values;
      seen.push(rows.map((r) => r[0]!));
      if (rows.some((r) => r.length !== 2)) {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'INVALID_INPUT', kind: 'invalid', message: 'expects rows of shape [2]', details: {} } }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          model_name: 'm',
          model_version: 3,
          values: rows.map((r) => r[0]),
          outputs: { label: rows.map((r) => r[0]), sum: rows.map((r) => r[0]! + r[1]!) },
        }),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const config = loadConfig({ MODEL_DIR: dir, LOAD_BALANCER_URL: url });
  upstream = new Upstream(url, 8);
  dataplane = new DataPlane(upstream, config);
});
after(async () => {
  server.close();
  await upstream.close();
  await rm(dir, { recursive: true, force: true });
});

async function makeJob(store: JobStore, lines: string): Promise<JobRecord> {
  const id = JobStore.newId();
  const rec: JobRecord = {
    id,
    model: 'm',
    state: 'RECEIVING',
    format: 'ndjson',
    kind: 'rows',
    total: 0,
    chunkItems: 1,
    chunks: 0,
    inputBytes: 0,
    client: 'ip:test',
    createdAt: new Date().toISOString(),
  };
  await store.create(rec);
  await writeFile(store.file(id, 'input'), lines);
  const p = await prepareRows(store.file(id, 'input'), store.file(id, 'items.ndjson'), 'ndjson', { maxBytes: 1 << 20, maxItems: 10_000 });
  await writeAtomic(store.file(id, 'chunks.json'), JSON.stringify(p.offsets));
  Object.assign(rec, { total: p.total, chunkItems: p.chunkItems, chunks: p.chunks, state: 'QUEUED' });
  await store.write(rec);
  return rec;
}

async function resultLines(store: JobStore, rec: JobRecord): Promise<any[]> {
  let text = '';
  for await (const b of store.results(rec)) text += b.toString();
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

const runner = (store: JobStore) => new JobRunner({ store, dataplane, pacer: new Pacer(new OnlineLoad(), 4), rowsPerRequest: 16, logger });

test('every item once, in order; transient 503s are waited out; a bad row fails alone (the job ends PARTIAL)', async () => {
  const store = new JobStore(path.join(dir, 'a'));
  await store.init();
  let lines = '';
  for (let i = 0; i < 500; i++) lines += i === 77 ? '[77,1,1]\n' : `[${i},1]\n`;
  const rec = await makeJob(store, lines);
  failNext = 5;
  const done = await runner(store).run(rec.id, new AbortController().signal);
  assert.equal(done?.state, 'PARTIAL');
  assert.equal(done?.done, 500);
  assert.equal(done?.failed, 1);
  const out = await resultLines(store, rec);
  assert.equal(out.length, 500);
  out.forEach((l, i) => assert.equal(l.index, i));
  assert.deepEqual(out[5], { index: 5, line: 6, model_version: 3, outputs: { label: 5, sum: 6 } });
  assert.equal(out[77].error.code, 'INVALID_INPUT');
  assert.equal(out[77].line, 78);
  assert.equal(out[76].outputs.label, 76, "the rest of the bad row's group succeeded");
});

test('a job picked up again resumes at the first chunk without results: nothing twice', async () => {
  const store = new JobStore(path.join(dir, 'b'));
  await store.init();
  let lines = '';
  for (let i = 0; i < 400; i++) lines += `[${i},0]\n`;
  const rec = await makeJob(store, lines);
  // A first run is stopped after its first chunk (slow answers keep the rest from finishing first).
  answerDelayMs = 60;
  const ac = new AbortController();
  const first = runner(store).run(rec.id, ac.signal);
  for (let i = 0; i < 200 && (await store.progress(rec)).chunks.size === 0; i++) await new Promise((r) => setTimeout(r, 5));
  ac.abort(new Error('stop'));
  await first;
  answerDelayMs = 0;
  const partial = await store.progress(rec);
  assert.ok(partial.chunks.size >= 1 && partial.chunks.size < rec.chunks, `stopped mid-job (${partial.chunks.size} chunks)`);
  seen.length = 0;
  const done = await runner(store).run(rec.id, new AbortController().signal);
  assert.equal(done?.state, 'SUCCEEDED');
  const again = seen.flat().filter((v) => v < partial.chunks.size * rec.chunkItems && partial.chunks.has(Math.floor(v / rec.chunkItems)));
  assert.deepEqual(again, [], 'finished chunks are not sent again');
  const out = await resultLines(store, rec);
  assert.deepEqual(
    out.map((l) => l.index),
    Array.from({ length: 400 }, (_, i) => i),
  );
  // Writing a finished chunk again changes nothing.
  await store.writeChunk(rec, 0, ['{"index":0,"error":{"code":"X","message":"x"}}'], 1);
  assert.equal((await readdir(path.join(store.dir(rec.id), 'results'))).filter((n) => n.startsWith('00000000-')).length, 1);
  assert.equal((await store.progress(rec)).failed, 0);
});

test('a job ends SUCCEEDED when every item has outputs, FAILED when none has', async () => {
  const store = new JobStore(path.join(dir, 'e'));
  await store.init();
  const good = await makeJob(store, '[1,1]\n[2,2]\n');
  assert.equal((await runner(store).run(good.id, new AbortController().signal))?.state, 'SUCCEEDED');
  const bad = await makeJob(store, '[1,1,1]\n{not json\n[2]\n');
  const r = await runner(store).run(bad.id, new AbortController().signal);
  assert.equal(r?.state, 'FAILED');
  assert.deepEqual([r?.done, r?.failed], [3, 3]);
  assert.equal(r?.error, undefined, 'the result lines say why each item failed; the job has no error of its own');
});

test('a cancelled job stops, and stays cancelled', async () => {
  const store = new JobStore(path.join(dir, 'c'));
  await store.init();
  const rec = await makeJob(store, '[1,1]\n'.repeat(300));
  await store.update(rec.id, () => ({ state: 'CANCELLED', finishedAt: new Date().toISOString() }));
  const r = await runner(store).run(rec.id, new AbortController().signal);
  assert.equal(r?.state, 'CANCELLED');
  assert.equal((await store.progress(rec)).chunks.size, 0);
  // A worker's update never undoes a final state.
  assert.equal((await store.update(rec.id, () => ({ state: 'RUNNING' }))).state, 'CANCELLED');
});

test('retention: finished jobs older than the setting go, running ones stay', async () => {
  const store = new JobStore(path.join(dir, 'd'));
  await store.init();
  const old = await makeJob(store, '[1,1]\n');
  await store.update(old.id, () => ({ state: 'SUCCEEDED', finishedAt: new Date(Date.now() - 3 * 3600_000).toISOString() }));
  const running = await makeJob(store, '[1,1]\n');
  const removed = await store.sweep(2 * 3600_000);
  assert.deepEqual(removed, [old.id]);
  assert.equal(await store.read(old.id), undefined);
  assert.ok(await store.read(running.id));
});

test('pacer: the window grows without online traffic, is one request while online requests run, halves on overload', async () => {
  const online = new OnlineLoad();
  const pacer = new Pacer(online, 4);
  for (let i = 0; i < 5; i++) pacer.success();
  assert.equal(pacer.window, 4);
  online.begin();
  assert.equal(pacer.window, 1);
  const t0 = performance.now();
  await pacer.run(async () => undefined);
  assert.ok(performance.now() - t0 >= 2, 'a gap before a job request while online traffic runs');
  online.end();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(pacer.window, 4);
  pacer.overloaded(0);
  assert.equal(pacer.window, 2);
  const t1 = performance.now();
  await pacer.run(async () => undefined);
  assert.ok(performance.now() - t1 >= 90, 'backs off after an overload');
});

test('sweep: a submission whose receiving Inferrer died on this host goes at once; a live one stays', async () => {
  const store = new JobStore(path.join(dir, 'receiving'));
  await store.init();
  const exited = spawn(process.execPath, ['-e', '0']);
  await new Promise((r) => exited.once('exit', r));
  const base = {
    model: 'm',
    state: 'RECEIVING' as const,
    format: 'ndjson' as const,
    kind: 'rows' as const,
    total: 0,
    chunkItems: 1,
    chunks: 0,
    inputBytes: 0,
    client: 'ip:test',
    createdAt: new Date().toISOString(),
  };
  const dead = { ...base, id: JobStore.newId(), receiver: `${ownerTag().split('~')[0]}~${exited.pid}` };
  const live = { ...base, id: JobStore.newId(), receiver: ownerTag() };
  await store.create(dead);
  await store.create(live);
  assert.deepEqual(await store.sweep(3600_000), [dead.id]);
  assert.deepEqual(
    (await store.list()).map((r) => r.id),
    [live.id],
  );
});
