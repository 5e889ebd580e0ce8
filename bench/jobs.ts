/**
 * `pnpm bench:jobs`: online latency with and without a batch job running, on one cluster.
 *
 *   1. online iris predictions alone (autocannon, CLIENTS connections, DURATION s)
 *   2. a large iris job alone: its throughput (items/s) with no online traffic
 *   3. the same online load while the job runs: online p50/p99 and the job's items/s under it
 *
 * Options: --clients N (default 32)  --duration S (default 8)  --rows N (default 400000)  --quick  --no-write
 * Writes bench/results/jobs.json.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createReadStream } from 'node:fs';
import { startBenchCluster, stopAllClusters } from './lib/cluster.ts';
import { IRIS_BODY } from './lib/iris.ts';
import { type LoadResult, runLoad } from './lib/load.ts';
import { RESULTS_DIR } from './lib/paths.ts';
import { fmtMs, table } from './lib/table.ts';

const args = process.argv.slice(2).filter((a) => a !== '--');
const opt = (name: string, def: number): number => {
  const k = args.indexOf(`--${name}`);
  return k >= 0 ? Number(args[k + 1]) : def;
};
const quick = args.includes('--quick');
const clients = opt('clients', 32);
const durationS = opt('duration', quick ? 4 : 8);
const rows = opt('rows', quick ? 150_000 : 400_000);
const write = !args.includes('--no-write');

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void stopAllClusters().finally(() => process.exit(130)));
const started = performance.now();
const log = (s: string): void => void process.stdout.write(`[${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${s}\n`);

interface JobView {
  state: string;
  items: { total: number; done: number; failed: number };
  rate: number | null;
}

async function jobStatus(base: string, id: string): Promise<JobView> {
  return ((await (await fetch(`${base}/api/v1/jobs/${id}`)).json()) as { job: JobView }).job;
}

function submitFile(base: string, model: string, file: string, size: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const url = new URL(`${base}/api/v1/models/${model}/jobs`);
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', 'content-length': String(size) } }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () =>
        res.statusCode === 202
          ? resolve((JSON.parse(text) as { job: { id: string } }).job.id)
          : reject(new Error(`submit answered ${res.statusCode}: ${text}`)),
      );
    });
    req.on('error', reject);
    createReadStream(file).pipe(req);
  });
}

async function itemsPerSecond(base: string, id: string, ms: number): Promise<number> {
  const a = await jobStatus(base, id);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, ms));
  const b = await jobStatus(base, id);
  return (b.items.done - a.items.done) / ((performance.now() - t0) / 1000);
}

const tmp = await mkdtemp(path.join(os.tmpdir(), 'inferrer-bench-jobs-'));
const bc = await startBenchCluster({ modelhosts: 2, models: [] });
try {
  const base = bc.url;
  const spec = {
    url: `${base}/api/v1/models/iris/prediction`,
    method: 'POST' as const,
    headers: { 'content-type': 'application/json' },
    body: IRIS_BODY,
    connections: clients,
    warmupS: quick ? 1 : 2,
    durationS,
    timeoutS: 10,
  };
  log(`cluster up (${bc.cluster.balancer.description}, 2 modelhosts); ${os.cpus().length} CPUs`);

  log('warming up (online load, not measured)');
  await runLoad({ ...spec, warmupS: 0, durationS: 3 });
  log(`1. online alone: ${clients} clients, ${durationS} s`);
  const alone = await runLoad(spec);

  const file = path.join(tmp, 'rows.ndjson');
  const out = createWriteStream(file);
  const samples = ['[5.1,3.5,1.4,0.2]', '[6.7,2.5,5.8,1.8]', '[5.9,3.0,4.2,1.5]'];
  for (let i = 0; i < rows; i++) if (!out.write(`${samples[i % 3]}\n`)) await new Promise<void>((r) => out.once('drain', () => r()));
  await new Promise<void>((r) => out.end(() => r()));
  const size = (await stat(file)).size;
  const t0 = performance.now();
  const id = await submitFile(base, 'iris', file, size);
  log(`job ${id} submitted: ${rows} rows, ${(size / 1e6).toFixed(1)} MB in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  for (let i = 0; i < 100 && (await jobStatus(base, id)).state !== 'RUNNING'; i++) await new Promise((r) => setTimeout(r, 100));

  log('2. the job alone: 3 s of its progress');
  const jobAlone = await itemsPerSecond(base, id, 3000);

  log(`3. online while the job runs: ${clients} clients, ${durationS} s`);
  let before: JobView | undefined;
  let windowStart = 0;
  const withJob = await runLoad(spec, () => {
    windowStart = performance.now();
    void jobStatus(base, id).then((j) => (before = j));
  });
  const after = await jobStatus(base, id);
  const jobUnderLoad = before ? (after.items.done - before.items.done) / ((performance.now() - windowStart) / 1000) : NaN;
  const stillRunning = after.state === 'RUNNING';
  await fetch(`${base}/api/v1/jobs/${id}`, { method: 'DELETE' });

  const row = (name: string, r: LoadResult) => [name, String(Math.round(r.rps)), fmtMs(r.p50), fmtMs(r.p90), fmtMs(r.p99), fmtMs(r.max), String(r.errors)];
  process.stdout.write(
    `\n${table(['online iris', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'errors'], [row('alone', alone), row('with a job running', withJob)], ['l', 'r', 'r', 'r', 'r', 'r', 'r'])}\n`,
  );
  process.stdout.write(
    `\njob throughput: ${Math.round(jobAlone)} items/s alone, ${Math.round(jobUnderLoad)} items/s under the online load${stillRunning ? '' : ' (the job ended during the window: the figure is low)'}\n`,
  );
  process.stdout.write(`online p99 with the job ÷ without: ${(withJob.p99 / alone.p99).toFixed(2)}; req/s: ${(withJob.rps / alone.rps).toFixed(2)}\n`);
  if (write) {
    await mkdir(RESULTS_DIR, { recursive: true });
    const outFile = path.join(RESULTS_DIR, 'jobs.json');
    await writeFile(
      outFile,
      `${JSON.stringify({ date: new Date().toISOString(), cpus: os.cpus().length, clients, durationS, rows, alone, withJob, jobItemsPerSAlone: jobAlone, jobItemsPerSUnderLoad: jobUnderLoad, jobStillRunning: stillRunning }, null, 2)}\n`,
    );
    process.stdout.write(`written: ${path.relative(process.cwd(), outFile)}\n`);
  }
} finally {
  await bc.stop();
  await rm(tmp, { recursive: true, force: true });
}
process.exit(0);
