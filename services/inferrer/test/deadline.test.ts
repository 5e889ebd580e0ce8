/**
 * The Inferrer keeps a prediction's deadline whatever it waits for: a connection to the balancer (the
 * pool's queue, which undici's headersTimeout does not cover), a modelhost that answers late, or one
 * member of a group that is late while the others are not. It gives the modelhost what is left of the
 * deadline, less a margin for the trip back. Real HTTP servers on 127.0.0.1 stand in for the balancer.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { FRAMES_CONTENT_TYPE, decodeFrames, encodeFrame, readStream } from '@inferrer/core';
import { loadConfig } from '../src/config.ts';
import { DataPlane } from '../src/dataplane.ts';
import { answerBy, modelhostBudgetMs, noteConnection, noteEarlyAnswer, takenAt } from '../src/deadline.ts';
import { loopLagMs } from '../src/loop-lag.ts';
import { Grouping } from '../src/grouping.ts';
import { Upstream, answerText } from '../src/upstream.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

/** A stand-in balancer: `answer` decides, per request, how long to wait and what to send. */
async function balancer(answer: (req: http.IncomingMessage, body: Buffer, res: http.ServerResponse) => void): Promise<string> {
  const server = http.createServer(async (req, res) => answer(req, await readStream(req, 1 << 20), res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(
    () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function upstream(url: string, connections: number): Upstream {
  const up = new Upstream(url, connections);
  closers.push(() => up.close());
  return up;
}

async function settle(p: Promise<unknown>, made: number): Promise<{ what: string; ms: number }> {
  try {
    await p;
    return { what: 'ok', ms: performance.now() - made };
  } catch (err) {
    return { what: (err as { code?: string }).code ?? String(err), ms: performance.now() - made };
  }
}

describe('the deadline at the Inferrer', () => {
  test('requests queued for a busy connection are answered DEADLINE_EXCEEDED at the deadline, not after', async () => {
    // One connection, and a balancer that takes 3 s to answer: the second and third wait for the connection.
    const url = await balancer((_req, _body, res) => void setTimeout(() => res.end('{}'), 3000));
    const up = upstream(url, 1);
    const made = performance.now();
    const results = await Promise.all(
      [1, 2, 3].map(() => settle(up.request({ method: 'POST', path: '/x', headers: {}, body: '{}', timeoutMs: 30_000, deadline: made + 300 }), made)),
    );
    for (const r of results) {
      assert.equal(r.what, 'DEADLINE_EXCEEDED');
      assert.ok(r.ms >= 290 && r.ms < 1500, `answered after ${r.ms.toFixed(0)} ms for a 300 ms deadline`);
    }
  });

  test('a deadline already past is refused before anything is sent', async () => {
    let seen = 0;
    const url = await balancer((_req, _body, res) => {
      seen++;
      res.end('{}');
    });
    await assert.rejects(upstream(url, 1).request({ method: 'GET', path: '/x', headers: {}, timeoutMs: 1000, deadline: performance.now() - 1 }), {
      code: 'DEADLINE_EXCEEDED',
    });
    assert.equal(seen, 0);
  });

  test('in a group, a member whose answer is late is answered DEADLINE_EXCEEDED at its deadline; the others get theirs', async () => {
    // Member 0 is answered at once, member 1 after 2 s.
    const url = await balancer((_req, body, res) => {
      const members = decodeFrames(body);
      res.writeHead(200, { 'content-type': FRAMES_CONTENT_TYPE });
      res.write(encodeFrame({ i: 0, status: 200, headers: { 'content-type': 'application/json' } }, JSON.stringify({ echo: members[0]!.body.toString() })));
      setTimeout(() => res.end(encodeFrame({ i: 1, status: 200, headers: { 'content-type': 'application/json' } }, '{"late":true}')), 2000);
    });
    const grouping = new Grouping(upstream(url, 2), { maxRequests: 8, timeoutMs: 30_000 });
    const made = performance.now();
    const member = (k: number) => ({
      model: 'm',
      path: '/v1/models/m/predict',
      headers: { 'x-request-id': `r${k}` },
      body: Buffer.from(`{"k":${k}}`),
      deadline: made + 400,
    });
    const [a, b] = await Promise.all([
      grouping.send(member(0)).then(async (r) => ({ what: await answerText(r), ms: performance.now() - made })),
      settle(grouping.send(member(1)), made),
    ]);
    assert.equal(JSON.parse(a.what).echo, '{"k":0}');
    assert.equal(b.what, 'DEADLINE_EXCEEDED');
    assert.ok(b.ms >= 390 && b.ms < 1500, `the late member was answered after ${b.ms.toFixed(0)} ms`);
  });

  test('the modelhost is given what is left of the deadline, less a margin for the trip back', async () => {
    const given: number[] = [];
    const url = await balancer((req, _body, res) => {
      given.push(Number(req.headers['x-request-timeout-ms']));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
    const dir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-deadline-'));
    closers.push(() => rm(dir, { recursive: true, force: true }));
    const config = loadConfig({ MODEL_DIR: dir, LOAD_BALANCER_URL: url, REQUEST_TIMEOUT_MS: '10000', GROUP_MAX_REQUESTS: '1' });
    const dataplane = new DataPlane(upstream(url, 4), config);
    await dataplane.predictV1('iris', new URLSearchParams(), { reqId: 'a', body: '{"values":[1,2,3,4]}' });
    await dataplane.predictV1('iris', new URLSearchParams(), { reqId: 'b', body: '{"values":[1,2,3,4]}', deadline: performance.now() + 1000 });
    // 10 s: the Inferrer answers by 9 s and gives the modelhost 2.5 % less (8.775 s).
    assert.ok(given[0]! <= 8775 && given[0]! > 8600, `a fresh request leaves the modelhost about 8.8 s of 10 s (got ${given[0]})`);
    assert.ok(given[1]! <= 975 && given[1]! > 850, `one with 1 s left leaves it 0.975 s (got ${given[1]})`);
    assert.equal(modelhostBudgetMs(100), 97);
    assert.equal(modelhostBudgetMs(60_000), 59_750);
    assert.equal(modelhostBudgetMs(0.5), 1);
    assert.equal(answerBy(1000, 10_000), 10_000);
    assert.equal(answerBy(0, 1000), 900);
    assert.equal(answerBy(0, 60_000), 59_000);
  });
});

describe('when a request is taken as arriving', () => {
  /**
   * A server that notes its connections (as the Inferrer's does) and is busy for 300 ms in the turn that
   * accepts one, and a client in another process that connects and sends two requests on one connection,
   * the first `waitMs` after connecting. Returns, per request, how much earlier than its reading the
   * request is taken as arriving, and the event loop's recent delay then, which every request is allowed (ms).
   */
  async function earlier(waitMs: number): Promise<Record<string, { earlier: number; lag: number }>> {
    const seen: Record<string, { earlier: number; lag: number }> = {};
    const server = http.createServer((req, res) => {
      const readAt = performance.now();
      seen[String(req.url)] = { earlier: readAt - takenAt(readAt, req.socket), lag: loopLagMs() };
      res.end('ok');
    });
    server.on('connection', (socket) => {
      noteConnection(socket);
      const until = performance.now() + 300;
      while (performance.now() < until);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const client = spawn(
      process.execPath,
      [
        '-e',
        `const s = require('node:net').connect(${port}, '127.0.0.1', () => setTimeout(() => s.write(ask('/first')), ${waitMs}));
         const ask = (p) => 'GET ' + p + ' HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n';
         let answers = 0;
         s.on('data', (d) => { answers += String(d).split('HTTP/1.1 200').length - 1; if (answers === 1) s.write(ask('/second')); if (answers === 2) process.exit(0); });`,
      ],
      { stdio: 'inherit' },
    );
    const code = await new Promise((r) => client.once('exit', r));
    server.close();
    assert.equal(code, 0);
    return seen;
  }

  test("a connection's first request read right after a busy accept is taken as arriving at the accept; later ones, and one sent later, are not", async () => {
    const prompt = await earlier(0);
    const first = prompt['/first']!;
    assert.ok(first.earlier >= 250, `sent with the connection, read 300 ms after the accept: taken ${first.earlier.toFixed(0)} ms earlier`);
    // The others: earlier by the loop's delay only.
    const second = prompt['/second']!;
    assert.ok(Math.abs(second.earlier - second.lag) < 1, `the second request on the connection: ${JSON.stringify(second)}`);
    const idle = (await earlier(800))['/first']!;
    assert.ok(Math.abs(idle.earlier - idle.lag) < 1, `sent 800 ms after connecting: ${JSON.stringify(idle)}`);
  });

  /**
   * A server that refuses /refused on its headers (noteEarlyAnswer, as the prediction routes do), and a
   * client in another process that sends /next on the same connection once it has the refusal. `behind`:
   * the client sends the first 1 MB of the 4 MB body, and once refused the rest 600 ms later with /next
   * right behind it (as a busy server that drains slowly sees a fast client); else the whole body at once
   * and /next 800 ms after the refusal. Returns how much earlier than its reading /next is taken as
   * arriving, and the loop's delay then (ms).
   */
  async function afterRefusal(behind: boolean): Promise<{ earlier: number; lag: number }> {
    // A quiet second and more, so that the loop's delay counts none of the busy turns above.
    await new Promise((r) => setTimeout(r, 2100));
    let seen: { earlier: number; lag: number } | undefined;
    const server = http.createServer((req, res) => {
      const readAt = performance.now();
      if (req.url === '/next') {
        seen = { earlier: readAt - takenAt(readAt, req.socket), lag: loopLagMs() };
        res.end('ok');
        return;
      }
      res.writeHead(503).end('full');
      noteEarlyAnswer(req, performance.now());
      req.resume();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const first = behind ? 1 << 20 : 4 << 20;
    const client = spawn(
      process.execPath,
      [
        '-e',
        `const s = require('node:net').connect(${port}, '127.0.0.1', () => s.write(Buffer.concat([Buffer.from('POST /refused HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: ${4 << 20}\\r\\n\\r\\n'), Buffer.alloc(${first})])));
         const next = 'GET /next HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n';
         let text = '';
         s.on('data', (d) => {
           text += d;
           if (text.includes('full') && !text.includes('sent')) {
             text += 'sent';
             if (${behind}) setTimeout(() => { s.write(Buffer.alloc(${(4 << 20) - first})); s.write(next); }, 600);
             else setTimeout(() => s.write(next), 800);
           }
           if (text.includes('ok')) process.exit(0);
         });`,
      ],
      { stdio: 'inherit' },
    );
    const code = await new Promise((r) => client.once('exit', r));
    server.close();
    assert.equal(code, 0);
    assert.ok(seen);
    return seen;
  }

  test('a request read right behind the body of one refused on its headers is taken as arriving at the refusal; one sent later is not', async () => {
    const behind = await afterRefusal(true);
    assert.ok(behind.lag < 100, JSON.stringify(behind));
    assert.ok(behind.earlier >= 550, `read right behind the body, 600 ms after the refusal: taken ${behind.earlier.toFixed(0)} ms earlier`);
    const later = await afterRefusal(false);
    assert.ok(Math.abs(later.earlier - later.lag) < 1, `sent 800 ms after the refusal: ${JSON.stringify(later)}`);
  });
});
