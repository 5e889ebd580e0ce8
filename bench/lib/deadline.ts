/**
 * Part 8: deadlines under deep overload. ResNet-50 behind the cluster with REQUEST_TIMEOUT_MS=10000 and far
 * more clients (512) than it serves in 10 s, each sending its next request as soon as the last is answered
 * (a 503's Retry-After is not waited for: the worst case). Every answer must arrive within the deadline
 * plus half a second: a result, 503 + Retry-After for a request the cluster cannot serve in time (at
 * once), or 504 at the deadline. The load generator is autocannon in its own process (lib/load.ts),
 * which times every answer whatever its status (a connection's first request from when its connection
 * opened: load-generator.ts); reported: answers by status and the slowest of each, how many came later
 * than 10.5 s and of those how many were a connection's first request, and the generator's own
 * event-loop delay.
 *
 * The start is the hard part: 512 connections open at once and send 300 MB. Node 20 accepts one connection
 * per event-loop turn and listening descriptor, so with a plain listen the Inferrer took up to 9 s to
 * accept them all, time its deadline could not see, and up to 86 answers per run came late, all of them
 * first requests; with ACCEPTORS (64 descriptors, @inferrer/http acceptors.ts) all are accepted in about
 * 0.1 s (docs/operations.md, "Connections under load").
 */
import type { BenchOptions } from './options.ts';
import { startBenchCluster } from './cluster.ts';
import { runLoad } from './load.ts';
import { CACHE_DIR } from './paths.ts';
import { imageBody, v2BinaryBody } from './resnet.ts';
import { ensureResnet50 } from './resnet50.ts';
import { fmt, fmtMs, table } from './table.ts';

export interface DeadlineResult {
  deadlineMs: number;
  clients: number;
  /** Seconds of load (warm-up and window: every answer counts). */
  seconds: number;
  maxBatchSize: number;
  /** Answers by status, and the slowest of each (ms). */
  byStatus: Record<string, { count: number; max: number }>;
  /** Requests without an answer (socket errors, autocannon's own 60 s timeout). */
  failed: number;
  /** Answers that came later than deadline + 500 ms. */
  late: number;
  /** Results (2xx) per second in the measured window, and their p50 / p99 (ms). */
  okPerS: number;
  okP50: number;
  okP99: number;
  /** The Inferrer's event-loop delay over the run, p99 and max (ms). */
  inferrerLagP99: number;
  inferrerLagMax: number;
}

const MARGIN_MS = 500;

export async function runDeadline(opts: BenchOptions, log: (line: string) => void): Promise<DeadlineResult> {
  const deadlineMs = 10_000;
  const clients = 512;
  const maxBatchSize = 8;
  const warmupS = 2;
  const durationS = opts.quick ? 20 : 40;
  const model = await ensureResnet50(CACHE_DIR);
  const bin = v2BinaryBody(imageBody().pixels);
  const bc = await startBenchCluster({
    modelhosts: opts.modelhosts,
    models: [
      {
        name: 'resnet50',
        file: model.file,
        description: 'ResNet-50 with random weights (bench)',
        config: { preload: true, batching: { max_batch_size: maxBatchSize } },
      },
    ],
    modelhostEnv: { REQUEST_TIMEOUT_MS: String(deadlineMs) },
    // The 512 clients share one address here, as the rate limit's address (off in every bench) does: the
    // cap on one address's bodies still arriving after a second (32) would cut some with 429 when the
    // Inferrer is slow to read them, and autocannon, reconnecting, times its next answers from the wrong
    // request (it keeps the one lost with the connection in its queue).
    inferrerEnv: { REQUEST_TIMEOUT_MS: String(deadlineMs), MAX_PENDING_BODIES_PER_CLIENT: String(clients * 2) },
  });
  try {
    const url = `${bc.url}/v2/models/resnet50/infer`;
    const headers = { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(bin.headerLength) };
    // Every worker has the model warm before the load (the first runs may be slower than the deadline).
    let ok = 0;
    for (let i = 0; i < 30 && ok < 4; i++) {
      const r = await Promise.all([1, 2].map(() => fetch(url, { method: 'POST', headers, body: new Uint8Array(bin.body) })));
      for (const res of r) {
        await res.arrayBuffer();
        if (res.status === 200) ok++;
      }
    }
    if (ok < 4) throw new Error('resnet50 did not answer before the load');
    log(`${clients} clients for ${warmupS} + ${durationS} s, deadline ${deadlineMs / 1000} s, max_batch_size ${maxBatchSize}, v2 binary bodies …`);
    const load = await runLoad({
      url,
      method: 'POST',
      headers,
      body: bin.body.toString('base64'),
      bodyEncoding: 'base64',
      connections: clients,
      warmupS,
      durationS,
      timeoutS: 60,
      lateAfterMs: deadlineMs + MARGIN_MS,
    });
    // The Inferrer's event-loop delay over the run (prom-client's default metrics): what its clock cannot see.
    const metrics = await (await fetch(`${bc.url}/metrics`)).text();
    const gauge = (name: string): number =>
      Number(new RegExp(`^inferrer_nodejs_eventloop_lag_${name}_seconds\\{[^}]*\\} (\\S+)`, 'm').exec(metrics)?.[1] ?? NaN) * 1000;
    const byStatus: DeadlineResult['byStatus'] = {};
    for (const [k, n] of Object.entries(load.statusCodes).sort()) byStatus[k] = { count: Number(n), max: load.maxByStatus?.[k] ?? NaN };
    const r: DeadlineResult = {
      deadlineMs,
      clients,
      seconds: warmupS + durationS,
      maxBatchSize,
      byStatus,
      failed: load.socketErrors + load.timeouts,
      late: load.late ?? 0,
      okPerS: load.rps,
      okP50: load.p50,
      okP99: load.p99,
      inferrerLagP99: gauge('p99'),
      inferrerLagMax: gauge('max'),
    };
    log(
      `  ${Object.entries(byStatus)
        .map(([k, s]) => `${k}: ${s.count} (max ${fmtMs(s.max)} ms)`)
        .join(
          ', ',
        )}; failed ${r.failed}; later than ${(deadlineMs + MARGIN_MS) / 1000} s: ${r.late} (${load.lateFirst ?? 0} of them a connection's first request); reconnects ${load.reconnected}; first requests waited up to ${fmtMs(load.openWaitMax ?? NaN)} ms in the load generator for their connections to open (not counted); the load generator's own event-loop delay p99 ${fmtMs(load.loopDelayP99 ?? NaN)} ms, max ${fmtMs(load.loopDelayMax ?? NaN)} ms`,
    );
    return r;
  } finally {
    await bc.stop();
  }
}

export function deadlineTable(r: DeadlineResult): string {
  return `${table(
    ['status', 'answers', 'max ms'],
    Object.entries(r.byStatus).map(([k, s]) => [k, s.count, fmtMs(s.max)]),
    ['l', 'r', 'r'],
  )}\n${r.clients} clients, ${r.seconds} s, deadline ${r.deadlineMs / 1000} s: ${fmt(r.okPerS, 1)} results/s (p50 ${fmtMs(r.okP50)} ms, p99 ${fmtMs(r.okP99)} ms); failed ${r.failed}; answers later than ${(r.deadlineMs + MARGIN_MS) / 1000} s: ${r.late}; the Inferrer's event-loop delay p99 ${fmtMs(r.inferrerLagP99)} ms, max ${fmtMs(r.inferrerLagMax)} ms`;
}
