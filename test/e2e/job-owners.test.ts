/**
 * Batch jobs belong to the API key that submitted them, on a real cluster with API_KEYS_FILE: another key is
 * answered 404 JOB_NOT_FOUND for each job route, the same answer as for a job that does not exist (however
 * the id is spelled), and does not see the job in any list; an admin key sees and manages every job. The
 * owner is kept in the job store: after a restart with another keys file a removed key's jobs are seen by
 * admin keys only, a key without a name keeps its jobs when keys above it are removed (a new key in its old
 * place does not get them), jobs stored without an owner are seen by admin keys only, and without keys
 * (open mode) every client sees every job, as before.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { FIXTURES, REPO, type TestCluster, api, startTestCluster, uploadModel } from '../helpers/cluster.ts';

const run = promisify(execFile);

const OPS = 'ops-admin-key-0123456789abcdef';
const ALICE = 'alice-key-0123456789abcdef';
const BOB = 'bob-key-0123456789abcdef';
const GONE = 'gone-key-0123456789abcdef';
const UNNAMED = 'unnamed-key-0123456789abcdef';
const NEWCOMER = 'newcomer-key-0123456789abcdef';

const ROWS = '[5.1,3.5,1.4,0.2]\n[6.7,2.5,5.8,1.8]\n[5.9,3.0,4.2,1.5]\n';
const FINAL = ['SUCCEEDED', 'PARTIAL', 'FAILED', 'CANCELLED'];

const bearer = (key: string | undefined): Record<string, string> => (key ? { authorization: `Bearer ${key}` } : {});

let dir: string;
let modelDir: string;
let c: TestCluster | undefined;

/** (Re)starts the cluster on the same store, with these keys (none: open mode, management closed). */
async function startWith(keys: { key: string; scopes: string[]; name?: string }[] | undefined): Promise<TestCluster> {
  await c?.close();
  c = undefined;
  const inferrerEnv: Record<string, string> = { AUTH_DISABLED: 'false' };
  if (keys) {
    const file = path.join(dir, `keys-${Date.now()}.json`);
    await writeFile(file, JSON.stringify({ keys }));
    inferrerEnv.API_KEYS_FILE = file;
  }
  c = await startTestCluster({ modelDir, inferrerEnv });
  return c;
}

async function submit(url: string, key: string | undefined): Promise<string> {
  const r = await api(url, '/api/v1/models/iris/jobs', { method: 'POST', body: ROWS, headers: { 'content-type': 'application/x-ndjson', ...bearer(key) } });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  return r.body.job.id as string;
}

/** Polls the job as its owner until it has ended. */
async function waitEnded(url: string, id: string, key: string | undefined): Promise<void> {
  for (;;) {
    const r = await api(url, `/api/v1/jobs/${id}`, { headers: bearer(key) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    if (FINAL.includes(r.body.job.state)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const listed = async (url: string, key: string | undefined, query = ''): Promise<string[]> => {
  const r = await api(url, `/api/v1/jobs${query}`, { headers: bearer(key) });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return (r.body.jobs as { id: string }[]).map((j) => j.id).sort();
};

/** An id of the same shape and length as `id` that no job has. */
const unknownLike = (id: string): string => `${id.slice(0, -12)}${id.endsWith('000000000000') ? '111111111111' : '000000000000'}`;

/** Every job route for one id, as a key calls it. */
const ROUTES = (id: string): [string, string][] => [
  ['GET', `/api/v1/jobs/${id}`],
  ['GET', `/api/v1/jobs/${id}/results`],
  ['DELETE', `/api/v1/jobs/${id}`],
  ['DELETE', `/api/v1/jobs/${id}?purge=true`],
];

/** The answer to `key` for `route`, with the id in it written as <id>: comparable across ids of one length. */
async function answer(url: string, method: string, route: string, id: string, key: string | undefined): Promise<{ status: number; body: string }> {
  const r = await api(url, route, { method, headers: bearer(key) });
  return { status: r.status, body: JSON.stringify(r.body).replaceAll(id, '<id>') };
}

/** Each job route answers `key` for `id` exactly as for a job that does not exist. */
async function assertHidden(url: string, id: string, key: string | undefined): Promise<void> {
  const other = unknownLike(id);
  for (const [[method, route], [, otherRoute]] of ROUTES(id).map((r, i) => [r, ROUTES(other)[i]!] as const)) {
    const seen = await answer(url, method, route, id, key);
    assert.equal(seen.status, 404, `${method} ${route}: ${seen.body}`);
    assert.match(seen.body, /"code":"JOB_NOT_FOUND"/, `${method} ${route}`);
    assert.deepEqual(seen, await answer(url, method, otherRoute, other, key), `${method} ${route}: the same answer as for no such job`);
  }
}

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-job-owners-'));
  modelDir = path.join(dir, 'models');
});
after(async () => {
  await c?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('batch jobs are their API key’s', () => {
  const jobs: Record<'alice' | 'alice2' | 'bob' | 'gone' | 'unnamed', string> = { alice: '', alice2: '', bob: '', gone: '', unnamed: '' };

  test('each key sees its own jobs; another key gets 404 JOB_NOT_FOUND on every job route, as for no such job', async () => {
    const cl = await startWith([
      { key: OPS, scopes: ['admin', 'predict'], name: 'ops' },
      { key: ALICE, scopes: ['predict'], name: 'alice' },
      { key: BOB, scopes: ['predict'], name: 'bob' },
      { key: GONE, scopes: ['predict'], name: 'gone' },
      { key: UNNAMED, scopes: ['predict'] },
    ]);
    jobs.alice = await submit(cl.url, ALICE);
    jobs.alice2 = await submit(cl.url, ALICE);
    jobs.bob = await submit(cl.url, BOB);
    jobs.gone = await submit(cl.url, GONE);
    jobs.unnamed = await submit(cl.url, UNNAMED);
    await waitEnded(cl.url, jobs.alice, ALICE);
    await waitEnded(cl.url, jobs.alice2, ALICE);
    await waitEnded(cl.url, jobs.bob, BOB);
    await waitEnded(cl.url, jobs.gone, GONE);
    await waitEnded(cl.url, jobs.unnamed, UNNAMED);

    const own = await api(cl.url, `/api/v1/jobs/${jobs.alice}/results`, { headers: bearer(ALICE) });
    assert.equal(own.status, 200);
    assert.equal(String(own.body).trim().split('\n').length, 3);

    await assertHidden(cl.url, jobs.alice, BOB);
    await assertHidden(cl.url, jobs.bob, ALICE);
    await assertHidden(cl.url, jobs.alice, UNNAMED);
    await assertHidden(cl.url, jobs.unnamed, ALICE);

    // Nothing Bob tried changed Alice's job: it is there, finished, with its results.
    const still = await api(cl.url, `/api/v1/jobs/${jobs.alice}`, { headers: bearer(ALICE) });
    assert.equal(still.status, 200);
    assert.equal(still.body.job.state, 'SUCCEEDED');
    assert.equal(still.body.job.items.done, 3);

    // Without a key: 401 as before, before anything about the job.
    assert.equal((await api(cl.url, `/api/v1/jobs/${jobs.alice}`)).status, 401);
    assert.equal((await api(cl.url, '/api/v1/jobs')).status, 401);
  });

  test('other spellings of a job id reach the same job, and the same check', async () => {
    const cl = c!;
    const id = jobs.alice;
    const encoded = [...id].map((ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`).join('');
    const byAlice = await api(cl.url, `/api/v1/jobs/${encoded}`, { headers: bearer(ALICE) });
    assert.equal(byAlice.status, 200, 'a percent-encoded id is the same job');
    assert.equal(byAlice.body.job.id, id);
    for (const spelled of [encoded, `${id.slice(0, 1)}${id.slice(1).toUpperCase()}`, id.toUpperCase(), `${id}%00`, `${id}%2Fresults`, `%2E%2E%2F${id}`]) {
      const r = await api(cl.url, `/api/v1/jobs/${spelled}`, { headers: bearer(BOB) });
      assert.equal(r.status, 404, `${spelled}: ${JSON.stringify(r.body)}`);
      assert.doesNotMatch(JSON.stringify(r.body), /"state"|"items"/, spelled);
      const results = await api(cl.url, `/api/v1/jobs/${spelled}/results`, { headers: bearer(BOB) });
      assert.equal(results.status, 404, `${spelled}/results`);
    }
    // Upper case is another id, which no job has, for its owner too.
    assert.equal((await api(cl.url, `/api/v1/jobs/${id.toUpperCase()}`, { headers: bearer(ALICE) })).status, 404);
  });

  test('a list holds the caller’s jobs only, whatever the filters; an admin key lists every job', async () => {
    const cl = c!;
    const mine = [jobs.alice, jobs.alice2].sort();
    assert.deepEqual(await listed(cl.url, ALICE), mine);
    for (const q of ['?model=iris', '?state=SUCCEEDED', '?state=succeeded', '?model=iris&state=SUCCEEDED', '?model=iris&model=iris']) {
      const got = await listed(cl.url, ALICE, q);
      assert.ok(
        got.every((id) => mine.includes(id)),
        `${q}: ${got}`,
      );
    }
    assert.deepEqual(await listed(cl.url, BOB), [jobs.bob]);
    assert.deepEqual(await listed(cl.url, UNNAMED), [jobs.unnamed]);
    assert.deepEqual(await listed(cl.url, BOB, '?state=RUNNING'), []);
    assert.deepEqual(await listed(cl.url, OPS), Object.values(jobs).sort());
  });

  test('another key cannot cancel or remove a running job; its owner can', async () => {
    const cl = c!;
    assert.equal((await uploadModel(cl.url, 'slow', path.join(FIXTURES, 'slow.onnx'), undefined, OPS)).status, 201);
    // 4000 rows of a model that costs tens of milliseconds a run, whatever the batch: seconds of work.
    const body = ROWS.repeat(1334).split('\n').slice(0, 4000).join('\n');
    const r = await api(cl.url, '/api/v1/models/slow/jobs', { method: 'POST', body, headers: { 'content-type': 'application/x-ndjson', ...bearer(ALICE) } });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const id = r.body.job.id as string;
    await assertHidden(cl.url, id, BOB);
    const after = await api(cl.url, `/api/v1/jobs/${id}`, { headers: bearer(ALICE) });
    assert.ok(['QUEUED', 'RUNNING'].includes(after.body.job.state), `Bob's DELETE left the job going: ${JSON.stringify(after.body.job)}`);
    const cancel = await api(cl.url, `/api/v1/jobs/${id}`, { method: 'DELETE', headers: bearer(ALICE) });
    assert.equal(cancel.status, 200);
    assert.equal(cancel.body.job.state, 'CANCELLED');
    assert.equal((await api(cl.url, `/api/v1/jobs/${id}?purge=true`, { method: 'DELETE', headers: bearer(ALICE) })).status, 200);
  });

  test('the CLI with a key sees that key’s jobs only', async () => {
    const cl = c!;
    const bin = path.join(REPO, 'services', 'cli', 'bin', 'inferrer.mjs');
    const env = { ...process.env, INFERRER_URL: cl.url };
    const list = await run(process.execPath, [bin, 'jobs', 'list', '--json', '--key', BOB], { env });
    assert.deepEqual(
      (JSON.parse(list.stdout) as { id: string }[]).map((j) => j.id),
      [jobs.bob],
    );
    const status = await run(process.execPath, [bin, 'jobs', 'status', jobs.alice, '--key', BOB], { env }).then(
      () => assert.fail('another key’s job must not be found'),
      (err: { code: number; stderr: string }) => err,
    );
    assert.notEqual(status.code, 0);
    assert.match(status.stderr, /JOB_NOT_FOUND|not found/);
  });

  test('an admin key reads, cancels and removes any job', async () => {
    const cl = c!;
    const status = await api(cl.url, `/api/v1/jobs/${jobs.bob}`, { headers: bearer(OPS) });
    assert.equal(status.status, 200);
    assert.equal(status.body.job.id, jobs.bob);
    const results = await api(cl.url, `/api/v1/jobs/${jobs.bob}/results`, { headers: bearer(OPS) });
    assert.equal(results.status, 200);
    assert.equal(String(results.body).trim().split('\n').length, 3);
    assert.equal((await api(cl.url, `/api/v1/jobs/${jobs.bob}`, { method: 'DELETE', headers: bearer(OPS) })).status, 200);
    assert.equal((await api(cl.url, `/api/v1/jobs/${jobs.bob}?purge=true`, { method: 'DELETE', headers: bearer(OPS) })).status, 200);
    assert.equal((await api(cl.url, `/api/v1/jobs/${jobs.bob}`, { headers: bearer(BOB) })).status, 404, 'gone for its owner too');
    assert.deepEqual(await listed(cl.url, BOB), []);
  });

  test('after a restart with other keys: owners are kept; a removed key’s jobs and jobs without an owner are the admin’s', async () => {
    // A job stored by an Inferrer from before owners were recorded: its state.json has no owner.
    const state = path.join(modelDir, '.jobs', jobs.alice2, 'state.json');
    await c!.close();
    c = undefined;
    const rec = JSON.parse(await readFile(state, 'utf8')) as Record<string, unknown>;
    assert.equal(rec.owner, 'key:alice', 'the owner is stored with the job');
    delete rec.owner;
    await writeFile(state, JSON.stringify(rec));
    // A key without a name is stored as a fingerprint (never the key), and its quota counts by it too.
    const unnamed = await readFile(path.join(modelDir, '.jobs', jobs.unnamed, 'state.json'), 'utf8');
    assert.match(JSON.parse(unnamed).owner, /^key-sha256:[0-9a-f]{16}$/);
    assert.equal(JSON.parse(unnamed).client, JSON.parse(unnamed).owner);
    assert.ok(!unnamed.includes(UNNAMED), 'the key itself is not stored');

    // `gone` is removed; the key without a name moves from 5th to 4th place, and a new unnamed key takes 5th.
    const cl = await startWith([
      { key: OPS, scopes: ['admin', 'predict'], name: 'ops' },
      { key: ALICE, scopes: ['predict'], name: 'alice' },
      { key: BOB, scopes: ['predict'], name: 'bob' },
      { key: UNNAMED, scopes: ['predict'] },
      { key: NEWCOMER, scopes: ['predict'] },
    ]);
    assert.deepEqual(await listed(cl.url, ALICE), [jobs.alice]);
    assert.equal((await api(cl.url, `/api/v1/jobs/${jobs.alice}`, { headers: bearer(ALICE) })).status, 200);
    await assertHidden(cl.url, jobs.alice2, ALICE);

    assert.equal((await api(cl.url, `/api/v1/jobs/${jobs.gone}`, { headers: bearer(GONE) })).status, 401, 'a removed key is no key');
    await assertHidden(cl.url, jobs.gone, ALICE);
    await assertHidden(cl.url, jobs.gone, NEWCOMER);

    assert.deepEqual(await listed(cl.url, UNNAMED), [jobs.unnamed], 'an unnamed key keeps its jobs when its place changes');
    assert.deepEqual(await listed(cl.url, NEWCOMER), []);
    await assertHidden(cl.url, jobs.unnamed, NEWCOMER);

    assert.deepEqual(await listed(cl.url, OPS), [jobs.alice, jobs.alice2, jobs.gone, jobs.unnamed].sort());
    for (const id of [jobs.alice2, jobs.gone]) assert.equal((await api(cl.url, `/api/v1/jobs/${id}/results`, { headers: bearer(OPS) })).status, 200);
    assert.equal((await api(cl.url, `/api/v1/jobs/${jobs.gone}?purge=true`, { method: 'DELETE', headers: bearer(OPS) })).status, 200);
  });

  test('without API keys every client sees every job, as before', async () => {
    const cl = await startWith(undefined);
    const id = await submit(cl.url, undefined);
    await waitEnded(cl.url, id, undefined);
    assert.deepEqual(await listed(cl.url, undefined), [jobs.alice, jobs.alice2, jobs.unnamed, id].sort());
    for (const j of [jobs.alice, jobs.alice2, jobs.unnamed]) {
      assert.equal((await api(cl.url, `/api/v1/jobs/${j}`)).status, 200, j);
      assert.equal((await api(cl.url, `/api/v1/jobs/${j}/results`)).status, 200, j);
    }
    assert.equal((await api(cl.url, `/api/v1/jobs/${jobs.alice}?purge=true`, { method: 'DELETE' })).status, 200);
  });
});
