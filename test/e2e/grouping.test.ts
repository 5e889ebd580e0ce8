/**
 * Grouping (services/inferrer/src/grouping.ts): predictions for one model that arrive together travel to a
 * modelhost as one framed request, and each still gets exactly the answer, status, error and request id it
 * would get alone. Driven through a real cluster (Inferrer → balancer → 2 modelhosts), and against a
 * modelhost's group route directly.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { FRAMES_CONTENT_TYPE, FrameReader, decodeFrames, encodeFrame } from '@inferrer/core';
import { FIXTURES, REPO, type TestCluster, api, startTestCluster, uploadModel } from '../helpers/cluster.ts';

let c: TestCluster;
before(async () => {
  c = await startTestCluster();
});
after(async () => {
  await c?.close();
});

/** Rows of each iris class, and some between them. */
const ROWS = [
  [5.1, 3.5, 1.4, 0.2],
  [6.7, 2.5, 5.8, 1.8],
  [5.9, 3.0, 4.2, 1.5],
  [4.9, 3.0, 1.4, 0.2],
  [6.3, 3.3, 6.0, 2.5],
  [5.7, 2.8, 4.1, 1.3],
  [6.0, 2.2, 5.0, 1.5],
  [5.5, 2.4, 3.8, 1.1],
];

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${c.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

async function predict(row: number[], id: string, query = ''): Promise<{ status: number; id: string | null; body: any; batch: string | null }> {
  const r = await api(c.url, `/api/v1/models/iris/prediction${query}`, { json: { values: row }, headers: { 'x-request-id': id } });
  return { status: r.status, id: r.headers.get('x-request-id'), body: r.body, batch: r.headers.get('x-inferrer-batch') };
}

describe('grouping predictions on their way to the modelhosts', () => {
  test('concurrent predictions travel in groups, and each gets the answer it gets alone, under its own request id', async () => {
    const alone = new Map<number, unknown>();
    for (const [i, row] of ROWS.entries()) {
      const r = await predict(row, `alone-${i}`, '?outputs=all');
      assert.equal(r.status, 200);
      alone.set(i, r.body.outputs);
    }
    const n = 96;
    // n keep-alive connections open first: the measured burst then reaches the Inferrer together, not one
    // connection set-up after another (requests that arrive in separate turns of its event loop travel alone).
    await Promise.all(Array.from({ length: n }, (_, k) => predict(ROWS[k % ROWS.length]!, `warm-${k}`)));
    const groupsBefore = await metric('inferrer_upstream_group_size_count');
    const membersBefore = await metric('inferrer_upstream_group_size_sum');
    const answers = await Promise.all(Array.from({ length: n }, (_, k) => predict(ROWS[k % ROWS.length]!, `together-${k}`, '?outputs=all')));
    for (const [k, a] of answers.entries()) {
      assert.equal(a.status, 200, JSON.stringify(a.body));
      assert.equal(a.id, `together-${k}`);
      assert.deepEqual(a.body.outputs, alone.get(k % ROWS.length), `member ${k} answers as it does alone`);
    }
    const groups = (await metric('inferrer_upstream_group_size_count')) - groupsBefore;
    const members = (await metric('inferrer_upstream_group_size_sum')) - membersBefore;
    assert.equal(members, n, 'every prediction went upstream exactly once');
    assert.ok(groups < n, `${n} concurrent predictions went in fewer upstream requests (${groups})`);
    // Shared batches show on the answers too.
    assert.ok(
      answers.some((a) => Number(/requests=(\d+)/.exec(a.batch ?? '')?.[1]) > 1),
      'some answers ran in a shared batch',
    );
  });

  test('a burst for a costly model is run by both workers, not queued on the one a single key lands on', async () => {
    const up = await uploadModel(c.url, 'slow', path.join(FIXTURES, 'slow.onnx'), { config: { preload: true, instances: 1, batching: { max_batch_size: 1 } } });
    assert.equal(up.status, 201, JSON.stringify(up.body));
    const one = async (id: string): Promise<string> => {
      const r = await api(c.url, '/api/v1/models/slow/prediction', { json: { values: [1, 2, 3, 4] }, headers: { 'x-request-id': id } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return String(r.headers.get('x-modelhost-id'));
    };
    // What a request costs is learned from the answers (~150 ms of compute each, far over the 1 ms at which
    // a model's bursts are spread); the burst's own size gives the model more keys, and which worker each
    // key lands on is learned as they are used (two keys on one worker: the next key instead).
    for (let i = 0; i < 4; i++) await one(`slow-warm-${i}`);
    const n = 24;
    let by = new Map<string, number>();
    for (let round = 0; round < 3; round++) {
      by = new Map();
      for (const w of await Promise.all(Array.from({ length: n }, (_, k) => one(`slow-burst-${round}-${k}`)))) by.set(w, (by.get(w) ?? 0) + 1);
    }
    const counts = [...by.values()];
    console.log(
      `a costly burst: ${JSON.stringify(Object.fromEntries(by))}, placement ${JSON.stringify((await api(c.url, '/api/v1/models/slow')).body.model.placement)}`,
    );
    assert.equal(by.size, 2, `the last of three bursts of ${n} ran on ${JSON.stringify(Object.fromEntries(by))}`);
    assert.ok(Math.min(...counts) >= n / 4, `one worker ran under a quarter of the burst: ${JSON.stringify(Object.fromEntries(by))}`);
  });

  test('a bad member gets its own 4xx; the members beside it are answered normally', async () => {
    const good = (k: number): Promise<{ status: number; body: any }> => predict(ROWS[k % ROWS.length]!, `good-${k}`);
    const bad: [string, () => Promise<{ status: number; body: any }>, number, string][] = [
      ['wrong shape', () => api(c.url, '/api/v1/models/iris/prediction', { json: { values: [1, 2, 3] } }), 400, 'INVALID_INPUT'],
      ['non-numeric', () => api(c.url, '/api/v1/models/iris/prediction', { json: { values: ['a', 'b', 'c', 'd'] } }), 400, 'INVALID_INPUT'],
      [
        'bad JSON',
        () => api(c.url, '/api/v1/models/iris/prediction', { body: '{"values": [1,', headers: { 'content-type': 'application/json' }, method: 'POST' }),
        400,
        'INVALID_JSON',
      ],
      ['missing version', () => api(c.url, '/api/v1/models/iris/prediction?version=999', { json: { values: ROWS[0] } }), 404, 'VERSION_NOT_FOUND'],
      [
        'v2 wrong datatype',
        () => api(c.url, '/v2/models/iris/infer', { json: { inputs: [{ name: 'input', shape: [1, 4], datatype: 'INT8', data: [1, 2, 3, 4] }] } }),
        400,
        'INVALID_INPUT',
      ],
    ];
    const all = await Promise.all([
      ...Array.from({ length: 24 }, (_, k) => good(k)),
      ...bad.map(([, f]) => f()),
      ...Array.from({ length: 24 }, (_, k) => good(k + 24)),
    ]);
    const goods = [...all.slice(0, 24), ...all.slice(24 + bad.length)];
    for (const g of goods) assert.equal(g.status, 200, JSON.stringify(g.body));
    for (const [i, [what, , status, code]] of bad.entries()) {
      const r = all[24 + i]!;
      assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
      // v1 errors carry {error: {code}}, v2 errors {error: message, code}.
      assert.equal(r.body?.error?.code ?? r.body?.code, code, `${what}: ${JSON.stringify(r.body)}`);
    }
  });

  test("nginx's access line names every member of a group, so a request id greps through all three services", async () => {
    const ids = Array.from({ length: 32 }, (_, k) => `grep-me-${k}-${Date.now()}`);
    await Promise.all(ids.map((id, k) => predict(ROWS[k % ROWS.length]!, id)));
    const balancer = c.balancer.kind === 'nginx' ? 'nginx' : 'balancer';
    const deadline = Date.now() + 5000;
    for (const id of ids) {
      for (;;) {
        const inferrer = c.jsonLogs('inferrer').some((l) => l.reqId === id);
        const modelhost = c.logs.some((l) => l.name.startsWith('modelhost') && l.line.includes(`"reqId":"${id}"`) && l.line.includes('"inference"'));
        const lb = balancer !== 'nginx' || c.logs.some((l) => l.name === 'nginx' && l.line.includes(id));
        if (inferrer && modelhost && lb) break;
        if (Date.now() > deadline) assert.fail(`request ${id} not in every log: inferrer ${inferrer}, modelhost ${modelhost}, nginx ${lb}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  });
  test("through the balancer, a group's answers come back as each is ready, not when the last is (nginx does not hold the frames)", async () => {
    // slow.onnx takes 84 to 150 ms a run (the CPU decides); one slot, no batching: three members run one after another.
    const up = await uploadModel(c.url, 'slow-group', path.join(FIXTURES, 'slow.onnx'), { config: { instances: 1, batching: { max_batch_size: 1 } } });
    assert.equal(up.status, 201, JSON.stringify(up.body));
    const body = JSON.stringify({ inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] });
    const frames = Buffer.concat(
      [0, 1, 2].map((i) =>
        encodeFrame({ path: '/v2/models/slow-group/infer', headers: { 'x-request-id': `slow-group-${i}`, 'content-type': 'application/json' } }, body),
      ),
    );
    const send = () =>
      fetch(`${c.balancerUrl}/v1/models/slow-group/group`, { method: 'POST', headers: { 'content-type': FRAMES_CONTENT_TYPE }, body: new Uint8Array(frames) });
    await (await send()).arrayBuffer(); // loaded and warm
    const started = performance.now();
    const res = await send();
    assert.equal(res.status, 200);
    const at: number[] = [];
    const reader = new FrameReader((header) => {
      assert.equal(header.status, 200);
      at.push(performance.now() - started);
    });
    for await (const chunk of res.body!) reader.push(Buffer.from(chunk));
    assert.equal(at.length, 3);
    // Held back by the balancer, all three would arrive together after the third run.
    assert.ok(at[2]! - at[0]! > 100, `frames arrived at ${at.map((t) => t.toFixed(0)).join(', ')} ms`);
  });
});

describe("a modelhost's group route", () => {
  const post = async (body: Buffer, type = FRAMES_CONTENT_TYPE): Promise<{ status: number; type: string | null; body: Buffer }> => {
    const res = await fetch(`${c.modelhosts[0]!.url}/v1/models/iris/group`, { method: 'POST', headers: { 'content-type': type }, body: new Uint8Array(body) });
    return { status: res.status, type: res.headers.get('content-type'), body: Buffer.from(await res.arrayBuffer()) };
  };
  const member = (path: string, body: string, id: string): Buffer =>
    encodeFrame({ path, headers: { 'x-request-id': id, 'content-type': 'application/json' } }, body);

  test('answers each member as a frame naming it by index, with its own status and headers', async () => {
    const r = await post(
      Buffer.concat([
        member('/v1/models/iris/predict', JSON.stringify({ values: ROWS[1] }), 'm0'),
        member('/v1/models/nope/predict', JSON.stringify({ values: ROWS[1] }), 'm1'),
        member('/v1/models/iris/settings', '', 'm2'),
        member('/v1/models/iris/predict', '{"values": [1, 2]}', 'm3'),
        member('/v2/models/iris/infer', JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: ROWS[2] }] }), 'm4'),
        member('/v1/models/iris/predict-images', '{}', 'm5'),
      ]),
    );
    assert.equal(r.status, 200);
    assert.equal(r.type, FRAMES_CONTENT_TYPE);
    const frames = decodeFrames(r.body);
    const byIndex = new Map(frames.map((f) => [f.header.i as number, f]));
    assert.deepEqual([...byIndex.keys()].sort(), [0, 1, 2, 3, 4, 5], 'one frame per member');
    const json = (i: number): any => JSON.parse(byIndex.get(i)!.body.toString());
    const status = (i: number): unknown => byIndex.get(i)!.header.status;
    const headers = (i: number): Record<string, string> => byIndex.get(i)!.header.headers as Record<string, string>;
    assert.equal(status(0), 200);
    assert.deepEqual(json(0).values, [2]);
    assert.match(headers(0)['x-inferrer-batch']!, /^requests=\d+;rows=\d+$/);
    assert.equal(headers(0)['x-modelhost-id'], c.modelhosts[0]!.id);
    assert.equal(status(1), 404);
    assert.equal(json(1).error.code, 'MODEL_NOT_FOUND');
    assert.equal(status(2), 404, 'only predictions are carried in groups');
    assert.equal(json(2).error.code, 'ROUTE_NOT_FOUND');
    assert.equal(status(3), 400);
    assert.equal(json(3).error.code, 'INVALID_INPUT');
    assert.equal(status(4), 200);
    assert.equal(json(4).outputs[0].name.length > 0, true);
    // Images travel in groups too (test/e2e/images.test.ts); a member that is not a multipart form is told so.
    assert.equal(status(5), 415);
    assert.equal(json(5).error.code, 'UNSUPPORTED_MEDIA_TYPE');
  });

  test('image members that are truncated or too large get their own 4xx; the image beside them and the worker are fine', async () => {
    const images = path.join(REPO, 'test/fixtures/images');
    const form = (files: string[]): Promise<Buffer> =>
      Promise.all(files.map((f) => readFile(path.join(images, f)))).then((bytes) =>
        Buffer.concat([
          ...bytes.flatMap((b, i) => [
            Buffer.from(`--b\r\ncontent-disposition: form-data; name="file"; filename="${files[i]}"\r\ncontent-type: image/png\r\n\r\n`),
            b,
            Buffer.from('\r\n'),
          ]),
          Buffer.from('--b--\r\n'),
        ]),
      );
    const image = (body: Buffer, id: string): Buffer =>
      encodeFrame(
        { path: '/v1/models/digits/predict-images?top_k=1', headers: { 'x-request-id': id, 'content-type': 'multipart/form-data; boundary=b' } },
        body,
      );
    const good = await form(['digit_7.png']);
    const group = Buffer.concat([image(good, 'i0'), image(good.subarray(0, good.length - 40), 'i1'), image(await form(['digit_7.png', 'bomb.png']), 'i2')]);
    for (let round = 0; round < 2; round++) {
      const r = await post(group);
      assert.equal(r.status, 200);
      const byIndex = new Map(decodeFrames(r.body).map((f) => [f.header.i as number, f]));
      const json = (i: number): any => JSON.parse(byIndex.get(i)!.body.toString());
      assert.equal(byIndex.get(0)!.header.status, 200, JSON.stringify(json(0)));
      assert.equal(json(0).data[0][0][0], '7');
      assert.equal(byIndex.get(1)!.header.status, 400, 'a member whose form ends early');
      assert.equal(json(1).error.code, 'INVALID_REQUEST');
      assert.equal(byIndex.get(2)!.header.status, 413, 'a member with a pixel bomb');
      assert.equal(json(2).error.code, 'IMAGE_TOO_LARGE');
      for (const i of [1, 2]) assert.doesNotMatch(byIndex.get(i)!.body.toString(), /\/(tmp|work|home)\//, 'no file path in the answer');
    }
  });

  test('a batch-job request (X-Inferrer-Priority: batch) is served and logged as one', async () => {
    const id = `prio-${Date.now()}`;
    const res = await fetch(`${c.modelhosts[0]!.url}/v1/models/iris/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': id, 'x-inferrer-priority': 'batch' },
      body: JSON.stringify({ values: ROWS[1] }),
    });
    assert.equal(res.status, 200);
    assert.deepEqual(((await res.json()) as { values: unknown }).values, [2]);
    const deadline = Date.now() + 5000;
    let line: Record<string, unknown> | undefined;
    while (!line && Date.now() < deadline) {
      line = c.jsonLogs(c.modelhosts[0]!.id).find((l) => l.reqId === id && l.msg === 'inference');
      if (!line) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(line?.priority, 'batch', JSON.stringify(line));
  });

  test('a malformed group is one 400 INVALID_REQUEST, and the worker keeps serving', async () => {
    const cut = member('/v1/models/iris/predict', JSON.stringify({ values: ROWS[0] }), 'x');
    for (const body of [cut.subarray(0, cut.length - 3), Buffer.from('not frames at all'), Buffer.alloc(0)]) {
      const r = await post(body);
      assert.equal(r.status, 400, r.body.toString());
      assert.equal(JSON.parse(r.body.toString()).error.code, 'INVALID_REQUEST');
    }
    const tooMany = Buffer.concat(Array.from({ length: 257 }, (_, k) => member('/v1/models/iris/predict', JSON.stringify({ values: ROWS[0] }), `t${k}`)));
    const r = await post(tooMany);
    assert.equal(r.status, 400);
    assert.match(JSON.parse(r.body.toString()).error.message, /1 to 256 requests/);
    const ok = await post(member('/v1/models/iris/predict', JSON.stringify({ values: ROWS[0] }), 'after'));
    assert.equal(ok.status, 200);
    assert.equal(decodeFrames(ok.body)[0]!.header.status, 200);
  });
});
