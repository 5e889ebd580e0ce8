/**
 * Part 5: load shedding, not collapse. A slow batched model (test/fixtures/models/slow.onnx, ~150 ms a run)
 * behind 2 modelhosts with a bounded queue (MAX_QUEUE_SIZE), first at the concurrency that saturates the
 * cluster, then at 4× that. Every request must either succeed or get an explicit 503/429 with
 * Retry-After quickly; the successful ones keep a bounded p99; the services' memory stays bounded.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { BenchOptions } from './options.ts';
import { clusterPids, startBenchCluster } from './cluster.ts';
import type { LoadResult } from './load.ts';
import { measure } from './measure.ts';
import { REPO_ROOT } from './paths.ts';
import { fmt, fmtMs, fmtRps, table } from './table.ts';

export interface OverloadPoint {
  clients: number;
  load: LoadResult;
  ok: number;
  shed: number;
  limited: number;
  failed: number;
  /** Resident memory of each service after the point, MB. */
  rssMb: Record<string, number>;
}

export interface PoliteResult {
  clients: number;
  ok: number;
  shed: number;
  failed: number;
  okPerS: number;
  p99: number;
}

export interface OverloadResult {
  queueSize: number;
  maxBatchSize: number;
  points: OverloadPoint[];
  /** 4× saturation from clients that wait Retry-After after a 503. */
  polite: PoliteResult;
}

/** Closed-loop clients that wait what Retry-After says after a 503 or 429, for `seconds`. */
async function politeClients(url: string, clients: number, seconds: number): Promise<PoliteResult> {
  const end = performance.now() + seconds * 1000;
  const latencies: number[] = [];
  let shed = 0;
  let failed = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        try {
          const res = await fetch(url, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: '{"values": [1, 2, 3, 4]}',
            signal: AbortSignal.timeout(30_000),
          });
          await res.arrayBuffer();
          if (res.ok) latencies.push(performance.now() - t);
          else if (res.status === 503 || res.status === 429) {
            shed++;
            const wait = Number(res.headers.get('retry-after') ?? 1) * 1000;
            await new Promise((r) => setTimeout(r, Math.min(wait, Math.max(0, end - performance.now()))));
          } else failed++;
        } catch {
          failed++;
        }
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  return { clients, ok: latencies.length, shed, failed, okPerS: latencies.length / seconds, p99: latencies[Math.floor(latencies.length * 0.99)] ?? NaN };
}

async function rssMb(pid: number | undefined): Promise<number> {
  if (pid === undefined) return NaN;
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN) / 1024;
  } catch {
    return NaN;
  }
}

export async function runOverload(opts: BenchOptions, log: (line: string) => void): Promise<OverloadResult> {
  const queueSize = 16;
  const maxBatchSize = 4;
  const bc = await startBenchCluster({
    modelhosts: opts.modelhosts,
    models: [
      {
        name: 'slow',
        file: path.join(REPO_ROOT, 'test', 'fixtures', 'models', 'slow.onnx'),
        description: 'slow model (~150 ms a run)',
        config: { preload: true, batching: { max_batch_size: maxBatchSize } },
      },
    ],
    modelhostEnv: { MAX_QUEUE_SIZE: String(queueSize) },
  });
  try {
    // In flight at saturation: every worker runs a full batch and has a full batch waiting.
    const saturating = opts.modelhosts * maxBatchSize * 2;
    const points: OverloadPoint[] = [];
    for (const clients of [saturating, saturating * 4]) {
      const m = await measure(
        {
          url: `${bc.url}/api/v1/models/slow/prediction`,
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{"values": [1, 2, 3, 4]}',
          connections: clients,
          warmupS: opts.iris.warmupS,
          durationS: Math.max(opts.iris.durationS, 4),
          timeoutS: 30,
        },
        clusterPids(bc),
      );
      const codes = m.load.statusCodes;
      const shed = Number(codes['503'] ?? 0);
      const limited = Number(codes['429'] ?? 0);
      const ok = Object.entries(codes)
        .filter(([k]) => k.startsWith('2'))
        .reduce((a, [, v]) => a + Number(v), 0);
      const failed =
        Object.entries(codes)
          .filter(([k]) => !k.startsWith('2') && k !== '503' && k !== '429')
          .reduce((a, [, v]) => a + Number(v), 0) +
        m.load.socketErrors +
        m.load.timeouts;
      const pids = clusterPids(bc);
      const rss: Record<string, number> = {};
      for (const [name, pid] of Object.entries(pids)) rss[name] = await rssMb(pid);
      points.push({ clients, load: m.load, ok, shed, limited, failed, rssMb: rss });
      log(
        `  ${clients} clients: ${fmtRps(m.load.rps)} ok/s, p99 ${fmtMs(m.load.p99)} ms; ok ${ok}, shed (503) ${shed}, limited (429) ${limited}, failed ${failed}`,
      );
    }
    // The same 4× load from clients that do what a 503's Retry-After asks (autocannon retries at once).
    const polite = await politeClients(`${bc.url}/api/v1/models/slow/prediction`, saturating * 4, Math.max(opts.iris.durationS, 4));
    log(
      `  ${saturating * 4} clients honouring Retry-After: ${fmtRps(polite.okPerS)} ok/s, p99 ${fmtMs(polite.p99)} ms; ok ${polite.ok}, shed ${polite.shed}, failed ${polite.failed}`,
    );
    return { queueSize, maxBatchSize, points, polite };
  } finally {
    await bc.stop();
  }
}

export function overloadTable(r: OverloadResult): string {
  const p = r.polite;
  return `${table(
    ['clients', 'ok/s', 'p50 ms', 'p99 ms (ok)', 'ok', 'shed 503', 'limited 429', 'failed', 'RSS MB (inferrer / modelhosts)'],
    r.points.map((p) => [
      p.clients,
      fmtRps(p.load.rps),
      fmtMs(p.load.p50),
      fmtMs(p.load.p99),
      p.ok,
      p.shed,
      p.limited,
      p.failed,
      `${fmt(p.rssMb.inferrer ?? NaN, 0)} / ${Object.entries(p.rssMb)
        .filter(([k]) => k.startsWith('modelhost'))
        .map(([, v]) => fmt(v, 0))
        .join(' + ')}`,
    ]),
    ['r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
  )}\n${p.clients} clients that wait Retry-After after a 503: ${fmtRps(p.okPerS)} ok/s, p99 ${fmtMs(p.p99)} ms; ok ${p.ok}, shed ${p.shed}, failed ${p.failed}`;
}
