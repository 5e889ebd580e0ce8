/**
 * Part 1: iris (4 floats in, a label out) through the whole cluster (Inferrer → nginx → modelhosts) and
 * through the naive single-process server, at each concurrency, interleaved (naive then cluster at each
 * point) so that a noisy neighbour hits both alike. The load generator is a separate process for both.
 */
import type { BenchOptions } from './options.ts';
import { type BatchStats, batchStats, diffStats, startBenchCluster } from './cluster.ts';
import { type LoadResult, runLoad } from './load.ts';
import { startNaiveServer } from './naive.ts';
import { IRIS_MODEL } from './paths.ts';
import { fmt, fmtMs, fmtRps, table, verdict } from './table.ts';

export const IRIS_BODY = JSON.stringify({ values: [5.1, 3.5, 1.4, 0.2] });
/** The naive server runs ONNX Runtime with one intra-op thread: for a model this small, more threads only spin. */
export const NAIVE_INTRA_OP_THREADS = 1;

export interface IrisPoint {
  clients: number;
  naive: LoadResult;
  cluster: LoadResult;
  /** cluster ÷ naive requests/s. */
  ratio: number;
  /** Mean requests per executed batch in the cluster, from the modelhosts' metrics. */
  clusterRowsPerBatch: number;
  clusterPerModelhost: Record<string, number>;
}

export interface IrisResult {
  balancer: string;
  modelhosts: number;
  naiveAnswer: string;
  clusterAnswer: string;
  points: IrisPoint[];
  targets: { ratio: number; ratioOk: boolean; p99: number; p99Ok: boolean; errors: number; errorsOk: boolean };
  notable: { service: string; line: string }[];
}

async function post(url: string, body: string): Promise<{ status: number; text: string; batch: string | null }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  return { status: res.status, text: await res.text(), batch: res.headers.get('x-inferrer-batch') };
}

export async function runIris(opts: BenchOptions, log: (line: string) => void): Promise<IrisResult> {
  const o = opts.iris;
  log(`starting the naive server and a cluster with ${opts.modelhosts} modelhosts …`);
  const naive = await startNaiveServer(IRIS_MODEL, NAIVE_INTRA_OP_THREADS);
  let bc: Awaited<ReturnType<typeof startBenchCluster>> | undefined;
  try {
    bc = await startBenchCluster({ modelhosts: opts.modelhosts, models: [] });
    const naiveUrl = `${naive.url}/predict`;
    const clusterUrl = `${bc.url}/api/v1/models/iris/prediction`;
    const n = await post(naiveUrl, IRIS_BODY);
    const c = await post(clusterUrl, IRIS_BODY);
    if (n.status !== 200) throw new Error(`the naive server answered ${n.status}: ${n.text}`);
    if (c.status !== 200) throw new Error(`the cluster answered ${c.status}: ${c.text}`);
    const naiveValues = JSON.stringify((JSON.parse(n.text) as { values: unknown }).values);
    const clusterValues = JSON.stringify((JSON.parse(c.text) as { values: unknown }).values);
    if (naiveValues !== clusterValues) throw new Error(`the cluster and the naive server disagree: ${c.text} vs ${n.text}`);
    log(`both answer ${IRIS_BODY} with {"values":${clusterValues}} (cluster: ${c.text.length} bytes, naive: ${n.text.length} bytes)`);

    const points: IrisPoint[] = [];
    for (const clients of o.clients) {
      const spec = { method: 'POST' as const, headers: { 'content-type': 'application/json' }, body: IRIS_BODY, connections: clients, warmupS: o.warmupS, durationS: o.durationS, timeoutS: 10 };
      const nr = await runLoad({ ...spec, url: naiveUrl });
      log(`  naive   ${String(clients).padStart(3)} clients: ${fmtRps(nr.rps)} req/s, p50 ${fmtMs(nr.p50)} ms, p99 ${fmtMs(nr.p99)} ms, errors ${nr.errors}`);
      const before = await batchStats(bc, 'iris');
      const cr = await runLoad({ ...spec, url: clusterUrl });
      const stats: BatchStats = diffStats(await batchStats(bc, 'iris'), before);
      const rowsPerBatch = stats.batches ? stats.rows / stats.batches : NaN;
      log(`  cluster ${String(clients).padStart(3)} clients: ${fmtRps(cr.rps)} req/s, p50 ${fmtMs(cr.p50)} ms, p99 ${fmtMs(cr.p99)} ms, errors ${cr.errors}, rows/batch ${fmt(rowsPerBatch, 2)}`);
      points.push({ clients, naive: nr, cluster: cr, ratio: cr.rps / nr.rps, clusterRowsPerBatch: rowsPerBatch, clusterPerModelhost: stats.perModelhost });
    }
    const top = points.find((p) => p.clients === 128) ?? points[points.length - 1]!;
    const errors = points.reduce((s, p) => s + p.cluster.errors, 0);
    return {
      balancer: bc.cluster.balancer.description,
      modelhosts: opts.modelhosts,
      naiveAnswer: n.text,
      clusterAnswer: c.text,
      points,
      targets: { ratio: top.ratio, ratioOk: top.ratio >= 0.75, p99: top.cluster.p99, p99Ok: top.cluster.p99 <= 25, errors: top.cluster.errors, errorsOk: top.cluster.errors === 0 && errors === 0 },
      notable: bc.notable,
    };
  } finally {
    await bc?.stop();
    await naive.stop();
  }
}

export function irisTable(r: IrisResult): string {
  const rows: (string | number)[][] = [];
  for (const p of r.points) {
    rows.push([p.clients, 'naive', fmtRps(p.naive.rps), fmtMs(p.naive.p50), fmtMs(p.naive.p99), p.naive.errors, '', '']);
    rows.push(['', 'cluster', fmtRps(p.cluster.rps), fmtMs(p.cluster.p50), fmtMs(p.cluster.p99), p.cluster.errors, fmt(p.clusterRowsPerBatch, 2), fmt(p.ratio, 2)]);
  }
  const t = r.targets;
  return [
    table(['clients', 'server', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'rows/batch', 'cluster÷naive'], rows, ['r', 'l', 'r', 'r', 'r', 'r', 'r', 'r']),
    '',
    `targets at 128 clients: cluster ≥ 0.75 × naive req/s: ${fmt(t.ratio, 2)} ${verdict(t.ratioOk)}; p99 ≤ 25 ms: ${fmtMs(t.p99)} ms ${verdict(t.p99Ok)}; zero errors: ${t.errors} ${verdict(t.errorsOk)}`,
  ].join('\n');
}
