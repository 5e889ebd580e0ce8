/**
 * Hostile request bodies through the real cluster (issue 13): each sends exactly the request an attack
 * run sent, and asserts a clear 4xx naming what was wrong, and that the workers keep serving.
 *
 * - nesting: 100,000 nested brackets to /api/test/sendtomodelhost, as an NDJSON job line, as v1 values
 *   and as v2 data (a 500 from a stack overflow before);
 * - numbers out of range for the datatype (1e400 for FP32/FP64, 300-digit integers for INT64, 70000 for
 *   FP16, 300 for INT8), named by input and flat index;
 * - the same output asked for 100,000 times;
 * - BYTES elements that ONNX Runtime's JavaScript binding cannot carry (a NUL byte, invalid UTF-8);
 * - a 64 MB JSON body (v1 values, v2 FP32 data): the modelhost that takes it keeps answering health checks
 *   and small requests (measured against a quiet baseline in the same run), and the body succeeds.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { NODE_FLAGS } from '../../services/cli/src/paths.ts';
import { REPO, type TestCluster, api, startTestCluster, uploadModel } from '../helpers/cluster.ts';

const CORPUS = path.join(REPO, 'test', 'fixtures', 'corpus');
const DEEP = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;

let c: TestCluster;
before(async () => {
  // A 64 MB body takes seconds to parse and run on a loaded 2-core machine: room beyond the 30 s default.
  c = await startTestCluster({ env: { REQUEST_TIMEOUT_MS: '120000' }, inferrerEnv: { REQUEST_TIMEOUT_MS: '120000' } });
  for (const t of ['float32', 'float64', 'float16', 'int64', 'int8', 'string']) {
    const up = await uploadModel(c.url, `id_${t}`, path.join(CORPUS, `id_${t}.onnx`));
    assert.equal(up.status, 201, JSON.stringify(up.body));
  }
});
after(async () => {
  await c?.close();
});

const post = (route: string, body: string | Buffer, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
  api(c.url, route, { method: 'POST', headers, body: typeof body === 'string' ? body : new Uint8Array(body) });

/** The error a v1 (envelope) or v2 (flat) answer carries. */
function errorOf(body: any): { code: string; message: string } {
  if (body?.error && typeof body.error === 'object') return body.error;
  return { code: body?.code, message: body?.error };
}

/** The workers still answer an ordinary request after a hostile one. */
async function stillServing(): Promise<void> {
  const r = await post('/api/v1/models/iris/prediction', '{"values": [6.7, 2.5, 5.8, 1.8]}');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(r.body.values, [2]);
}

describe('JSON nested 100,000 levels deep', () => {
  test('to /api/test/sendtomodelhost: 400, not a stack overflow', async () => {
    const r = await post('/api/test/sendtomodelhost', `{"data": ${DEEP}}`);
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(errorOf(r.body).code, 'INVALID_REQUEST');
    assert.match(errorOf(r.body).message, /deeper than 64 levels/);
  });

  test('as v1 values and as v2 data: 400 naming the input and its rank', async () => {
    const v1 = await post('/api/v1/models/iris/prediction', `{"values": ${DEEP}}`);
    assert.equal(v1.status, 400, JSON.stringify(v1.body));
    assert.deepEqual(
      [errorOf(v1.body).code, errorOf(v1.body).message],
      ['INVALID_INPUT', "input 'input' nests lists deeper than its rank allows (at most 2 levels)"],
    );
    const v2 = await post('/v2/models/id_float32/infer', `{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data": ${DEEP}}]}`);
    assert.equal(v2.status, 400, JSON.stringify(v2.body));
    assert.equal(errorOf(v2.body).code, 'INVALID_INPUT');
    // With a long integer inside, the exact (lossless) parser is used, which recurses: refused before it.
    const exact = await post(
      '/v2/models/id_int64/infer',
      `{"inputs":[{"name":"x","shape":[1,3],"datatype":"INT64","data": ${'['.repeat(100_000)}12345678901234567890${']'.repeat(100_000)}}]}`,
    );
    assert.equal(exact.status, 400, JSON.stringify(exact.body));
    assert.equal(errorOf(exact.body).code, 'INVALID_REQUEST');
    await stillServing();
  });

  test('as an NDJSON job line: that item fails as invalid input, naming its line; the others run', async () => {
    const res = await post('/api/v1/models/iris/jobs', `[6.7, 2.5, 5.8, 1.8]\n${DEEP}\n[5.1, 3.5, 1.4, 0.2]\n`, { 'content-type': 'application/x-ndjson' });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    const id = res.body.job.id as string;
    const until = Date.now() + 60_000;
    let job: any;
    while (Date.now() < until) {
      job = (await api(c.url, `/api/v1/jobs/${id}`)).body.job;
      if (['SUCCEEDED', 'PARTIAL', 'FAILED', 'CANCELLED'].includes(job.state)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(job.state, 'PARTIAL', JSON.stringify(job));
    const lines = (await (await fetch(`${c.url}/api/v1/jobs/${id}/results`)).text())
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    assert.equal(lines.length, 3);
    assert.deepEqual(lines[1].error.code, 'INVALID_INPUT');
    assert.match(lines[1].error.message, /^line 2: the JSON nests arrays and objects deeper than 64 levels/);
    assert.ok(lines[0].outputs && lines[2].outputs, JSON.stringify(lines));
  });
});

describe('numbers out of range for the datatype', () => {
  const v2 = (model: string, datatype: string, data: string) =>
    post(`/v2/models/${model}/infer`, `{"inputs":[{"name":"x","shape":[1,3],"datatype":"${datatype}","data":${data}}]}`);

  test('1e400 for FP32 and FP64 (v2 and v1): 400 naming input and element', async () => {
    for (const [model, type] of [
      ['id_float32', 'FP32'],
      ['id_float64', 'FP64'],
    ]) {
      const r = await v2(model!, type!, '[1, 2, 1e400]');
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(errorOf(r.body).code, 'INVALID_INPUT');
      assert.match(errorOf(r.body).message, new RegExp(`^input 'x' element 2: a number beyond 1.8e308 is out of range for ${type}`));
      assert.deepEqual([r.body.details.input, r.body.details.index], ['x', 2]);
    }
    const v1 = await post('/api/v1/models/id_float32/prediction', '{"values": [1e400, 1, 2]}');
    assert.equal(v1.status, 400, JSON.stringify(v1.body));
    assert.match(errorOf(v1.body).message, /^input 'x' element 0: a number beyond 1.8e308 is out of range for FP32/);
    // 1e39 fits a double but not a float32.
    const f32 = await v2('id_float32', 'FP32', '[1, 1e39, 2]');
    assert.equal(f32.status, 400, JSON.stringify(f32.body));
    assert.match(errorOf(f32.body).message, /^input 'x' element 1: 1e\+39 is out of range for FP32/);
    // Infinity asked for as a string is a value, not an overflow.
    const inf = await v2('id_float32', 'FP32', '["Infinity", 1, 2]');
    assert.equal(inf.status, 200, JSON.stringify(inf.body));
  });

  test('a 300-digit integer for INT64 (v2 and v1), 70000 for FP16, 300 for INT8: 400 naming the element', async () => {
    const big = '9'.repeat(300);
    const cases: [Promise<{ status: number; body: any }>, RegExp][] = [
      [v2('id_int64', 'INT64', `[1, ${big}, 3]`), /^input 'x' element 1: 99999999999999999999…\(300 characters\) is out of range for INT64/],
      [
        post('/api/v1/models/id_int64/prediction', `{"values": [${big}, 1, 2]}`),
        /^input 'x' element 0: 99999999999999999999…\(300 characters\) is out of range for INT64/,
      ],
      [v2('id_float16', 'FP16', '[1, 2, 70000]'), /^input 'x' element 2: 70000 is out of range for FP16 \[-65504, 65504\]/],
      [v2('id_int8', 'INT8', '[1, 300, 2]'), /^input 'x' element 1: 300 is out of range for INT8 \[-128, 127\]/],
    ];
    for (const [pending, message] of cases) {
      const r = await pending;
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(errorOf(r.body).code, 'INVALID_INPUT');
      assert.match(errorOf(r.body).message, message);
    }
  });
});

describe('outputs', () => {
  test('the same output asked for 100,000 times: 400, not a 9.6 MB answer', async () => {
    const outputs = Array.from({ length: 100_000 }, () => ({ name: 'y' }));
    const r = await post('/v2/models/id_float32/infer', JSON.stringify({ inputs: [{ name: 'x', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }], outputs }));
    assert.equal(r.status, 400, JSON.stringify(r.body).slice(0, 300));
    assert.deepEqual([errorOf(r.body).code, errorOf(r.body).message], ['INVALID_REQUEST', `output 'y' is asked for more than once in "outputs"`]);
  });
});

describe('BYTES elements the runtime binding cannot carry', () => {
  test('JSON: a NUL character or an unpaired surrogate is refused naming the element; text round-trips', async () => {
    const nul = await post(
      '/v2/models/id_string/infer',
      JSON.stringify({ inputs: [{ name: 'x', shape: [1, 3], datatype: 'BYTES', data: ['a\u0000b', 'c', 'd'] }] }),
    );
    assert.equal(nul.status, 400, JSON.stringify(nul.body));
    assert.match(errorOf(nul.body).message, /^input 'x' element 0: a BYTES element holds a NUL byte/);
    const lone = await post('/v2/models/id_string/infer', '{"inputs":[{"name":"x","shape":[1,3],"datatype":"BYTES","data":["a","b","\\ud800"]}]}');
    assert.equal(lone.status, 400, JSON.stringify(lone.body));
    assert.match(errorOf(lone.body).message, /^input 'x' element 2: a BYTES element holds an unpaired surrogate/);
    const v1 = await post('/api/v1/models/id_string/prediction', JSON.stringify({ values: ['ok', 'a\u0000', 'b'] }));
    assert.equal(v1.status, 400, JSON.stringify(v1.body));
    assert.match(errorOf(v1.body).message, /^input 'x' element 1: a BYTES element holds a NUL byte/);
    const ok = await post('/v2/models/id_string/infer', JSON.stringify({ inputs: [{ name: 'x', shape: [1, 3], datatype: 'BYTES', data: ['a', 'é😀', ''] }] }));
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.deepEqual(ok.body.outputs[0].data, ['a', 'é😀', '']);
  });

  test('binary: invalid UTF-8 or a NUL byte is refused naming the element', async () => {
    const element = (b: Buffer) => {
      const len = Buffer.alloc(4);
      len.writeUInt32LE(b.length);
      return Buffer.concat([len, b]);
    };
    for (const [bad, index, what] of [
      [Buffer.from([0x61, 0xff, 0x62]), 0, /not valid UTF-8/],
      [Buffer.from([0x61, 0x00, 0x62]), 0, /a NUL byte/],
    ] as const) {
      const bin = Buffer.concat([element(bad), element(Buffer.from('x')), element(Buffer.from('y'))]);
      const head = Buffer.from(
        JSON.stringify({
          inputs: [{ name: 'x', shape: [1, 3], datatype: 'BYTES', parameters: { binary_data_size: bin.length } }],
          outputs: [{ name: 'y', parameters: { binary_data: false } }],
        }),
      );
      const r = await post('/v2/models/id_string/infer', Buffer.concat([head, bin]), {
        'content-type': 'application/octet-stream',
        'inference-header-content-length': String(head.length),
      });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(errorOf(r.body).code, 'INVALID_INPUT');
      assert.match(errorOf(r.body).message, new RegExp(`^input 'x' element ${index}: a BYTES element holds`));
      assert.match(errorOf(r.body).message, what);
    }
    await stillServing();
  });
});

describe('memory', () => {
  test('the Inferrer and the modelhosts run with the Node flags the images run them with (an old generation that starts at 128 MiB)', async () => {
    const pids = [c.inferrer.pid, ...c.modelhosts.map((m) => m.process.pid)];
    assert.equal(pids.length, 3);
    for (const [i, pid] of pids.entries()) {
      assert.ok(pid, 'a service without a pid');
      const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
      const service = i === 0 ? 'inferrer' : 'modelhost';
      assert.deepEqual(argv.slice(1, 1 + NODE_FLAGS[service].length), [...NODE_FLAGS[service]], `${service}: ${argv.join(' ')}`);
      assert.ok(argv.includes('--initial-old-space-size=128'), argv.join(' '));
    }
  });
});

describe('a 64 MB JSON body', () => {
  /** Iris rows as JSON text. */
  const ROW = '[6.7,2.5,5.8,1.8]';
  const rowsFor = (bytes: number): number => Math.floor(bytes / (ROW.length + 1));
  const rowsText = (rows: number): string => `[${`${ROW},`.repeat(rows - 1)}${ROW}]`;

  /** Latencies of one modelhost's probes. */
  interface Probed {
    health: number[];
    small: number[];
  }

  /**
   * Open-loop probes (one every 20 ms, not waiting for the last, so a stall shows in every probe that lands
   * in it), taking turns over the modelhosts: /health/ready, and a small iris prediction straight to it.
   */
  function probe(): { stop(): Promise<{ byHost: Map<string, Probed>; failed: string[] }> } {
    const byHost = new Map<string, Probed>(c.modelhosts.map((m) => [m.id, { health: [], small: [] }]));
    const failed: string[] = [];
    const inflight = new Set<Promise<void>>();
    let n = 0;
    const timed = (list: number[], url: string, init?: RequestInit): void => {
      const t = performance.now();
      const p = fetch(url, init)
        .then(async (r) => {
          await r.arrayBuffer();
          if (r.status !== 200) failed.push(`${url} ${r.status}`);
          list.push(performance.now() - t);
        })
        .catch((err: Error) => void failed.push(`${url} ${err.message}`))
        .finally(() => inflight.delete(p));
      inflight.add(p);
    };
    const timer = setInterval(() => {
      const mh = c.modelhosts[n++ % c.modelhosts.length]!;
      const at = byHost.get(mh.id)!;
      timed(at.health, `${mh.url}/health/ready`);
      timed(at.small, `${mh.url}/v1/models/iris/predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"values": [5.1, 3.5, 1.4, 0.2]}',
      });
    }, 20);
    return {
      async stop() {
        clearInterval(timer);
        await Promise.all([...inflight]);
        return { byHost, failed };
      },
    };
  }

  const pct = (xs: number[], q: number): number => {
    const s = [...xs].sort((a, b) => a - b);
    return Number(s[Math.min(s.length - 1, Math.floor(s.length * q))]!.toFixed(1));
  };

  /** Sends a file with curl (its own process, so the probes here are not delayed by writing 64 MB). */
  function curl(route: string, file: string, out: string, headersFile: string, headers: string[]): Promise<{ status: number; seconds: number }> {
    return new Promise((resolve, reject) => {
      const args = [
        '-s',
        '-o',
        out,
        '-D',
        headersFile,
        '-w',
        '%{http_code} %{time_total}',
        '-X',
        'POST',
        `${c.url}${route}`,
        '--data-binary',
        `@${file}`,
        ...headers.flatMap((h) => ['-H', h]),
      ];
      const child = spawn('curl', args, { stdio: ['ignore', 'pipe', 'inherit'] });
      let text = '';
      child.stdout.on('data', (d: Buffer) => (text += d.toString()));
      child.on('error', reject);
      child.on('close', () => {
        const [status, seconds] = text.trim().split(' ');
        resolve({ status: Number(status), seconds: Number(seconds) });
      });
    });
  }

  /**
   * Sends `body` while probing every modelhost, and holds the one that took it to what its neighbour
   * shows at the same time: the machine's load hits both alike, a stalled HTTP thread only the one.
   */
  async function underLoad(t: { diagnostic(m: string): void }, label: string, route: string, body: string): Promise<{ status: number; answer: string }> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-large-'));
    try {
      const file = path.join(dir, 'body.json');
      const answerFile = path.join(dir, 'answer.json');
      const headersFile = path.join(dir, 'headers.txt');
      await writeFile(file, body);
      await stillServing();
      let p = probe();
      await new Promise((r) => setTimeout(r, 2000));
      const quiet = await p.stop();
      p = probe();
      const sent = await curl(route, file, answerFile, headersFile, ['Content-Type: application/json']);
      const loaded = await p.stop();
      const answerHeaders = await readFile(headersFile, 'utf8');
      const took = /^x-modelhost-id: *(\S+)/im.exec(answerHeaders)?.[1];
      assert.ok(
        took && loaded.byHost.has(took),
        `the answer names the modelhost that took the body (${took}); status ${sent.status} after ${sent.seconds} s: ${answerHeaders.slice(0, 400)} ${(await readFile(answerFile, 'utf8').catch(() => '')).slice(0, 300)}`,
      );
      const other = [...loaded.byHost.keys()].find((id) => id !== took)!;
      const figure = (x: Probed) => ({
        healthP95: pct(x.health, 0.95),
        healthP99: pct(x.health, 0.99),
        healthMax: Number(Math.max(...x.health).toFixed(1)),
        smallP95: pct(x.small, 0.95),
        smallP99: pct(x.small, 0.99),
        smallMax: Number(Math.max(...x.small).toFixed(1)),
        probes: x.health.length,
      });
      const quietAll = { health: [...quiet.byHost.values()].flatMap((x) => x.health), small: [...quiet.byHost.values()].flatMap((x) => x.small) };
      const figures = {
        bodyMB: Number((Buffer.byteLength(body) / 1e6).toFixed(1)),
        status: sent.status,
        seconds: sent.seconds,
        quiet: figure(quietAll),
        took: figure(loaded.byHost.get(took)!),
        neighbour: figure(loaded.byHost.get(other)!),
      };
      t.diagnostic(`${label}: ${JSON.stringify(figures)}`);
      assert.deepEqual([...quiet.failed, ...loaded.failed], [], 'every probe answered 200');
      // Parsing on the HTTP thread held every probe of that worker for seconds (before the fix, on this
      // machine: v1 health p99 12.2 s and small p99 17.6 s; v2 17.0 s and 23.6 s). The README promises health
      // within 50 ms under load: as in batching.test.ts the 95th percentile is held to it, since on a shared
      // 2-core machine a probe can wait for the CPU whatever this worker does. Where the machine is busy
      // enough that the neighbour (same moment, no body) misses that too, the worker running the body (its
      // slices take a runtime thread for seconds) has come out at 1.4 to 3.7 times the neighbour's figure
      // on a machine loaded 15 to 25: the bound there is five times the neighbour's.
      assert.ok(
        figures.took.healthP95 <= Math.max(50, 5 * figures.neighbour.healthP95),
        `health p95 ${figures.took.healthP95} ms on the worker with the body (neighbour ${figures.neighbour.healthP95} ms)`,
      );
      // Small iris requests share the model with the body: they wait for at most one slice of its run. The
      // 95th percentile, as for health: with some 60 probes the 99th is the slowest one, and one probe that
      // waited 121 ms for the CPU on a busy CI machine (its neighbour's slowest 21 ms, the quiet run's 36) failed it.
      assert.ok(
        figures.took.smallP95 <= Math.max(100, 5 * figures.neighbour.smallP95),
        `small-request p95 ${figures.took.smallP95} ms on the worker with the body (neighbour ${figures.neighbour.smallP95} ms)`,
      );
      return { status: sent.status, answer: await readFile(answerFile, 'utf8') };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  test('v1 values: the worker that parses it keeps answering health checks and small requests, and it is answered', async (t) => {
    const rows = rowsFor(64_000_000 - 20);
    const { status, answer } = await underLoad(t, 'v1 64 MB', '/api/v1/models/iris/prediction', `{"values": ${rowsText(rows)}}`);
    assert.equal(status, 200, answer.slice(0, 500));
    const values = (JSON.parse(answer) as { values: number[] }).values;
    assert.equal(values.length, rows);
    assert.equal(values[rows - 1], 2);
  });

  test('v2 FP32 data as JSON: the same', async (t) => {
    const rows = rowsFor(64_000_000 - 120);
    const body = `{"inputs":[{"name":"input","shape":[${rows},4],"datatype":"FP32","data":${rowsText(rows)}}],"outputs":[{"name":"label"}]}`;
    const { status, answer } = await underLoad(t, 'v2 64 MB', '/v2/models/iris/infer', body);
    assert.equal(status, 200, answer.slice(0, 500));
    const out = (JSON.parse(answer) as { outputs: { name: string; shape: number[] }[] }).outputs;
    assert.deepEqual(
      out.map((o) => [o.name, o.shape]),
      [['label', [rows]]],
    );
  });
});
