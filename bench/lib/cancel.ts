/**
 * Cancelled work (`--only cancel`): ResNet-50 over v2 binary at 16 steady clients, alone and with 64 more
 * clients that give up after 200 ms (each closes its connection and sends its next request at once). The
 * steady clients' goodput with the quitters beside them should stay within 10 % of their goodput alone:
 * the quitters' requests leave the modelhosts' queues when their clients go, instead of taking the model's
 * time. The steady load runs alone before and after, and the quitters' run is compared with their mean.
 *
 * Batching is off (max_batch_size 1). Cancellation saves the work of requests still queued when their
 * clients go; a request that runs is computed. With batching on, a batch is cut from whatever is queued
 * when a slot frees, and the steady clients' requests return to the queue a few milliseconds after their
 * batch ends: by then the slot has cut a batch of quitters' requests, which run (and whose answers are
 * dropped) while the steady ones wait. Without batching the oldest request runs next, and that is a
 * steady one whenever one is queued.
 */
import { fork } from 'node:child_process';
import path from 'node:path';
import type { BenchOptions } from './options.ts';
import { clusterPids, startBenchCluster } from './cluster.ts';
import type { LoadResult } from './load.ts';
import { measure } from './measure.ts';
import { BENCH_DIR, CACHE_DIR } from './paths.ts';
import { imageBody } from './resnet.ts';
import { ensureResnet50 } from './resnet50.ts';
import { fmt, fmtMs, table } from './table.ts';

/** What bench/quitters.ts is told. */
export interface QuitterSpec {
  url: string;
  headers: Record<string, string>;
  /** base64 */
  body: string;
  clients: number;
  giveUpMs: number;
  seconds: number;
}

/** What bench/quitters.ts saw. */
export interface QuitterResult {
  sent: number;
  answered: number;
  gaveUp: number;
  /** Answers other than 2xx, and connection errors other than its own giving up. */
  errors: number;
}

export interface CancelRun {
  name: string;
  load: LoadResult;
  quitters?: QuitterResult;
  /** Over the run, summed over the modelhosts: model runs (batches), rows, and cancelled requests by stage. */
  batches: number;
  rows: number;
  cancelledQueued: number;
  cancelledRunning: number;
  /** Cores each server process used over the measured window, and the rest of the machine (the quitters among it). */
  cores?: Record<string, number>;
}

export interface CancelResult {
  clients: number;
  quitters: number;
  giveUpMs: number;
  balancer: string;
  modelhosts: number;
  runs: CancelRun[];
  /** Steady goodput with quitters ÷ the mean of the steady runs alone. */
  ratio: number;
}

const QUITTERS = 64;
const GIVE_UP_MS = 200;

function runQuitters(spec: QuitterSpec): Promise<QuitterResult> {
  return new Promise((resolve, reject) => {
    const child = fork(path.join(BENCH_DIR, 'quitters.ts'), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let answered = false;
    child.on('message', (msg: { type: 'result'; result: QuitterResult } | { type: 'error'; error: string }) => {
      answered = true;
      if (msg.type === 'error') reject(new Error(`quitters failed: ${msg.error}`));
      else resolve(msg.result);
    });
    child.once('exit', (code, signal) => {
      if (!answered) reject(new Error(`quitters exited (${signal ?? code}) without a result`));
    });
    child.send(spec);
  });
}

async function counters(urls: string[], model: string): Promise<{ batches: number; rows: number; queued: number; running: number }> {
  const out = { batches: 0, rows: 0, queued: 0, running: 0 };
  for (const url of urls) {
    const text = await (await fetch(`${url}/metrics`)).text();
    for (const line of text.split('\n')) {
      if (!line.includes(`model="${model}"`)) continue;
      const v = Number(line.slice(line.lastIndexOf(' ') + 1));
      if (line.startsWith('modelhost_batch_size_count{')) out.batches += v;
      else if (line.startsWith('modelhost_batch_size_sum{')) out.rows += v;
      else if (line.startsWith('modelhost_requests_cancelled_total{')) {
        if (line.includes('stage="running"')) out.running += v;
        else out.queued += v;
      }
    }
  }
  return out;
}

export async function runCancel(opts: BenchOptions, log: (line: string) => void): Promise<CancelResult> {
  const o = opts.resnet;
  const model = await ensureResnet50(CACHE_DIR);
  const { pixels } = imageBody();
  const header = Buffer.from(
    `{"inputs":[{"name":"input","shape":[1,3,224,224],"datatype":"FP32","parameters":{"binary_data_size":${pixels.byteLength}}}],"outputs":[{"name":"logits","parameters":{"binary_data":true}}]}`,
  );
  const body = Buffer.concat([header, Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength)]);
  const name = 'resnet50';
  const bc = await startBenchCluster({
    modelhosts: opts.modelhosts,
    models: [{ name, file: model.file, description: 'ResNet-50 (bench)', config: { preload: true, batching: { max_batch_size: 1 } } }],
  });
  try {
    const urls = bc.cluster.modelhosts.map((m) => m.url);
    const url = `${bc.url}/v2/models/${name}/infer`;
    const headers = { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) };
    const check = await fetch(url, { method: 'POST', headers, body: new Uint8Array(body) });
    if (check.status !== 200) throw new Error(`${name} answered ${check.status}: ${(await check.text()).slice(0, 300)}`);
    await check.arrayBuffer();

    const run = async (runName: string, withQuitters: boolean): Promise<CancelRun> => {
      const before = await counters(urls, name);
      const quitters = withQuitters
        ? runQuitters({ url, headers, body: body.toString('base64'), clients: QUITTERS, giveUpMs: GIVE_UP_MS, seconds: o.warmupS + o.durationS })
        : undefined;
      const m = await measure(
        {
          url,
          method: 'POST',
          headers,
          body: body.toString('base64'),
          bodyEncoding: 'base64',
          connections: o.clients,
          warmupS: o.warmupS,
          durationS: o.durationS,
          timeoutS: 60,
        },
        clusterPids(bc),
      );
      const q = await quitters;
      // Let the last given-up requests reach the counters.
      await new Promise((r) => setTimeout(r, 500));
      const after = await counters(urls, name);
      const r: CancelRun = {
        name: runName,
        load: m.load,
        ...(q ? { quitters: q } : {}),
        batches: after.batches - before.batches,
        rows: after.rows - before.rows,
        cancelledQueued: after.queued - before.queued,
        cancelledRunning: after.running - before.running,
      };
      if (m.cpu) {
        const cores: Record<string, number> = {};
        for (const [k, us] of Object.entries(m.cpu.perRequestUs)) cores[k] = (us * m.load.ok) / 1e6 / m.load.seconds;
        cores.generator = (m.cpu.generatorUsPerRequest * m.load.ok) / 1e6 / m.load.seconds;
        cores.other = m.cpu.otherCores;
        r.cores = cores;
      }
      log(
        `  ${runName}: ${fmt(r.load.rps, 1)} images/s to the ${o.clients} steady clients, p50 ${fmtMs(r.load.p50)} ms, p99 ${fmtMs(r.load.p99)} ms, errors ${r.load.errors}; ` +
          `model ran ${r.rows} rows; cancelled: ${r.cancelledQueued} while queued, ${r.cancelledRunning} while running` +
          (q ? `; quitters sent ${q.sent}, gave up ${q.gaveUp}, answered in time ${q.answered}, errors ${q.errors}` : '') +
          (r.cores
            ? `; cores: ${Object.entries(r.cores)
                .map(([k, v]) => `${k} ${fmt(v, 2)}`)
                .join(', ')}`
            : ''),
      );
      return r;
    };
    const alone1 = await run('steady alone', false);
    const mixed = await run(`steady + ${QUITTERS} quitters`, true);
    const alone2 = await run('steady alone again', false);
    const ratio = mixed.load.rps / ((alone1.load.rps + alone2.load.rps) / 2);
    return {
      clients: o.clients,
      quitters: QUITTERS,
      giveUpMs: GIVE_UP_MS,
      balancer: bc.cluster.balancer.description,
      modelhosts: opts.modelhosts,
      runs: [alone1, mixed, alone2],
      ratio,
    };
  } finally {
    await bc.stop();
  }
}

export function cancelTable(r: CancelResult): string {
  return table(
    ['ResNet-50, v2 binary', 'steady images/s', 'p50 ms', 'p99 ms', 'errors', 'rows run', 'cancelled queued', 'cancelled running', 'quitters sent', 'gave up'],
    r.runs.map((x) => [
      x.name,
      fmt(x.load.rps, 1),
      fmtMs(x.load.p50),
      fmtMs(x.load.p99),
      x.load.errors,
      x.rows,
      x.cancelledQueued,
      x.cancelledRunning,
      x.quitters?.sent ?? '-',
      x.quitters?.gaveUp ?? '-',
    ]),
    ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
  );
}
