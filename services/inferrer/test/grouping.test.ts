/**
 * The Inferrer's grouping against upstreams that misbehave in ways a real modelhost cannot be made to on
 * cue: one that dies part-way through answering a group, one that keeps dying, and one that predates
 * groups. Each is a real HTTP server on 127.0.0.1 speaking the frame format; the happy path through real
 * modelhosts is in test/e2e/grouping.test.ts.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { FRAMES_CONTENT_TYPE, decodeFrames, encodeFrame, readStream } from '@inferrer/core';
import { Grouping } from '../src/grouping.ts';
import { KeyHomes } from '../src/placement.ts';
import { Upstream, answerText } from '../src/upstream.ts';

interface Seen {
  path: string;
  members: string[];
}

/** A server that answers each member with `{"echo": <its body>}`; `behave` may cut the answer short. */
async function upstream(
  behave: (seen: Seen[], frames: Buffer[], res: http.ServerResponse) => void,
): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server = http.createServer(async (req, res) => {
    const body = await readStream(req, 1 << 20);
    if (req.url!.endsWith('/group')) {
      const members = decodeFrames(body);
      seen.push({ path: req.url!, members: members.map((m) => m.body.toString()) });
      const frames = members.map((m, i) =>
        encodeFrame({ i, status: 200, headers: { 'content-type': 'application/json', 'x-modelhost-id': 'stub' } }, JSON.stringify({ echo: m.body.toString() })),
      );
      res.writeHead(200, { 'content-type': FRAMES_CONTENT_TYPE });
      behave(seen, frames, res);
      return;
    }
    seen.push({ path: req.url!, members: [body.toString()] });
    echo(res, body);
  });
  return { ...(await listen(server)), seen };
}

/** Answers a member on its own: `{"echo": <its body>}`. */
function echo(res: http.ServerResponse, body: Buffer): void {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ echo: body.toString() }));
}

async function listen(server: http.Server): Promise<{ url: string; close(): Promise<void> }> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers) await c();
});

async function setup(behave: Parameters<typeof upstream>[0], maxRequests = 64): Promise<{ grouping: Grouping; seen: Seen[]; sizes: number[] }> {
  const u = await upstream(behave);
  const up = new Upstream(u.url, 8);
  closers.push(async () => {
    await up.close();
    await u.close();
  });
  const sizes: number[] = [];
  return { grouping: new Grouping(up, { maxRequests, timeoutMs: 5000, onGroup: (n) => sizes.push(n) }), seen: u.seen, sizes };
}

const member = (k: number) => ({
  model: 'm',
  path: '/v1/models/m/predict',
  headers: { 'x-request-id': `r${k}`, 'content-type': 'application/json' },
  body: Buffer.from(`{"k":${k}}`),
});

/** Sends `n` members in one turn; settles each to its echo text or its error code. */
async function sendAll(g: Grouping, n: number): Promise<string[]> {
  return Promise.all(
    Array.from({ length: n }, (_, k) =>
      g.send(member(k)).then(
        async (r) => JSON.parse(await answerText(r)).echo as string,
        (e: { code?: string }) => `error ${e.code}`,
      ),
    ),
  );
}

describe('grouping', () => {
  test('members sent in one turn go as groups of at most maxRequests; each gets its own answer', async () => {
    const { grouping, seen, sizes } = await setup((_s, frames, res) => res.end(Buffer.concat(frames.reverse())), 4);
    const out = await sendAll(grouping, 10);
    assert.deepEqual(
      out,
      Array.from({ length: 10 }, (_, k) => `{"k":${k}}`),
      'answers match members even when frames come back out of order',
    );
    assert.deepEqual(sizes, [4, 4, 2]);
    assert.deepEqual(
      seen.map((s) => s.members.length),
      [4, 4, 2],
    );
    assert.ok(seen.every((s) => s.path === '/v1/models/m/group'));
  });

  test('a lone member goes as an ordinary request', async () => {
    const { grouping, seen } = await setup(() => assert.fail('no group expected'));
    assert.deepEqual(await sendAll(grouping, 1), ['{"k":0}']);
    assert.deepEqual(seen, [{ path: '/v1/models/m/predict', members: ['{"k":0}'] }]);
  });

  test('maxRequests 1 turns grouping off', async () => {
    const { grouping, seen } = await setup(() => assert.fail('no group expected'), 1);
    assert.equal((await sendAll(grouping, 5)).length, 5);
    assert.deepEqual(
      seen.map((s) => s.path),
      Array(5).fill('/v1/models/m/predict'),
    );
  });

  test('a group that breaks off part-way is sent again for the members not yet answered', async () => {
    const { grouping, seen } = await setup((s, frames, res) => {
      if (s.length === 1) {
        // The first attempt answers two members, then the worker "dies".
        res.write(Buffer.concat(frames.slice(0, 2)), () => res.destroy());
      } else res.end(Buffer.concat(frames));
    });
    const out = await sendAll(grouping, 6);
    assert.deepEqual(
      out,
      Array.from({ length: 6 }, (_, k) => `{"k":${k}}`),
    );
    assert.equal(seen.length, 2);
    assert.deepEqual(seen[1]!.members, ['{"k":2}', '{"k":3}', '{"k":4}', '{"k":5}'], 'only the unanswered members are sent again');
  });

  test('a group that breaks off twice fails its unanswered members with UPSTREAM_UNAVAILABLE (retryable), never a wrong answer', async () => {
    const { grouping, seen } = await setup((_s, frames, res) => res.write(frames[0], () => res.destroy()));
    const out = await sendAll(grouping, 4);
    // Each attempt answers its first member before it dies: k0 on the first, k1 on the retry.
    assert.deepEqual(out, ['{"k":0}', '{"k":1}', 'error UPSTREAM_UNAVAILABLE', 'error UPSTREAM_UNAVAILABLE']);
    assert.equal(seen.length, 2);
  });

  test('an upstream without the group route (a rolling upgrade) gets every member on its own', async () => {
    const u = await upstream(() => undefined);
    const old = http.createServer(async (req, res) => {
      const body = await readStream(req, 1 << 20);
      if (req.url!.endsWith('/group')) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'ROUTE_NOT_FOUND', message: 'no route' } }));
        return;
      }
      u.seen.push({ path: req.url!, members: [body.toString()] });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ echo: body.toString() }));
    });
    await new Promise<void>((r) => old.listen(0, '127.0.0.1', r));
    const up = new Upstream(`http://127.0.0.1:${(old.address() as AddressInfo).port}`, 4);
    closers.push(async () => {
      await up.close();
      await new Promise((r) => old.close(r));
      await u.close();
    });
    const out = await sendAll(new Grouping(up, { maxRequests: 64, timeoutMs: 5000 }), 5);
    assert.deepEqual(
      out,
      Array.from({ length: 5 }, (_, k) => `{"k":${k}}`),
    );
    assert.equal(u.seen.length, 5);
  });

  test('an error frame rejects its member with the error it carries; the others resolve', async () => {
    const { grouping } = await setup((_s, frames, res) => {
      const err = encodeFrame(
        { i: 1, status: 503, headers: { 'content-type': 'application/json', 'retry-after': '1' } },
        JSON.stringify({ error: { code: 'QUEUE_FULL', message: 'full' } }),
      );
      res.end(Buffer.concat([frames[0]!, err, frames[2]!]));
    });
    assert.deepEqual(await sendAll(grouping, 3), ['{"k":0}', 'error QUEUE_FULL', '{"k":2}']);
  });

  test('a member whose client goes away before the group leaves leaves it; one already gone is refused at once', async () => {
    const { grouping, seen } = await setup((_s, frames, res) => res.end(Buffer.concat(frames)));
    const gone = new AbortController();
    const settle = (p: Promise<unknown>): Promise<string> =>
      p.then(
        (r) => answerText(r as never).then((t) => JSON.parse(t).echo as string),
        (e: { code?: string }) => `error ${e.code}`,
      );
    const out = Promise.all([0, 1, 2].map((k) => settle(grouping.send({ ...member(k), ...(k === 1 ? { signal: gone.signal } : {}) }))));
    gone.abort();
    assert.deepEqual(await out, ['{"k":0}', 'error REQUEST_CANCELLED', '{"k":2}']);
    assert.deepEqual(
      seen.map((x) => x.members),
      [['{"k":0}', '{"k":2}']],
      'the group went without it',
    );
    assert.equal(await settle(grouping.send({ ...member(9), signal: AbortSignal.abort() })), 'error REQUEST_CANCELLED');
  });

  test('once every member of a group in flight is given up, the group request is abandoned (its connection closes)', async () => {
    let closed!: () => void;
    const upstreamSawClose = new Promise<void>((r) => (closed = r));
    // An upstream that answers member 0 at once and sits on the others, as a modelhost with them queued.
    const { grouping } = await setup((_s, frames, res) => {
      res.write(frames[0]);
      res.once('close', () => closed());
    });
    const quitters = [new AbortController(), new AbortController()];
    const settle = (p: Promise<unknown>): Promise<string> =>
      p.then(
        (r) => answerText(r as never).then((t) => JSON.parse(t).echo as string),
        (e: { code?: string }) => `error ${e.code}`,
      );
    const out = Promise.all([settle(grouping.send(member(0))), ...quitters.map((c, k) => settle(grouping.send({ ...member(k + 1), signal: c.signal })))]);
    await new Promise((r) => setTimeout(r, 100));
    quitters[0]!.abort();
    await new Promise((r) => setTimeout(r, 50));
    let done = false;
    void upstreamSawClose.then(() => (done = true));
    assert.equal(done, false, 'one member still waits: the group stays');
    quitters[1]!.abort();
    assert.deepEqual(await out, ['{"k":0}', 'error REQUEST_CANCELLED', 'error REQUEST_CANCELLED']);
    await upstreamSawClose;
  });
});

/**
 * A balancer and its workers in one server: a request goes to the worker its placement key maps to
 * (`ring`, which a test may change, as when a worker leaves), and every answer names that worker in
 * X-Modelhost-Id, as a modelhost's does.
 */
async function ringUpstream(
  ring: (key: string) => string,
): Promise<{ url: string; seen: { worker: string; key: string; models: string[] }[]; setRing(r: (key: string) => string): void; close(): Promise<void> }> {
  const seen: { worker: string; key: string; models: string[] }[] = [];
  let map = ring;
  const server = http.createServer(async (req, res) => {
    const body = await readStream(req, 1 << 20);
    const key = String(req.headers['x-inferrer-placement']);
    const worker = map(key);
    res.setHeader('x-modelhost-id', worker);
    const modelOf = (path: string): string => path.split('/')[3]!;
    if (req.url!.endsWith('/group')) {
      const members = decodeFrames(body);
      seen.push({ worker, key, models: members.map((m) => modelOf(String(m.header.path))) });
      res.writeHead(200, { 'content-type': FRAMES_CONTENT_TYPE });
      res.end(
        Buffer.concat(
          members.map((m, i) =>
            encodeFrame(
              { i, status: 200, headers: { 'content-type': 'application/json', 'x-modelhost-id': worker } },
              JSON.stringify({ echo: m.body.toString() }),
            ),
          ),
        ),
      );
      return;
    }
    seen.push({ worker, key, models: [modelOf(req.url!)] });
    echo(res, body);
  });
  return { ...(await listen(server)), seen, setRing: (r) => (map = r) };
}

describe('grouping by worker (placement on)', () => {
  const models = ['a', 'b', 'c', 'd', 'e', 'f'];
  /** Where each model's key lands: a, c, e on w1; b, d, f on w2. */
  const twoWorkers = (key: string): string => (models.indexOf(key.split('#')[0]!) % 2 === 0 ? 'w1' : 'w2');

  async function setupRing(): Promise<{ grouping: Grouping; u: Awaited<ReturnType<typeof ringUpstream>>; homes: KeyHomes }> {
    const u = await ringUpstream(twoWorkers);
    const up = new Upstream(u.url, 8);
    closers.push(async () => {
      await up.close();
      await u.close();
    });
    const homes = new KeyHomes();
    return { grouping: new Grouping(up, { maxRequests: 64, timeoutMs: 5000, place: (m) => `${m}#0`, homes }), u, homes };
  }

  /** One prediction per model, all in one turn; resolves to each one's echoed body. */
  const turn = (g: Grouping, names: string[], tag: string): Promise<string[]> =>
    Promise.all(
      names.map((m) =>
        g
          .send({
            model: m,
            path: `/v1/models/${m}/predict`,
            headers: { 'x-request-id': `${tag}-${m}`, 'content-type': 'application/json' },
            body: Buffer.from(`"${tag}-${m}"`),
          })
          .then(async (r) => JSON.parse(await answerText(r)).echo as string),
      ),
    );

  test('once it is known where their keys land, predictions for different models bound for one worker travel as one group', async () => {
    const { grouping, u } = await setupRing();
    assert.deepEqual(
      await turn(grouping, models, 't1'),
      models.map((m) => `"t1-${m}"`),
    );
    assert.deepEqual(
      u.seen.map((s) => s.models.length),
      [1, 1, 1, 1, 1, 1],
      'nothing is known yet: each model goes by its own key',
    );
    u.seen.length = 0;
    assert.deepEqual(
      await turn(grouping, models, 't2'),
      models.map((m) => `"t2-${m}"`),
      'each member gets its own answer',
    );
    assert.deepEqual(
      u.seen.map((s) => [s.worker, [...s.models].sort()]).sort(),
      [
        ['w1', ['a', 'c', 'e']],
        ['w2', ['b', 'd', 'f']],
      ],
      'two requests, one per worker, each with the models whose keys land there',
    );
    for (const s of u.seen) assert.ok(s.models.includes(s.key.split('#')[0]!), 'a group is routed by one of its own members’ keys');
  });

  test("a burst for a costly model spreads over its keys' workers, not the worker of one key; a cheap model's goes as one group", async () => {
    // hot#0 and hot#2 land on w1, hot#1 and hot#3 on w2; the model has four keys, taken round-robin.
    const u = await ringUpstream((key) => (Number(key.split('#')[1]) % 2 === 0 ? 'w1' : 'w2'));
    const up = new Upstream(u.url, 8);
    closers.push(async () => {
      await up.close();
      await u.close();
    });
    let turnNo = 0;
    let costly = true;
    const grouping = new Grouping(up, {
      maxRequests: 64,
      timeoutMs: 5000,
      place: (m) => `${m}#${turnNo++ % 4}`,
      spread: () => costly,
      homes: new KeyHomes(),
    });
    /** 40 predictions in one turn; each must get its own answer. */
    const burst = async (tag: string): Promise<void> => {
      const answers = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          grouping
            .send({ model: 'hot', path: '/v1/models/hot/predict', headers: { 'x-request-id': `${tag}-${i}` }, body: Buffer.from(`"${tag}-${i}"`) })
            .then(async (r) => JSON.parse(await answerText(r)).echo as string),
        ),
      );
      assert.deepEqual(
        answers,
        Array.from({ length: 40 }, (_, i) => `"${tag}-${i}"`),
      );
    };
    await burst('b1');
    assert.deepEqual(
      u.seen.map((s) => [s.key, s.models.length]).sort(),
      [
        ['hot#0', 10],
        ['hot#1', 10],
        ['hot#2', 10],
        ['hot#3', 10],
      ],
      'nothing is known yet: one group per key, the members shared out',
    );
    u.seen.length = 0;
    await burst('b2');
    assert.deepEqual(
      u.seen.map((s) => [s.worker, s.models.length]).sort(),
      [
        ['w1', 20],
        ['w2', 20],
      ],
      'known: one group per worker, each with the members whose keys land there',
    );
    costly = false;
    u.seen.length = 0;
    await burst('b3');
    assert.deepEqual(
      u.seen.map((s) => s.models.length),
      [40],
      'a cheap model: one group',
    );
  });

  test('when the ring changes (a worker leaves), what was learned about it is forgotten and members go by their own keys again', async () => {
    const { grouping, u, homes } = await setupRing();
    await turn(grouping, models, 't1');
    await turn(grouping, models, 't2');
    // w1 leaves: its keys now land on w3, w2's stay.
    u.setRing((key) => (twoWorkers(key) === 'w1' ? 'w3' : 'w2'));
    u.seen.length = 0;
    assert.deepEqual(
      await turn(grouping, models, 't3'),
      models.map((m) => `"t3-${m}"`),
    );
    assert.deepEqual(
      ['a#0', 'c#0', 'e#0'].map((k) => homes.get(k)?.worker).sort(),
      ['w3', undefined, undefined],
      'the group expected on w1 came back from w3: what was known of w1 is forgotten, the key that routed it is learned anew',
    );
    u.seen.length = 0;
    await turn(grouping, models, 't4');
    await turn(grouping, models, 't5');
    u.seen.length = 0;
    await turn(grouping, models, 't6');
    assert.deepEqual(
      u.seen.map((s) => [s.worker, [...s.models].sort()]).sort(),
      [
        ['w2', ['b', 'd', 'f']],
        ['w3', ['a', 'c', 'e']],
      ],
      'relearned: the groups follow the new ring',
    );
  });
});
