/**
 * `inferrer jobs …`: batch jobs against an Inferrer (docs/jobs.md).
 *   submit <model> <file> [--wait] [--out FILE] [--format F] [--version N]   the file is streamed, never read whole
 *   status <id> | wait <id> | results <id> [--out FILE] | cancel <id> | delete <id> | list
 * `submit --wait` and `wait` follow the job with a progress bar until it ends, then exit by its final
 * state: 0 SUCCEEDED, 3 PARTIAL, 1 FAILED or CANCELLED.
 */
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { Option } from 'commander';
import type { InferrerClient } from '../client.ts';
import { type Io, fields, json, seconds, table } from '../output.ts';
import { type Context, act, positiveInt } from './common.ts';

const TYPES: Record<string, string> = {
  ndjson: 'application/x-ndjson',
  jsonl: 'application/x-ndjson',
  csv: 'text/csv',
  zip: 'application/zip',
  tar: 'application/x-tar',
  tgz: 'application/gzip',
  gz: 'application/gzip',
};

const FINAL = new Set(['SUCCEEDED', 'PARTIAL', 'FAILED', 'CANCELLED']);

export interface JobStatus {
  id: string;
  model: string;
  version: number | null;
  state: string;
  format: string;
  items: { total: number; done: number; succeeded: number; failed: number };
  rate: number | null;
  eta_s: number | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  error?: { code: string; message: string };
  results: string;
}

/** The exit code for a job's final state (docs/jobs.md#states). */
export function exitCodeOf(state: string): number {
  return state === 'SUCCEEDED' ? 0 : state === 'PARTIAL' ? 3 : 1;
}

export function progressLine(j: { state: string; items: { total: number; done: number; failed: number }; rate: number | null; eta_s: number | null }): string {
  const width = 30;
  const frac = j.items.total > 0 ? j.items.done / j.items.total : 0;
  const filled = Math.round(frac * width);
  const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
  const rate = j.rate === null ? '' : `, ${j.rate.toFixed(j.rate < 10 ? 1 : 0)} items/s`;
  const eta = j.eta_s === null || j.state !== 'RUNNING' ? '' : `, ETA ${seconds(j.eta_s)}`;
  return `[${bar}] ${(frac * 100).toFixed(0).padStart(3)}% ${j.items.done}/${j.items.total} (${j.items.failed} failed) ${j.state}${rate}${eta}`;
}

function statusFields(base: string, j: JobStatus): string {
  return fields([
    ['job', j.id],
    ['model', `${j.model}${j.version === null ? '' : ` version ${j.version}`}`],
    ['state', j.state],
    ['items', `${j.items.done}/${j.items.total} done: ${j.items.succeeded} succeeded, ${j.items.failed} failed`],
    ['rate', j.rate === null ? '-' : `${j.rate} items/s`],
    ['eta', j.eta_s === null || j.state !== 'RUNNING' ? '-' : seconds(j.eta_s)],
    ['format', j.format],
    ['created', j.created_at],
    ['started', j.started_at],
    ['finished', j.finished_at],
    ...(j.error ? ([['error', `${j.error.code}: ${j.error.message}`]] as [string, unknown][]) : []),
    ['results', `${base}${j.results}`],
  ]);
}

/** Polls the job, drawing its progress, until it ends. Progress goes to stdout for people, stderr with --json. */
async function follow(client: InferrerClient, id: string, io: Io): Promise<JobStatus> {
  const say = io.json ? io.err : io.out;
  const tty = io.json ? io.tty : process.stdout.isTTY === true;
  const write = (s: string): void => void (io.json ? process.stderr : process.stdout).write(s);
  let lastLine = 0;
  let misses = 0;
  for (;;) {
    let j: JobStatus;
    try {
      j = (await client.get<{ job: JobStatus }>(`/api/v1/jobs/${encodeURIComponent(id)}`)).body.job;
      misses = 0;
    } catch (err) {
      // The Inferrer may be restarting: the job goes on without it. Refusals (404) end here.
      if ((err as { status?: number }).status !== undefined || ++misses > 120) throw err;
      await new Promise((r) => setTimeout(r, 500));
      continue;
    }
    const end = FINAL.has(j.state);
    const line = progressLine(j);
    if (tty) write(`\r${line}\x1b[K${end ? '\n' : ''}`);
    else if (end || Date.now() - lastLine > 5000) {
      say(line);
      lastLine = Date.now();
    }
    if (end) return j;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Streams a job's results to a file (or stdout for "-"); resolves with the number of lines. */
async function download(client: InferrerClient, id: string, out: string): Promise<number> {
  const body = await client.stream(`/api/v1/jobs/${encodeURIComponent(id)}/results`);
  let lines = 0;
  const count = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      for (const b of chunk) if (b === 10) lines++;
      cb(null, chunk);
    },
  });
  if (out === '-') await pipeline(body, count, process.stdout, { end: false });
  else await pipeline(body, count, createWriteStream(out));
  return lines;
}

export function registerJobs(program: Command, ctx: Context): void {
  const jobs = program.command('jobs').description('batch jobs: submit a file of rows or images, follow it, fetch its results');

  jobs
    .command('submit')
    .description('submit a file (NDJSON or CSV rows, or a zip/tar of images) as a batch job')
    .argument('<model>', 'model name')
    .argument('<file>', 'the input file (streamed)')
    .option('-w, --wait', 'follow the job with a progress bar until it ends, then write its results; exit 0 SUCCEEDED, 3 PARTIAL, 1 FAILED/CANCELLED')
    .option('-o, --out <file>', 'with --wait: where the results go (default: <file>.results.ndjson; - for standard output)')
    .addOption(new Option('--format <format>', 'the input format (default: from the file name, else the first bytes)').choices(['ndjson', 'csv', 'zip', 'tar']))
    .option('--version <n>', 'pin a model version', positiveInt('--version'))
    .action(
      act(async (model: string, file: string, opts: { wait?: boolean; out?: string; format?: string; version?: number }, cmd: Command) => {
        const io = ctx.io(cmd);
        const client = ctx.client(cmd);
        const ext = path.extname(file).slice(1).toLowerCase();
        const type = TYPES[opts.format ?? ext] ?? 'application/octet-stream';
        const a = await client.upload<{ job: JobStatus }>(
          'POST',
          `/api/v1/models/${encodeURIComponent(model)}/jobs`,
          file,
          { 'content-type': type },
          undefined,
          { format: opts.format, version: opts.version },
        );
        const job = a.body.job;
        if (!opts.wait) {
          io.out(io.json ? json(job) : `job ${job.id}: ${job.items.total} items for model ${job.model} (${client.url}${a.headers.location ?? ''})`);
          return 0;
        }
        if (!io.json) io.out(`job ${job.id}: ${job.items.total} items for model ${job.model} (${client.url}${a.headers.location ?? ''})`);
        const final = await follow(client, job.id, io);
        const out = opts.out ?? `${file}.results.ndjson`;
        const n = await download(client, job.id, out);
        if (io.json) io.out(json(final));
        else
          io.out(
            `job ${job.id} ${final.state}: ${final.items.succeeded} succeeded, ${final.items.failed} failed; ${n} results written to ${out === '-' ? 'standard output' : out}`,
          );
        return exitCodeOf(final.state);
      }),
    );

  jobs
    .command('status')
    .description("a job's state, progress, rate and ETA")
    .argument('<id>', 'job id')
    .action(
      act(async (id: string, _opts: unknown, cmd: Command) => {
        const io = ctx.io(cmd);
        const client = ctx.client(cmd);
        const a = await client.get<{ job: JobStatus }>(`/api/v1/jobs/${encodeURIComponent(id)}`);
        io.out(io.json ? json(a.body.job) : statusFields(client.url, a.body.job));
        return 0;
      }),
    );

  jobs
    .command('wait')
    .description('follow a job until it ends; exit 0 SUCCEEDED, 3 PARTIAL, 1 FAILED or CANCELLED')
    .argument('<id>', 'job id')
    .action(
      act(async (id: string, _opts: unknown, cmd: Command) => {
        const io = ctx.io(cmd);
        const final = await follow(ctx.client(cmd), id, io);
        io.out(io.json ? json(final) : `job ${final.id} ${final.state}: ${final.items.succeeded} succeeded, ${final.items.failed} failed`);
        return exitCodeOf(final.state);
      }),
    );

  jobs
    .command('results')
    .description("write a job's results (NDJSON, input order; while it runs, the finished part)")
    .argument('<id>', 'job id')
    .option('-o, --out <file>', 'where they go (default: <id>.results.ndjson; - for standard output)')
    .action(
      act(async (id: string, opts: { out?: string }, cmd: Command) => {
        const io = ctx.io(cmd);
        const out = opts.out ?? `${id}.results.ndjson`;
        const n = await download(ctx.client(cmd), id, out);
        if (out !== '-') io.out(io.json ? json({ id, results: n, file: out }) : `${n} results written to ${out}`);
        return 0;
      }),
    );

  jobs
    .command('cancel')
    .description('cancel a queued or running job (its results so far are kept)')
    .argument('<id>', 'job id')
    .action(
      act(async (id: string, _opts: unknown, cmd: Command) => {
        const io = ctx.io(cmd);
        const a = await ctx.client(cmd).request<{ job: JobStatus }>('DELETE', `/api/v1/jobs/${encodeURIComponent(id)}`);
        const j = a.body.job;
        io.out(io.json ? json(j) : `job ${j.id} ${j.state} (${j.items.done}/${j.items.total} items done)`);
        return 0;
      }),
    );

  jobs
    .command('delete')
    .description('remove a finished job and its files now')
    .argument('<id>', 'job id')
    .action(
      act(async (id: string, _opts: unknown, cmd: Command) => {
        const io = ctx.io(cmd);
        await ctx.client(cmd).request('DELETE', `/api/v1/jobs/${encodeURIComponent(id)}`, { params: { purge: 'true' } });
        io.out(io.json ? json({ removed: id }) : `job ${id} removed`);
        return 0;
      }),
    );

  jobs
    .command('list')
    .alias('ls')
    .description('your jobs (with an admin key: every job), newest last')
    .option('--model <name>', 'only this model’s jobs')
    .addOption(
      new Option('--state <state>', 'only jobs in this state').choices(['RECEIVING', 'QUEUED', 'RUNNING', 'SUCCEEDED', 'PARTIAL', 'FAILED', 'CANCELLED']),
    )
    .action(
      act(async (opts: { model?: string; state?: string }, cmd: Command) => {
        const io = ctx.io(cmd);
        const a = await ctx.client(cmd).get<{ jobs: JobStatus[] }>('/api/v1/jobs', { model: opts.model, state: opts.state });
        if (io.json) {
          io.out(json(a.body.jobs));
          return 0;
        }
        if (a.body.jobs.length === 0) {
          io.out('no jobs');
          return 0;
        }
        io.out(
          table(
            ['id', 'model', 'state', 'done', 'failed', 'total', 'created'],
            a.body.jobs.map((j) => [j.id, j.model, j.state, j.items.done, j.items.failed, j.items.total, j.created_at]),
          ),
        );
        return 0;
      }),
    );
}
