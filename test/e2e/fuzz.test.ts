/**
 * Fuzzing every public route of the real cluster with fast-check: malformed JSON, wrong types, huge
 * numbers, deep nesting, invalid UTF-8, broken multipart and random bytes. Every answer must be a 4xx
 * (never a 5xx, never a hang), no worker may crash, nothing stored may change, and the next good request
 * must still be served.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { type TestCluster, snapshotStore, startTestCluster } from '../helpers/cluster.ts';

let c: TestCluster;
let pids: (number | undefined)[];
before(async () => {
  c = await startTestCluster();
  pids = c.modelhosts.map((m) => m.process.pid);
});
after(async () => {
  await c?.close();
});

const RUNS = Number(process.env.FUZZ_RUNS ?? 40);

/** Bodies a careless or hostile client might send. */
const jsonish = fc.oneof(
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 200 }),
  fc.constantFrom('{', '{"values":', '{"values": [1, 2,', 'null', '[]', '""', '{"values": NaN}', '{"inputs": [{"name": "input"}]}', '{"inputs": "x"}'),
  fc.integer({ min: 1, max: 3000 }).map((d) => `${'['.repeat(d)}1${']'.repeat(d)}`),
  fc.constantFrom(`{"values": [${'9'.repeat(400)}, 1, 2, 3]}`, '{"values": [1e999, -1e999, 1, 2]}', `{"values": [${'1,'.repeat(5000)}1]}`),
  fc.record({ values: fc.anything({ maxDepth: 4 }) }).map((v) => JSON.stringify(v)),
  fc
    .record({
      inputs: fc.array(
        fc.record({
          name: fc.oneof(fc.constant('input'), fc.string({ maxLength: 20 })),
          shape: fc.oneof(fc.array(fc.integer({ min: -5, max: 1_000_000_000 }), { maxLength: 5 }), fc.anything({ maxDepth: 2 })),
          datatype: fc.oneof(fc.constantFrom('FP32', 'INT64', 'BYTES', 'BOOL', 'FP16', 'fp32', ''), fc.string({ maxLength: 8 })),
          data: fc.anything({ maxDepth: 3 }),
          parameters: fc.option(fc.record({ binary_data_size: fc.oneof(fc.integer(), fc.string()) }), { nil: undefined }),
        }),
        { maxLength: 3 },
      ),
    })
    .map((v) => JSON.stringify(v)),
);
const bytes = fc.uint8Array({ maxLength: 2048 }).map((b) => Buffer.from(b));
const invalidUtf8 = fc.constant(Buffer.from([0x7b, 0x22, 0x76, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0xff, 0xfe, 0x22, 0x7d]));
const body = fc.oneof(
  jsonish.map((s) => Buffer.from(s)),
  bytes,
  invalidUtf8,
);

interface Target {
  method: string;
  path: string;
  types: string[];
}

const targets: Target[] = [
  { method: 'POST', path: '/api/v1/models/iris/prediction', types: ['application/json', 'text/plain', 'application/octet-stream'] },
  { method: 'GET', path: '/api/v1/models/iris/prediction', types: ['application/json'] },
  { method: 'POST', path: '/api/v1/models/digits/prediction', types: ['application/json'] },
  { method: 'POST', path: '/v2/models/iris/infer', types: ['application/json', 'application/octet-stream'] },
  { method: 'POST', path: '/v2/models/iris/versions/1/infer', types: ['application/json'] },
  { method: 'POST', path: '/api/v1/models/iris', types: ['application/json', 'text/plain'] },
  {
    method: 'PUT',
    path: '/api/v1/models/fuzzed',
    types: ['application/octet-stream', 'multipart/form-data; boundary=XX', 'application/json', 'multipart/form-data'],
  },
  { method: 'POST', path: '/api/test/sendtomodelhost', types: ['application/json'] },
  { method: 'POST', path: '/v2/repository/index', types: ['application/json'] },
  { method: 'POST', path: '/api/v1/models/digits/prediction', types: ['multipart/form-data; boundary=XX', 'multipart/form-data', 'image/png'] },
  { method: 'POST', path: '/api/v1/models/iris/jobs', types: ['application/x-ndjson', 'application/json', 'multipart/form-data; boundary=XX', 'text/csv'] },
  { method: 'POST', path: '/api/v1/models/iris/canary', types: ['application/json'] },
  { method: 'POST', path: '/api/v1/models/iris/promote', types: ['application/json'] },
  { method: 'POST', path: '/api/v1/models/iris/rollback', types: ['application/json'] },
  { method: 'PUT', path: '/api/v1/models/iris/versions/1/profile', types: ['application/json'] },
  { method: 'POST', path: '/api/v1/models/iris/profile/capture', types: ['application/json'] },
  { method: 'POST', path: '/v2/repository/models/fuzzed/load', types: ['application/json'] },
  { method: 'POST', path: '/v2/repository/models/fuzzed/unload', types: ['application/json'] },
];

async function send(t: Target, type: string, payload: Buffer, extra: Record<string, string> = {}): Promise<number> {
  // fetch sends no body with GET: a GET carries the payload in the query, as FRACTAL's ?values= form.
  const url = t.method === 'GET' ? `${c.url}${t.path}?values=${encodeURIComponent(payload.toString('latin1'))}` : `${c.url}${t.path}`;
  const res = await fetch(url, {
    method: t.method,
    headers: { 'content-type': type, ...extra },
    ...(t.method === 'GET' ? {} : { body: new Uint8Array(payload) }),
    signal: AbortSignal.timeout(15_000),
  });
  await res.arrayBuffer();
  return res.status;
}

/** The store's models: every file but the jobs' (a job accepted by the fuzzing goes on writing its results). */
async function models(): Promise<Record<string, string>> {
  return Object.fromEntries(Object.entries(await snapshotStore(c.modelDir)).filter(([file]) => !file.startsWith('.jobs')));
}

async function stillServes(): Promise<void> {
  const r = await fetch(`${c.url}/api/v1/models/iris/prediction`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"values": [6.7, 2.5, 5.8, 1.8]}',
  });
  assert.equal(r.status, 200);
  assert.deepEqual(((await r.json()) as { values: number[] }).values, [2]);
}

describe('fuzzing every public route', () => {
  for (const t of targets) {
    test(`${t.method} ${t.path}`, async () => {
      const stored = await models();
      await fc.assert(
        fc.asyncProperty(
          body,
          fc.constantFrom(...t.types),
          fc.option(fc.constantFrom('0', '5', '99999999', '-1', 'abc'), { nil: undefined }),
          async (payload, type, headerLength) => {
            const extra: Record<string, string> =
              headerLength === undefined || !t.path.includes('/infer') ? {} : { 'inference-header-content-length': headerLength };
            const status = await send(t, type, payload, extra);
            // Some random bodies are valid requests by chance (e.g. an index request with any body).
            // A job takes any body (202): its lines fail one by one, in its results.
            return (status >= 400 && status < 500) || status === 200 || status === 201 || (status === 202 && t.path.endsWith('/jobs'));
          },
        ),
        { numRuns: RUNS, interruptAfterTimeLimit: 20_000 },
      );
      assert.deepEqual(await models(), stored, 'no stored model changed');
      await stillServes();
    });
  }

  test('broken multipart uploads and images (cut short, or not what they say)', async () => {
    const stored = await models();
    const upload: Target = { method: 'PUT', path: '/api/v1/models/fuzzed', types: [] };
    const images: Target = { method: 'POST', path: '/api/v1/models/digits/prediction', types: [] };
    const field = fc.oneof(fc.constantFrom('path', 'file'), fc.string({ maxLength: 40 }));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(upload, images), field, bytes, fc.boolean(), async (t, field, content, closeIt) => {
        const b = 'bound';
        const parts = [
          `--${b}\r\nContent-Disposition: form-data; name="${field}"; filename="m.onnx"\r\n\r\n`,
          content.toString('latin1'),
          closeIt ? `\r\n--${b}--\r\n` : '',
        ];
        const status = await send(t, `multipart/form-data; boundary=${b}`, Buffer.from(parts.join(''), 'latin1'));
        return status >= 400 && status < 500;
      }),
      { numRuns: RUNS, interruptAfterTimeLimit: 20_000 },
    );
    assert.deepEqual(await models(), stored);
    await stillServes();
  });

  test('no worker crashed or restarted during the fuzzing', () => {
    assert.deepEqual(
      c.modelhosts.map((m) => m.process.pid),
      pids,
    );
    assert.deepEqual(
      c.modelhosts.map((m) => m.process.restarts),
      c.modelhosts.map(() => 0),
    );
    assert.equal(c.inferrer.restarts, 0);
  });
});
