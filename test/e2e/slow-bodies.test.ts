/**
 * Slow request bodies hurt only their sender (issue #13, item 2). 300 connections from one address send a
 * prediction body (JSON over 64 KB, or multipart) at 1 byte every 2 s, reconnecting when cut, while good
 * clients on another address keep predicting. The good clients' p99 stays within 2× of their quiet p99,
 * /health/ready keeps answering, and the slow bodies are cut: 429 TOO_MANY_BODIES past the per-address cap,
 * 408 BODY_TOO_SLOW past the minimum rate.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { type TestCluster, startTestCluster } from '../helpers/cluster.ts';

let c: TestCluster;
before(async () => {
  c = await startTestCluster({ modelhosts: 2, inferrerEnv: { BODY_TIMEOUT_MS: '3000', BODY_MIN_BYTES_PER_S: '500', RATE_LIMIT_IP_RPS: '0' } });
});
after(async () => {
  await c?.close();
});

const ROW = JSON.stringify({ values: [6.7, 2.5, 5.8, 1.8] });

/** Good clients: `n` keep-alive loops of iris predictions for `ms`; every latency, and any failure. */
async function goodLoad(n: number, ms: number): Promise<{ latencies: number[]; failures: string[] }> {
  const u = new URL(c.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: n, localAddress: '127.0.0.1' });
  const latencies: number[] = [];
  const failures: string[] = [];
  const end = Date.now() + ms;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const t = performance.now();
      const req = http.request(
        {
          host: u.hostname,
          port: u.port,
          method: 'POST',
          path: '/api/v1/models/iris/prediction',
          agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(ROW) },
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode === 200) latencies.push(performance.now() - t);
            else failures.push(String(res.statusCode));
            resolve();
          });
        },
      );
      req.on('error', (e) => {
        failures.push(e.message);
        resolve();
      });
      req.end(ROW);
    });
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (Date.now() < end) await one();
    }),
  );
  agent.destroy();
  return { latencies, failures };
}

const p99 = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * 0.99))]!;
};

/** One attacker: a prediction body that never finishes, 1 byte every 2 s, from 127.0.0.2; reconnects when cut. */
function attacker(port: number, i: number, statuses: Map<string, number>, stop: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const connect = (): void => {
      if (stop()) {
        resolve();
        return;
      }
      const multipart = i % 3 === 0;
      const head = [
        `POST /api/v1/models/iris/prediction HTTP/1.1`,
        `Host: 127.0.0.1:${port}`,
        multipart ? 'Content-Type: multipart/form-data; boundary=xyz' : 'Content-Type: application/json',
        'Content-Length: 100000',
        '',
        '',
      ].join('\r\n');
      const s = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
      let answer = '';
      const drip = setInterval(() => s.writable && s.write(multipart ? '-' : ' '), 2000);
      s.on('connect', () => s.write(multipart ? `${head}--xyz\r\n` : `${head}{"values": [`));
      s.on('data', (d) => (answer += d.toString('latin1')));
      s.on('error', () => undefined);
      s.on('close', () => {
        clearInterval(drip);
        const status = /^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 'closed';
        const code = /"code":"([A-Z_]+)"/.exec(answer)?.[1];
        const key = code ? `${status} ${code}` : status;
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
        setTimeout(connect, 100);
      });
    };
    connect();
  });
}

test('300 slow-body connections from one address do not slow other clients down; they are cut with 408 and 429', async () => {
  const quiet = await goodLoad(8, 4000);
  assert.deepEqual(quiet.failures, []);

  const port = Number(new URL(c.url).port);
  const statuses = new Map<string, number>();
  let stopping = false;
  const attack = Array.from({ length: 300 }, (_, i) => attacker(port, i, statuses, () => stopping));
  await new Promise((r) => setTimeout(r, 1500));

  let healthMax = 0;
  const health = (async () => {
    while (!stopping) {
      const t = performance.now();
      const r = await fetch(`${c.url}/health/ready`);
      await r.arrayBuffer();
      assert.equal(r.status, 200);
      healthMax = Math.max(healthMax, performance.now() - t);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const loaded = await goodLoad(8, 6000);
  stopping = true;
  await health;
  await Promise.all(attack);

  // The machine is shared: the quiet p99 is measured before and after the attack, and the larger counts.
  const quietAfter = await goodLoad(8, 4000);
  const quietP99 = Math.max(p99(quiet.latencies), p99(quietAfter.latencies), 5);
  const loadedP99 = p99(loaded.latencies);
  const seen = Object.fromEntries(statuses);
  console.log(
    `quiet p99 ${p99(quiet.latencies).toFixed(1)} ms before, ${p99(quietAfter.latencies).toFixed(1)} ms after (${quiet.latencies.length + quietAfter.latencies.length} requests), under attack p99 ${loadedP99.toFixed(1)} ms (${loaded.latencies.length} requests), /health/ready max ${healthMax.toFixed(1)} ms, slow bodies: ${JSON.stringify(seen)}`,
  );
  assert.deepEqual(loaded.failures, [], 'no good request failed');
  assert.ok(loaded.latencies.length > quiet.latencies.length / 4, 'good clients kept being served');
  assert.ok(loadedP99 <= 2 * quietP99, `p99 under attack ${loadedP99.toFixed(1)} ms is within 2x of the quiet p99 ${quietP99.toFixed(1)} ms`);
  assert.ok(healthMax < 1000, `/health/ready answered within a second (max ${healthMax.toFixed(1)} ms)`);
  assert.ok((statuses.get('429 TOO_MANY_BODIES') ?? 0) > 0, `some were cut for the per-address cap: ${JSON.stringify(seen)}`);
  assert.ok((statuses.get('408 BODY_TOO_SLOW') ?? 0) > 0, `some were cut for their rate: ${JSON.stringify(seen)}`);
  const other = Object.keys(seen).filter((k) => k !== '429 TOO_MANY_BODIES' && k !== '408 BODY_TOO_SLOW');
  assert.deepEqual(other, [], 'every slow body got an answer saying why');
});
