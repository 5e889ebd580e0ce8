/**
 * Part 1: iris (4 floats in, a label out) through the whole cluster (Inferrer → nginx → modelhosts) and
 * through the naive single-process server, at each concurrency, interleaved (naive then cluster at each
 * point) so that a noisy neighbour hits both alike. The load generator is a separate process for both.
 */
import type { BenchOptions } from './options.ts';
import { type BatchStats, batchStats, clusterPids, diffStats, startBenchCluster } from './cluster.ts';
import type { LoadResult } from './load.ts';
import { type CpuBill, measure } from './measure.ts';
import { startNaiveServer } from './naive.ts';
import { IRIS_MODEL } from './paths.ts';
import { fmt, fmtMs, fmtRps, table, verdict } from './table.ts';

export const IRIS_BODY = JSON.stringify({ values: [5.1, 3.5, 1.4, 0.2] });
/** Issue #17: iris at 128 clients through the cluster at least twice the naive server, p99 within 15 ms, no errors. */
export const IRIS_TARGET = { ratio: 2, p99Ms: 15 };
/** The Inferrer's default RATE_LIMIT_IP_RPS (services/inferrer/src/config.ts): requests/s per client address without a key. */
export const DEFAULT_IP_RPS = 10_000;
/** The naive server runs ONNX Runtime with one intra-op thread: for a model this small, more threads only spin. */
export const NAIVE_INTRA_OP_THREADS = 1;

export interface IrisPoint {
  clients: number;
  naive: LoadResult;
  cluster: LoadResult;
  naiveCpu?: CpuBill;
  clusterCpu?: CpuBill;
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
    const na = await post(naiveUrl, IRIS_BODY);
    const ca = await post(clusterUrl, IRIS_BODY);
    if (na.status !== 200) throw new Error(`the naive server answered ${na.status}: ${na.text}`);
    if (ca.status !== 200) throw new Error(`the cluster answered ${ca.status}: ${ca.text}`);
    const naiveValues = JSON.stringify((JSON.parse(na.text) as { values: unknown }).values);
    const clusterValues = JSON.stringify((JSON.parse(ca.text) as { values: unknown }).values);
    if (naiveValues !== clusterValues) throw new Error(`the cluster and the naive server disagree: ${ca.text} vs ${na.text}`);
    log(`both answer ${IRIS_BODY} with "values":${clusterValues} (cluster: ${ca.text.length}-byte v1 envelope, naive: ${na.text.length} bytes)`);

    const points: IrisPoint[] = [];
    for (const clients of o.clients) {
      const spec = {
        method: 'POST' as const,
        headers: { 'content-type': 'application/json' },
        body: IRIS_BODY,
        connections: clients,
        warmupS: o.warmupS,
        durationS: o.durationS,
        timeoutS: 10,
      };
      const n = await measure({ ...spec, url: naiveUrl }, { naive: naive.pid });
      const nr = n.load;
      log(
        `  naive   ${String(clients).padStart(3)} clients: ${fmtRps(nr.rps)} req/s, p50 ${fmtMs(nr.p50)} ms, p99 ${fmtMs(nr.p99)} ms, errors ${nr.errors}${cpuNote(n.cpu)}`,
      );
      const before = await batchStats(bc, 'iris');
      const c = await measure({ ...spec, url: clusterUrl }, clusterPids(bc));
      const cr = c.load;
      const stats: BatchStats = diffStats(await batchStats(bc, 'iris'), before);
      const rowsPerBatch = stats.batches ? stats.rows / stats.batches : NaN;
      log(
        `  cluster ${String(clients).padStart(3)} clients: ${fmtRps(cr.rps)} req/s, p50 ${fmtMs(cr.p50)} ms, p99 ${fmtMs(cr.p99)} ms, errors ${cr.errors}, rows/batch ${fmt(rowsPerBatch, 2)}${cpuNote(c.cpu)}`,
      );
      points.push({
        clients,
        naive: nr,
        cluster: cr,
        ...(n.cpu ? { naiveCpu: n.cpu } : {}),
        ...(c.cpu ? { clusterCpu: c.cpu } : {}),
        ratio: cr.rps / nr.rps,
        clusterRowsPerBatch: rowsPerBatch,
        clusterPerModelhost: stats.perModelhost,
      });
    }
    const top = points.find((p) => p.clients === 128) ?? points[points.length - 1]!;
    const errors = points.reduce((s, p) => s + p.cluster.errors, 0);
    return {
      balancer: bc.cluster.balancer.description,
      modelhosts: opts.modelhosts,
      naiveAnswer: na.text,
      clusterAnswer: ca.text,
      points,
      targets: {
        ratio: top.ratio,
        ratioOk: top.ratio >= IRIS_TARGET.ratio,
        p99: top.cluster.p99,
        p99Ok: top.cluster.p99 <= IRIS_TARGET.p99Ms,
        errors: top.cluster.errors,
        errorsOk: top.cluster.errors === 0 && errors === 0,
      },
      notable: bc.notable,
    };
  } finally {
    await bc?.stop();
    await naive.stop();
  }
}

function cpuNote(cpu: CpuBill | undefined): string {
  if (!cpu) return '';
  return `; CPU ${Math.round(cpu.serverUsPerRequest)} µs/req (${Object.entries(cpu.perRequestUs)
    .map(([k, v]) => `${k} ${Math.round(v)}`)
    .join(', ')}), load generator ${Math.round(cpu.generatorUsPerRequest)} µs/req, other processes ${cpu.otherCores.toFixed(2)} cores`;
}

const us = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? '-' : String(Math.round(v)));

export function irisTable(r: IrisResult): string {
  const rows: (string | number)[][] = [];
  for (const p of r.points) {
    rows.push([
      p.clients,
      'naive',
      fmtRps(p.naive.rps),
      fmtMs(p.naive.p50),
      fmtMs(p.naive.p99),
      p.naive.errors,
      '',
      us(p.naiveCpu?.serverUsPerRequest),
      fmt(p.naiveCpu?.otherCores ?? NaN, 2),
      '',
    ]);
    rows.push([
      '',
      'cluster',
      fmtRps(p.cluster.rps),
      fmtMs(p.cluster.p50),
      fmtMs(p.cluster.p99),
      p.cluster.errors,
      fmt(p.clusterRowsPerBatch, 2),
      us(p.clusterCpu?.serverUsPerRequest),
      fmt(p.clusterCpu?.otherCores ?? NaN, 2),
      fmt(p.ratio, 2),
    ]);
  }
  const t = r.targets;
  const bill = r.points
    .filter((p) => p.clusterCpu)
    .map((p) => {
      const c = p.clusterCpu!.perRequestUs;
      const modelhosts = Object.entries(c)
        .filter(([k]) => k.startsWith('modelhost'))
        .reduce((a, [, v]) => a + v, 0);
      return [
        p.clients,
        us(c.inferrer),
        us(c.balancer),
        us(modelhosts),
        us(p.clusterCpu!.serverUsPerRequest),
        us(p.naiveCpu?.serverUsPerRequest),
        us(p.clusterCpu!.generatorUsPerRequest),
      ];
    });
  return [
    table(['clients', 'server', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'rows/batch', 'CPU µs/req', 'other cores', 'cluster÷naive'], rows, [
      'r',
      'l',
      'r',
      'r',
      'r',
      'r',
      'r',
      'r',
      'r',
      'r',
    ]),
    '',
    ...(bill.length
      ? [
          "where the cluster's CPU goes, µs of CPU per answered request (all threads of each process):",
          table(['clients', 'inferrer', 'nginx', 'modelhosts', 'cluster total', 'naive total', 'load generator'], bill, ['r', 'r', 'r', 'r', 'r', 'r', 'r']),
          '',
        ]
      : []),
    `targets at 128 clients: cluster ≥ ${IRIS_TARGET.ratio} × naive req/s: ${fmt(t.ratio, 2)} ${verdict(t.ratioOk)}; p99 ≤ ${IRIS_TARGET.p99Ms} ms: ${fmtMs(t.p99)} ms ${verdict(t.p99Ok)}; zero errors: ${t.errors} ${verdict(t.errorsOk)}`,
    rateLimitNote(r),
  ].join('\n');
}

/**
 * The bench turns the Inferrer's per-address limit off (RATE_LIMIT_IP_RPS=0): every connection of the one
 * load generator comes from 127.0.0.1. Says where the default would have capped it.
 */
export function rateLimitNote(r: IrisResult): string {
  const over = r.points.filter((p) => p.cluster.rps > DEFAULT_IP_RPS);
  const base = `per-address rate limit: off in this bench (RATE_LIMIT_IP_RPS=0). With the default of ${DEFAULT_IP_RPS.toLocaleString('en')} requests/s per address (no API key), one load generator gets 429 above that rate`;
  if (over.length === 0) return `${base}; no point here went above it.`;
  return `${base}: it would have capped the cluster at ${over.map((p) => `${p.clients} clients (${fmtRps(p.cluster.rps)} req/s)`).join(', ')}. Raise RATE_LIMIT_IP_RPS, or use API keys (RATE_LIMIT_KEY_RPS per key), to load-test without it.`;
}
