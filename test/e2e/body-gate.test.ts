/**
 * The body gate (services/inferrer/src/body-gate.ts) through the real cluster: a large prediction for a model
 * that has its limit of large requests upstream waits at the Inferrer with its body unread
 * (inferrer_body_gate_waiting), goes on in arrival order when a place frees, and a client that leaves
 * while it waits costs the modelhost nothing: when its turn comes its body is read (the kernel held it) and
 * the request is dropped at the Inferrer; the modelhost never sees it. slow.onnx runs one request at a time
 * (about 80 ms a run); its one-row v1 bodies are padded with spaces past the gate's 256 KiB.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FIXTURES, type TestCluster, startTestCluster, uploadModel } from '../helpers/cluster.ts';
import { metricSum as metric, until } from '../helpers/metrics.ts';

let c: TestCluster;

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
  const u = new URL(c.url);
  const body = JSON.stringify({ values: [row] }).padEnd(300_000, ' ');
  const req = http.request({
    host: u.hostname,
    port: u.port,
    method: 'POST',
    path: '/api/v1/models/slow/prediction',
    agent: false,
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
  });
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
});
