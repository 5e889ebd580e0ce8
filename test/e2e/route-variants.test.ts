/**
 * Path tricks against every route (issue #13, item 1). Routing is case-sensitive and exact, after one
 * canonical percent-decoding, and the scope a request needs is the scope of the route that runs. For every
 * route in the served route list, with no key, a predict key and an admin key, variants of its path (case,
 * `%2F`, `%2e%2e`, `%41`, `..`, double and trailing slashes, `;` parameters) must get no further than the
 * exact path: never a success, never a 5xx, and never past auth where the exact path is refused. The store
 * does not change. Requests go out on node:http with the path exactly as written (fetch would normalise it).
 */
import assert from 'node:assert/strict';
import { readFile, writeFile, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DEMO, type TestCluster, snapshotStore, startTestCluster } from '../helpers/cluster.ts';

const ADMIN = 'admin-key-0123456789abcdef';
const PREDICT = 'predict-key-0123456789abcdef';

interface Answer {
  status: number;
  body: string;
}

/** One request with the path sent byte for byte as given. */
function raw(base: string, method: string, target: string, body?: { type: string; bytes: Buffer }, key?: string): Promise<Answer> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (key) headers.authorization = `Bearer ${key}`;
    if (body) {
      headers['content-type'] = body.type;
      headers['content-length'] = String(body.bytes.length);
    }
    const req = http.request({ host: u.hostname, port: u.port, method, path: target, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body?.bytes);
  });
}

/** A body each method gets: a real model upload for PUT (so a wrongly allowed variant would store it), JSON else. */
async function bodyFor(method: string, routePath: string): Promise<{ type: string; bytes: Buffer } | undefined> {
  if (method === 'GET' || method === 'DELETE') return undefined;
  if (method === 'PUT' && routePath === '/api/v1/models/{name}') {
    const form = new FormData();
    form.append('path', new Blob([await readFile(path.join(DEMO, 'iris.onnx'))]), 'iris.onnx');
    const res = new Response(form);
    return { type: res.headers.get('content-type')!, bytes: Buffer.from(await res.arrayBuffer()) };
  }
  return {
    type: 'application/json',
    bytes: Buffer.from(JSON.stringify({ model_description: 'defaced', version: 1, percent: 50, samples: 5, values: [1, 2, 3, 4], data: ['x'] })),
  };
}

const SAMPLE: Record<string, string> = { name: 'iris', model: 'iris', version: '1', id: 'j0000000000', file: 'swagger-ui.css' };

/** The exact path of a documented route, with sample parameter values. */
const exactPath = (template: string): string => template.replace(/\{([A-Za-z_]+)\}/g, (_m, p: string) => SAMPLE[p] ?? 'x');

/** Variants of an exact path that must reach no other route (and no route at all unless canonically equal). */
export function variants(exact: string): string[] {
  const segs = exact.split('/').slice(1);
  const literal = segs.map((s, i) => ({ s, i })).filter(({ s }) => !Object.values(SAMPLE).includes(s) && /^[a-z]/.test(s));
  const join = (parts: string[]): string => `/${parts.join('/')}`;
  const out = new Set<string>();
  out.add(exact.toUpperCase());
  for (const { s, i } of literal.length ? [literal[0]!, literal[literal.length - 1]!] : []) {
    const cap = [...segs];
    cap[i] = s[0]!.toUpperCase() + s.slice(1);
    out.add(join(cap));
    const enc = [...segs];
    enc[i] = `%${s[0]!.toUpperCase().charCodeAt(0).toString(16).toUpperCase()}${s.slice(1)}`;
    out.add(join(enc)); // `%41pi`: an upper-case letter spelled encoded
    const semi = [...segs];
    semi[i] = `${s};x=1`;
    out.add(join(semi));
  }
  if (exact !== '/') {
    out.add(`${exact}/`);
    out.add(`/${exact}`);
    out.add(
      exact
        .replace('/', '//')
        .replace(/^\/\//, '/')
        .replace(/\/([^/]+)$/, '//$1'),
    );
    out.add(`${exact};x=1`);
    out.add(`${exact}/%2e%2e`);
    out.add(`${exact}/%2e%2e/%2e%2e`);
    if (segs.length > 1) {
      out.add(join([segs[0]!, 'x', '..', ...segs.slice(1)]));
      out.add(join([segs[0]!, 'x', '%2e%2e', ...segs.slice(1)]));
      out.add(`/${segs.slice(0, -1).join('/')}%2F${segs[segs.length - 1]}`);
      out.add(`/${segs.slice(0, -1).join('%2f')}/${segs[segs.length - 1]}`);
    }
  } else {
    out.add('//');
    out.add('/%2e%2e');
  }
  out.delete(exact);
  return [...out];
}

const REFUSED = new Set([401, 403]);

/** The model store as files (batch jobs that the exact job route accepted live in .jobs and are left out). */
async function models(root: string): Promise<Record<string, string>> {
  return Object.fromEntries(Object.entries(await snapshotStore(root)).filter(([k]) => !k.startsWith('.jobs')));
}

async function walk(c: TestCluster, keys: (string | undefined)[]): Promise<{ tried: number; problems: string[] }> {
  const doc = JSON.parse((await raw(c.url, 'GET', '/openapi.json')).body) as { paths: Record<string, Record<string, unknown>> };
  const problems: string[] = [];
  let tried = 0;
  for (const [template, ops] of Object.entries(doc.paths)) {
    for (const m of Object.keys(ops)) {
      const method = m.toUpperCase();
      const exact = exactPath(template);
      const body = await bodyFor(method, template);
      for (const key of keys) {
        const who = key === undefined ? 'no key' : key === ADMIN ? 'admin key' : 'predict key';
        // Mutating the store with the admin key is not the point here (and would take iris away): read its status only for reads.
        const exactStatus = key === ADMIN && method !== 'GET' ? undefined : (await raw(c.url, method, exact, body, key)).status;
        for (const v of variants(exact)) {
          tried++;
          const a = await raw(c.url, method, v, body, key);
          const where = `${method} ${v} (${who}; exact ${exact} → ${exactStatus ?? 'not sent'}): ${a.status} ${a.body.slice(0, 160)}`;
          if (a.status < 400 || a.status >= 500) problems.push(`went through: ${where}`);
          else if (exactStatus !== undefined && REFUSED.has(exactStatus) && !REFUSED.has(a.status) && a.status !== 404 && !/percent-encoding/.test(a.body))
            problems.push(`got past auth: ${where}`);
        }
      }
    }
  }
  return { tried, problems };
}

let dir: string;

describe('with API keys', () => {
  let c: TestCluster;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-variants-'));
    const keys = path.join(dir, 'keys.json');
    await writeFile(
      keys,
      JSON.stringify({
        keys: [
          { key: ADMIN, scopes: ['admin', 'predict'] },
          { key: PREDICT, scopes: ['predict'] },
        ],
      }),
    );
    c = await startTestCluster({
      modelhosts: 1,
      inferrerEnv: { API_KEYS_FILE: keys, AUTH_DISABLED: 'false', RATE_LIMIT_KEY_RPS: '0', RATE_LIMIT_IP_RPS: '0' },
    });
  });
  after(async () => {
    await c?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test("the issue's requests are 404 and change nothing, with a predict key and without one", async () => {
    const before = await models(c.modelDir);
    const upload = await bodyFor('PUT', '/api/v1/models/{name}');
    const json = (o: unknown) => ({ type: 'application/json', bytes: Buffer.from(JSON.stringify(o)) });
    for (const key of [undefined, PREDICT]) {
      assert.equal((await raw(c.url, 'PUT', '/API/v1/models/x', upload, key)).status, 404);
      assert.equal((await raw(c.url, 'DELETE', '/API/V1/MODELS/iris', undefined, key)).status, 404);
      assert.equal((await raw(c.url, 'POST', '/Api/v1/models/iris', json({ model_description: 'defaced' }), key)).status, 404);
      assert.equal((await raw(c.url, 'POST', '/V2/repository/models/iris/unload', undefined, key)).status, 404);
      assert.equal((await raw(c.url, 'POST', '/api/v1/models/iris/CANARY', json({ version: 1, percent: 50 }), key)).status, 404);
      assert.equal((await raw(c.url, 'POST', '/api/v1/models/iris/Promote', undefined, key)).status, 404);
      assert.equal((await raw(c.url, 'PUT', '/api/v1/models/iris/VERSIONS/1/PROFILE', json({ inputs: [] }), key)).status, 404);
    }
    assert.deepEqual(await models(c.modelDir), before);
    const iris = await raw(c.url, 'GET', '/api/v1/models/iris', undefined, PREDICT);
    assert.equal(iris.status, 200);
    assert.doesNotMatch(iris.body, /defaced/);
  });

  test('an invalid percent-encoding is a 400 on every kind of route, the lean prediction path included', async () => {
    for (const [method, p] of [
      ['POST', '/api/v1/models/%/prediction'],
      ['POST', '/v2/models/%E0%A4%A/infer'],
      ['GET', '/api/v1/models/%zz'],
      ['PUT', '/api/v1/models/%C0'],
    ] as const) {
      const a = await raw(c.url, method, p, { type: 'application/json', bytes: Buffer.from('{}') }, ADMIN);
      assert.equal(a.status, 400, `${method} ${p}: ${a.body}`);
      assert.match(a.body, /percent-encoding/);
      assert.doesNotMatch(a.body, /URIError|at .*\.ts/);
    }
  });

  test('a canonically equal spelling (%61 for a) reaches the same route with the same scope', async () => {
    assert.equal((await raw(c.url, 'GET', '/%61pi/v1/models/ir%69s', undefined, PREDICT)).status, 200);
    assert.equal((await raw(c.url, 'GET', '/%61pi/v1/models/ir%69s')).status, 401);
    assert.equal((await raw(c.url, 'DELETE', '/%61pi/v1/models/ir%69s', undefined, PREDICT)).status, 403);
  });

  test('every route × every path variant × no key, predict key, admin key: none gets further than the exact path', async () => {
    const before = await models(c.modelDir);
    const { tried, problems } = await walk(c, [undefined, PREDICT, ADMIN]);
    assert.ok(tried > 1000, `tried ${tried} variants`);
    assert.deepEqual(problems, []);
    assert.deepEqual(await models(c.modelDir), before, 'the store did not change');
  });
});

describe('without keys (management closed)', () => {
  let c: TestCluster;
  before(async () => {
    c = await startTestCluster({ modelhosts: 1, inferrerEnv: { AUTH_DISABLED: 'false', RATE_LIMIT_IP_RPS: '0' } });
  });
  after(async () => {
    await c?.close();
  });

  test('every route × every path variant: none gets further than the exact path, and the store does not change', async () => {
    const before = await models(c.modelDir);
    const { tried, problems } = await walk(c, [undefined]);
    assert.ok(tried > 300, `tried ${tried} variants`);
    assert.deepEqual(problems, []);
    assert.deepEqual(await models(c.modelDir), before);
    assert.equal((await raw(c.url, 'PUT', '/API/v1/models/x', await bodyFor('PUT', '/api/v1/models/{name}'))).status, 404);
    assert.equal((await raw(c.url, 'DELETE', '/API/V1/MODELS/iris')).status, 404);
    assert.equal((await raw(c.url, 'DELETE', '/api/v1/models/iris')).status, 403, 'the exact path is refused');
  });
});
