/**
 * The body gate (services/inferrer/src/body-gate.ts) through the real cluster: a large prediction for a model
 * that has its limit of large requests upstream waits at the Inferrer with its body unread
 * (inferrer_body_gate_waiting), goes on in arrival order when a place frees, and a client that leaves
 * while it waits costs the modelhost nothing: when its turn comes its body is read (the kernel held it) and
 * the request is dropped at the Inferrer; the modelhost never sees it. slow.onnx runs one request at a time
 * (about 80 ms a run); its one-row v1 bodies are padded with spaces past the gate's 256 KiB.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { FIXTURES, type TestCluster, startTestCluster, uploadModel } from '../helpers/cluster.ts';
import { metricSum as metric, until } from '../helpers/metrics.ts';
import { postOnOwnConnection } from '../helpers/own-connection.ts';

let c: TestCluster;
const run = promisify(execFile);

before(async () => {
  c = await startTestCluster({ modelhosts: 1 });
  const up = await uploadModel(c.url, 'slow', path.join(FIXTURES, 'slow.onnx'), { config: { preload: true, instances: 1, batching: { max_batch_size: 1 } } });
  assert.equal(up.status, 201, JSON.stringify(up.body));
  assert.equal((await send([0, 0, 0, 0]).answer).status, 200);
});
after(async () => {
  await c?.close();
});

const waiting = (): Promise<number> => metric(c.url, 'inferrer_body_gate_waiting');
/** Requests the modelhost has received for slow, answered or not (its queue counts each on arrival). */
const seen = (): Promise<number> => metric(c.modelhosts[0]!.url, 'modelhost_batch_size_sum', { model: 'slow' });
const cancelledAtModelhost = (): Promise<number> => metric(c.modelhosts[0]!.url, 'modelhost_requests_cancelled_total', { model: 'slow' });

/** A v1 prediction of one row, its JSON padded with spaces to 300 KB, on a connection of its own. */
function send(row: number[]): { answer: Promise<{ status: number; values?: number[][] }>; quit(): void } {
  const body = JSON.stringify({ values: [row] }).padEnd(300_000, ' ');
  const req = postOnOwnConnection(c.url, '/api/v1/models/slow/prediction', body);
  const answer = new Promise<{ status: number; values?: number[][] }>((resolve, reject) => {
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, values: (JSON.parse(text) as { values?: number[][] }).values }));
    });
    req.on('error', reject);
  });
  req.end(body);
  return { answer, quit: () => req.destroy() };
}

describe('body gate', () => {
  test('beyond the limit a large request waits unread; one whose client leaves never reaches the modelhost; the rest go in order', async () => {
    const seen0 = await seen();
    const cancelled0 = await cancelledAtModelhost();
    const dropped0 = await metric(c.url, 'inferrer_requests_cancelled_total');
    // The gate lets 8 large requests of a model through at first.
    const through = Array.from({ length: 8 }, (_, k) => send([k, 0, 0, 0]));
    await until('the eight are at the modelhost', async () => (await metric(c.modelhosts[0]!.url, 'modelhost_queue_depth', { model: 'slow' })) >= 7);
    const leaver = send([100, 0, 0, 0]);
    const patient = send([200, 0, 0, 0]);
    await until('two wait at the gate', async () => (await waiting()) === 2);
    leaver.answer.catch(() => undefined);
    leaver.quit();
    const answers = await Promise.all(through.map((t) => t.answer));
    for (const [k, a] of answers.entries()) {
      assert.equal(a.status, 200);
      assert.deepEqual(a.values, [[k, 0, 0, 0]]);
    }
    const last = await patient.answer;
    assert.equal(last.status, 200);
    assert.deepEqual(last.values, [[200, 0, 0, 0]]);
    assert.equal(await waiting(), 0);
    // The modelhost ran the eight and the patient one; the leaver never reached it, so nothing was cancelled there.
    assert.equal((await seen()) - seen0, 9);
    assert.equal((await cancelledAtModelhost()) - cancelled0, 0);
    assert.equal((await metric(c.url, 'inferrer_requests_cancelled_total')) - dropped0, 1);
  });

  test('a client that sends Expect: 100-continue is told to go on when its request is let through, not before', async () => {
    const through = Array.from({ length: 8 }, (_, k) => send([k, 0, 0, 0]));
    await until('the eight are at the modelhost', async () => (await metric(c.modelhosts[0]!.url, 'modelhost_queue_depth', { model: 'slow' })) >= 7);
    const large = expecting(JSON.stringify({ values: [[300, 0, 0, 0]] }).padEnd(300_000, ' '));
    // A small body does not wait at the gate: it is told to go on at once, though the model is busy.
    const small = expecting(JSON.stringify({ values: [[400, 0, 0, 0]] }));
    await until('the small one is told to continue', async () => small.text().startsWith('HTTP/1.1 100 Continue'));
    await until('the large one waits at the gate', async () => (await waiting()) === 1);
    assert.equal(large.text(), '', 'no 100 Continue while it waits');
    for (const t of through) assert.equal((await t.answer).status, 200);
    await until('the large one is told to continue', async () => large.text().startsWith('HTTP/1.1 100 Continue'));
    for (const [r, value] of [
      [large, 300],
      [small, 400],
    ] as const) {
      r.sendBody();
      const text = await r.closed;
      const answer = text.slice(text.indexOf('HTTP/1.1 200'));
      assert.ok(answer.startsWith('HTTP/1.1 200'), text.slice(0, 300));
      assert.deepEqual(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)).values, [[value, 0, 0, 0]]);
    }
  });

  test('an upload with Expect: 100-continue (curl over 1 MiB) is told to go on at once', async () => {
    const { stdout } = await run('curl', [
      '-sS',
      '-X',
      'PUT',
      `${c.url}/api/v1/models/slow-copy`,
      '--data-binary',
      `@${path.join(FIXTURES, 'slow.onnx')}`,
      '-H',
      'Content-Type: application/octet-stream',
      '-H',
      'Expect: 100-continue',
      '--expect100-timeout',
      '30',
      '-w',
      '\\n%{http_code} %{time_total}',
    ]);
    const [status, seconds] = stdout.slice(stdout.lastIndexOf('\n') + 1).split(' ');
    assert.equal(status, '201', stdout);
    // curl waited for the 100 Continue (it would have waited up to 30 s): it came at once.
    assert.ok(Number(seconds) < 10, `took ${seconds} s`);
  });
});

/** A v1 prediction sent as curl sends a large one: headers with Expect: 100-continue, the body only when asked. */
function expecting(body: string): { text(): string; sendBody(): void; closed: Promise<string> } {
  const u = new URL(c.url);
  const socket = net.connect(Number(u.port), u.hostname);
  let text = '';
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => (text += d));
  const closed = new Promise<string>((resolve, reject) => {
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
  });
  socket.write(
    `POST /api/v1/models/slow/prediction HTTP/1.1\r\nHost: ${u.host}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`,
  );
  return { text: () => text, sendBody: () => socket.write(body), closed };
}
