/**
 * Requests that are valid HTTP but easy to misread: a body with a Content-Encoding on a route that does not
 * inflate one, a body sent chunked (no Content-Length), names of object properties where names go. Each is
 * answered as the request says, or refused with a 4xx that names the problem, and a refused one changes
 * nothing. And clients that hold connections: ones that never finish their headers, held open from one
 * address, and ones that never read their answers.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { DEMO, REPO, type TestCluster, api, snapshotStore, startTestCluster, uploadModel } from '../helpers/cluster.ts';

const MAX_CONNECTIONS = 64;

let c: TestCluster;
let ipv6 = false;
before(async () => {
  // Two connections to the balancer: two clients that never read their answers could hold both.
  // BODY_TIMEOUT_MS=3000: an answer nobody takes is cut after 3 s.
  // HOST '::': IPv6 clients too (and IPv4 ones arrive as ::ffff:a.b.c.d, which must count as a.b.c.d), on
  // a machine with IPv6; without it, IPv4 alone and the IPv6 test says why it is skipped.
  ipv6 = await new Promise<boolean>((resolve) => {
    const probe = net.createServer().once('error', () => resolve(false));
    probe.listen(0, '::1', () => probe.close(() => resolve(true)));
  });
  c = await startTestCluster({
    inferrerEnv: {
      ...(ipv6 ? { HOST: '::' } : {}),
      MAX_CONNECTIONS_PER_CLIENT: String(MAX_CONNECTIONS),
      UPSTREAM_CONNECTIONS: '2',
      BODY_TIMEOUT_MS: '3000',
    },
  });
});
after(async () => {
  await c?.close();
});

const row = JSON.stringify({ values: [6.7, 2.5, 5.8, 1.8] });

describe('Content-Encoding', () => {
  test('a coded body on a route that does not inflate one is 415 naming the coding, and nothing is stored', async () => {
    const before = await snapshotStore(c.modelDir);
    const ndjson = `${row}\n${row}\n`;
    const sends: [string, string, BodyInit][] = [
      ['/api/v1/models/iris/prediction', 'application/json', gzipSync(row)],
      ['/api/v1/models/iris/jobs', 'application/x-ndjson', gzipSync(ndjson)],
      ['/api/v1/models/iris', 'application/json', gzipSync(JSON.stringify({ model_description: 'gz' }))],
    ];
    for (const [route, type, body] of sends) {
      for (const coding of ['gzip', 'br']) {
        const r = await api(c.url, route, { method: 'POST', body, headers: { 'content-type': type, 'content-encoding': coding } });
        assert.equal(r.status, 415, `${route} ${coding}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.error.code, 'UNSUPPORTED_MEDIA_TYPE');
        assert.match(r.body.error.message, new RegExp(`Content-Encoding.*${coding}`));
      }
    }
    assert.deepEqual((await api(c.url, '/api/v1/jobs')).body.jobs, []);
    assert.deepEqual(await snapshotStore(c.modelDir), before);
    // identity is no coding; v2 infer still inflates gzip
    const plain = await api(c.url, '/api/v1/models/iris/prediction', { method: 'POST', body: row, headers: { 'content-encoding': 'identity' } });
    assert.equal(plain.status, 200);
    const v2 = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [6.7, 2.5, 5.8, 1.8] }] });
    const inflated = await api(c.url, '/v2/models/iris/infer', { method: 'POST', body: gzipSync(v2), headers: { 'content-encoding': 'gzip' } });
    assert.equal(inflated.status, 200);
  });
});

/** A body sent chunked: no Content-Length, only Transfer-Encoding. */
const chunked = (text: string): RequestInit =>
  ({
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: new ReadableStream({
      start(ctl) {
        ctl.enqueue(new TextEncoder().encode(text));
        ctl.close();
      },
    }),
    duplex: 'half',
  }) as RequestInit;

/** A raw request on its own connection (fetch cannot send every header); resolves with the answer's text. */
function rawRequest(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' }, () => socket.write(request));
    let text = '';
    socket.on('data', (d) => {
      text += d.toString('latin1');
      if (/\r\n\r\n[\s\S]*\}$/.test(text)) socket.end();
    });
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
  });
}

describe('compressed bodies', () => {
  test('a gzip body that inflates far past its size (a 64 KB bomb of 63 MB) is 413 before the Inferrer holds it; ordinary ones still run', async () => {
    const request = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] });
    const bomb = gzipSync(Buffer.concat([Buffer.from(request), Buffer.alloc(63 * 1024 * 1024, ' ')]), { level: 9 });
    assert.ok(bomb.length < 100_000);
    const r = await api(c.url, '/v2/models/iris/infer', {
      method: 'POST',
      body: bomb,
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
    });
    assert.equal(r.status, 413, JSON.stringify(r.body));
    assert.equal(r.body.code, 'BODY_TOO_LARGE');
    assert.match(r.body.error, /inflates to more than/);
    // 20,000 random rows: a few MB of JSON that gzip makes about three times smaller.
    const rows = Array.from({ length: 20_000 }, () => Array.from({ length: 4 }, () => Math.round(Math.random() * 80) / 10));
    const big = JSON.stringify({ inputs: [{ name: 'input', shape: [rows.length, 4], datatype: 'FP32', data: rows.flat() }] });
    const ok = await api(c.url, '/v2/models/iris/infer', {
      method: 'POST',
      body: gzipSync(big),
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
    });
    assert.equal(ok.status, 200, JSON.stringify(ok.body).slice(0, 300));
    assert.equal(ok.body.outputs[0].shape[0], rows.length);
  });
});

describe('Transfer-Encoding', () => {
  test('a transfer coding besides chunked (gzip, chunked) is 415 naming it, on every kind of route, and nothing is stored', async () => {
    const before = await snapshotStore(c.modelDir);
    const port = Number(new URL(c.url).port);
    const chunk = (text: string) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n0\r\n\r\n`;
    for (const [target, type] of [
      ['POST /api/v1/models/iris/prediction', 'application/json'],
      ['POST /v2/models/iris/infer', 'application/json'],
      ['POST /api/v1/models/iris/jobs', 'application/x-ndjson'],
      ['POST /api/v1/models/iris', 'application/json'],
    ]) {
      const body = target.endsWith('infer') ? JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] }) : row;
      const text = await rawRequest(
        port,
        `${target} HTTP/1.1\r\nHost: x\r\nContent-Type: ${type}\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n${chunk(body)}`,
      );
      assert.ok(text.startsWith('HTTP/1.1 415 '), `${target}: ${JSON.stringify(text.slice(0, 300))}`);
      assert.match(text, /UNSUPPORTED_MEDIA_TYPE/);
      assert.match(text, /Transfer-Encoding/);
    }
    assert.deepEqual((await api(c.url, '/api/v1/jobs')).body.jobs, []);
    assert.deepEqual(await snapshotStore(c.modelDir), before);
  });
});

describe('chunked bodies', () => {
  test('promote with {"version": N} sent chunked promotes version N, not the canary', async () => {
    const up = await uploadModel(c.url, 'chunky', path.join(DEMO, 'iris.onnx'));
    assert.equal(up.status, 201);
    assert.equal((await uploadModel(c.url, 'chunky', path.join(DEMO, 'iris.onnx'), { make_default: false })).status, 201);
    assert.equal((await api(c.url, '/api/v1/models/chunky/canary', { json: { version: 2, percent: 10 } })).status, 200);
    const r = await api(c.url, '/api/v1/models/chunky/promote', chunked(JSON.stringify({ version: 1 })));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.model.default_version, 1);
    assert.deepEqual(r.body.model.traffic, {});
    const bad = await api(c.url, '/api/v1/models/chunky/promote', chunked(JSON.stringify({ version: 9 })));
    assert.equal(bad.status, 404, 'the version it names is looked up');
    assert.equal(bad.body.error.code, 'VERSION_NOT_FOUND');
  });
});

describe('names of object properties as output names', () => {
  test('?output=__proto__, constructor or toString is a 400 naming the output, for JSON values and for images', async () => {
    const form = new FormData();
    form.append('path', new Blob([await readFile(path.join(DEMO, 'digits.onnx'))]), 'digits.onnx');
    const item = await readFile(path.join(REPO, 'test/fixtures/images/digits.stac.json'));
    form.append('stac', new Blob([item], { type: 'application/json' }), 'item.json');
    assert.equal((await api(c.url, '/api/v1/models/digits-img', { method: 'PUT', body: form })).status, 201);
    const png = await readFile(path.join(REPO, 'test/fixtures/images/batch_0.png'));
    for (const output of ['__proto__', 'constructor', 'toString']) {
      const values = await api(c.url, `/api/v1/models/iris/prediction?output=${output}`, { method: 'POST', body: row });
      const images = new FormData();
      images.append('file', new Blob([png], { type: 'image/png' }), 'batch_0.png');
      const image = await api(c.url, `/api/v1/models/digits-img/prediction?output=${output}`, { method: 'POST', body: images });
      for (const r of [values, image]) {
        assert.equal(r.status, 400, `${output}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.error.code, 'INVALID_REQUEST');
        assert.match(r.body.error.message, new RegExp(`no output '${output}'`));
      }
    }
    assert.deepEqual(
      c.modelhosts.map((m) => m.process.restarts),
      c.modelhosts.map(() => 0),
    );
  });
});

describe('model names that are routes of their own', () => {
  test('information and stats cannot be uploaded (their describe routes would list models instead), by PUT or by a v2 load', async () => {
    const before = await snapshotStore(c.modelDir);
    const onnx = await readFile(path.join(DEMO, 'iris.onnx'));
    for (const name of ['information', 'stats', 'information.onnx']) {
      const form = new FormData();
      form.append('path', new Blob([onnx]), 'iris.onnx');
      const put = await api(c.url, `/api/v1/models/${name}`, { method: 'PUT', body: form });
      assert.equal(put.status, 400, `${name}: ${JSON.stringify(put.body)}`);
      assert.equal(put.body.error.code, 'INVALID_MODEL_NAME');
      assert.match(put.body.error.message, /reserved/);
      const load = await api(c.url, `/v2/repository/models/${name}/load`, {
        method: 'POST',
        json: { parameters: { 'file:1/model.onnx': onnx.toString('base64') } },
      });
      assert.equal(load.status, 400, `${name}: ${JSON.stringify(load.body)}`);
      assert.equal(load.body.code, 'INVALID_MODEL_NAME');
    }
    assert.deepEqual(await snapshotStore(c.modelDir), before);
    const listing = (await api(c.url, '/api/v1/models/information')).body.model_list as { model: string }[];
    assert.ok(listing.some((m) => m.model === 'iris') && !listing.some((m) => m.model === 'information'), 'still the listing of the models');
  });
});

describe('the metrics service', () => {
  test('when it does not answer, the error names no internal host or port', async () => {
    const pid = c.metrics!.process.pid!;
    process.kill(pid, 'SIGSTOP');
    try {
      for (const p of ['/api/v1/metrics', '/api/v1/models/iris/drift']) {
        const r = await api(c.url, p);
        assert.equal(r.status, 503, `${p}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.error.code, 'METRICS_UNAVAILABLE');
        assert.doesNotMatch(JSON.stringify(r.body), /127\.0\.0\.1|localhost|https?:\/\//, p);
      }
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  });

  test('a path parameter with an invalid percent-encoding is a 400 that says so, not a 500', async () => {
    for (const p of ['/api/v1/models/%/loaded-on', '/api/v1/models/%E0%A4%A/loaded-on', '/api/v1/models/iris/versions/%zz/warm']) {
      const r = await api(c.metrics!.url, p, p.endsWith('warm') ? { method: 'POST' } : {});
      assert.equal(r.status, 400, `${p}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, 'INVALID_REQUEST');
      assert.match(r.body.error.message, /percent-encoding/);
    }
    assert.equal(c.jsonLogs('metrics').filter((l) => l.msg === 'request failed').length, 0, 'a refusal is not logged as a failure');
  });
});

/** A connection from `from` that sends the start of a request's headers and never finishes them. */
function slowHeaders(port: number, from: string, host = '127.0.0.1'): Promise<{ socket: net.Socket; answer: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host, localAddress: from }, () => {
      socket.write('POST /api/v1/models/iris/prediction HTTP/1.1\r\nHost: x\r\n');
      let text = '';
      socket.on('data', (d) => {
        text += d.toString('latin1');
      });
      const answer = new Promise<string>((done) => socket.once('close', () => done(text)));
      resolve({ socket, answer });
    });
    socket.once('error', reject);
  });
}

describe('connections per client address', () => {
  test('an address holding MAX_CONNECTIONS_PER_CLIENT connections gets 429 for the next; other addresses are served', async () => {
    const port = Number(new URL(c.url).port);
    const held = [];
    for (let i = 0; i < MAX_CONNECTIONS; i++) held.push(await slowHeaders(port, '127.0.0.2'));
    const over = await slowHeaders(port, '127.0.0.2').catch(() => undefined);
    const text = over ? await over.answer : '';
    assert.match(text, /^HTTP\/1\.1 429 /, `the connection over the cap: ${JSON.stringify(text.slice(0, 300))}`);
    assert.match(text, /TOO_MANY_CONNECTIONS/);
    assert.match(text, /MAX_CONNECTIONS_PER_CLIENT/);
    // The slow connections still hold; another address predicts as usual.
    assert.equal(held.filter((h) => h.socket.destroyed).length, 0);
    const r = await api(c.url, '/api/v1/models/iris/prediction', { method: 'POST', body: row });
    assert.equal(r.status, 200);
    // Closing them frees the address's places (once the Inferrer has seen them close).
    for (const h of held) h.socket.destroy();
    await Promise.all(held.map((h) => h.answer));
    let answer = '';
    for (const end = Date.now() + 10_000; Date.now() < end && !answer.startsWith('HTTP/1.1 400 '); await new Promise((r) => setTimeout(r, 100))) {
      const again = await slowHeaders(port, '127.0.0.2');
      again.socket.write('Connection: close\r\n\r\n');
      answer = await again.answer;
    }
    assert.match(answer, /^HTTP\/1\.1 400 /, 'a new connection is served (a prediction without values is a 400)');
  });
});

/** A v2 infer of `rows` iris rows (binary input, a JSON answer of about 32 bytes a row) whose client reads one chunk of the answer, then nothing. */
function unreadAnswer(port: number, rows: number): { socket: net.Socket; started: Promise<void> } {
  const header = JSON.stringify({ inputs: [{ name: 'input', shape: [rows, 4], datatype: 'FP32', parameters: { binary_data_size: rows * 16 } }] });
  const body = Buffer.concat([Buffer.from(header), Buffer.alloc(rows * 16)]);
  const socket = net.connect({ port, host: '127.0.0.1' }, () => {
    socket.write(
      `POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nInference-Header-Content-Length: ${header.length}\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    socket.write(body);
  });
  const started = new Promise<void>((resolve) =>
    socket.once('data', () => {
      socket.pause();
      resolve();
    }),
  );
  return { socket, started };
}

/** Documentation addresses (RFC 3849) put on the loopback device for the IPv6 test: two in one /64, one in another. */
const SAME_64 = ['2001:db8:4e:1::a', '2001:db8:4e:1:ffff::b'];
const OTHER_64 = '2001:db8:4e:2::a';

describe('connections per IPv6 client', () => {
  let added: string[] = [];
  let why = '';
  before(() => {
    if (!ipv6) {
      why = 'this machine has no IPv6 loopback (::1)';
      return;
    }
    for (const a of [...SAME_64, OTHER_64]) {
      try {
        execFileSync('ip', ['-6', 'addr', 'add', `${a}/128`, 'dev', 'lo', 'nodad'], { stdio: 'pipe' });
        added.push(a);
      } catch (err) {
        why = `cannot add ${a} to the loopback device (needs root and the ip tool): ${(err as Error).message.split('\n')[0]}`;
        break;
      }
    }
  });
  after(() => {
    for (const a of added) execFileSync('ip', ['-6', 'addr', 'del', `${a}/128`, 'dev', 'lo'], { stdio: 'pipe' });
    added = [];
  });

  test('addresses of one /64 share MAX_CONNECTIONS_PER_CLIENT; another /64 is served', async (t) => {
    if (why) return t.skip(why);
    const port = Number(new URL(c.url).port);
    const held = [];
    for (let i = 0; i < MAX_CONNECTIONS; i++) held.push(await slowHeaders(port, SAME_64[0]!, '::1'));
    try {
      // A fresh address of the same /64 brings no fresh allowance.
      const over = await slowHeaders(port, SAME_64[1]!, '::1').catch(() => undefined);
      const text = over ? await over.answer : '';
      assert.match(text, /^HTTP\/1\.1 429 /, `a connection from the same /64: ${JSON.stringify(text.slice(0, 300))}`);
      assert.match(text, /TOO_MANY_CONNECTIONS/);
      // Another /64 is another client.
      const other = await slowHeaders(port, OTHER_64, '::1');
      other.socket.write('Connection: close\r\n\r\n');
      assert.match(await other.answer, /^HTTP\/1\.1 400 /, 'a connection from another /64 is served (a prediction without values is a 400)');
      assert.equal(held.filter((h) => h.socket.destroyed).length, 0);
    } finally {
      for (const h of held) h.socket.destroy();
      await Promise.all(held.map((h) => h.answer));
    }
  });
});

describe('answers', () => {
  test('clients that never read their large answers hold no connection to the balancer: others still predict', async () => {
    const port = Number(new URL(c.url).port);
    // 12.8 MB answers each, more than the kernel buffers between the Inferrer and a client that stopped reading.
    const readers = [unreadAnswer(port, 400_000), unreadAnswer(port, 400_000)];
    try {
      await Promise.all(readers.map((r) => r.started));
      const r = await api(c.url, '/api/v1/models/iris/prediction', { method: 'POST', body: row, signal: AbortSignal.timeout(10_000) });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      // Nor do they hold their answers in the Inferrer's memory: taking none of it for BODY_TIMEOUT_MS (3 s
      // here), they are cut. Read afterwards, each connection ends before its answer does.
      await new Promise((r) => setTimeout(r, 8000));
      const received = await Promise.all(
        readers.map(
          (reader) =>
            new Promise<number>((resolve) => {
              let n = 0;
              const done = setTimeout(() => resolve(-1), 10_000);
              reader.socket.on('data', (d: Buffer) => {
                n += d.length;
              });
              reader.socket.once('close', () => {
                clearTimeout(done);
                resolve(n);
              });
              reader.socket.resume();
            }),
        ),
      );
      for (const n of received) assert.ok(n >= 0 && n < 12_000_000, `the connection was cut with part of its answer unread (read ${n} bytes; -1: still open)`);
    } finally {
      for (const r of readers) r.socket.destroy();
    }
  });
});

describe('sendtomodelhost', () => {
  test('1,000 items do not take every connection to the balancer: a prediction sent meanwhile is answered first', async () => {
    const items = Array.from({ length: 1000 }, (_, i) => `item-${i}`);
    const order: string[] = [];
    const fanOut = api(c.url, '/api/test/sendtomodelhost', { json: { data: items } }).then((r) => {
      order.push('sendtomodelhost');
      return r;
    });
    // Sent once the fan-out has begun (its echoes take about a second over UPSTREAM_CONNECTIONS=2).
    await new Promise((r) => setTimeout(r, 100));
    const prediction = await api(c.url, '/api/v1/models/iris/prediction', { method: 'POST', body: row });
    order.push('prediction');
    assert.equal(prediction.status, 200);
    const r = await fanOut;
    assert.equal(r.status, 200);
    assert.equal(r.body.results.length, 1000);
    assert.deepEqual(
      r.body.results.map((x: { data: string }) => x.data),
      items,
    );
    assert.deepEqual(order, ['prediction', 'sendtomodelhost'], 'the prediction waited behind the fan-out');
  });
});
