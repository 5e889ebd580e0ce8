/**
 * `inferrer bench <model>`: what `pnpm bench` measures for one served model, against any Inferrer. Each
 * load point is one autocannon run at N concurrent clients: a warm-up, then a measured window; only
 * answers that complete inside the window count. Latencies come from autocannon's per-response timings
 * (sub-millisecond), 2xx only; errors are non-2xx answers, socket errors and timeouts over the whole run.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import type { InferrerClient } from '../client.ts';
import { type Io, json, table } from '../output.ts';
import { type Context, act, positiveInt } from './common.ts';
import { parseValues } from './predict.ts';

export interface LoadPoint {
  connections: number;
  seconds: number;
  ok: number;
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  errors: number;
  statusCodes: Record<string, number>;
}

interface Target {
  url: string;
  headers: Record<string, string>;
  body: Buffer;
  what: string;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** One autocannon run: warm-up + window seconds. */
export async function measure(t: Target, connections: number, warmupS: number, durationS: number): Promise<LoadPoint> {
  const { default: autocannon } = await import('autocannon');
  return new Promise((resolve, reject) => {
    let samples = new Float64Array(1 << 14);
    let n = 0;
    const statusCodes: Record<string, number> = {};
    let errors = 0;
    let windowStart = Number.POSITIVE_INFINITY;
    let windowEnd = Number.POSITIVE_INFINITY;
    const instance = autocannon(
      {
        url: t.url,
        method: 'POST',
        headers: t.headers,
        body: t.body,
        connections,
        pipelining: 1,
        // One extra second so the window is over before autocannon tears connections down.
        duration: warmupS + durationS + 1,
        timeout: 30,
      },
      (err) => {
        if (err) return reject(err);
        const sorted = samples.subarray(0, n).sort();
        resolve({
          connections,
          seconds: durationS,
          ok: n,
          rps: n / durationS,
          p50: percentile(sorted, 50),
          p90: percentile(sorted, 90),
          p99: percentile(sorted, 99),
          max: n ? sorted[n - 1]! : Number.NaN,
          errors,
          statusCodes,
        });
      },
    );
    setTimeout(() => {
      windowStart = performance.now();
      windowEnd = windowStart + durationS * 1000;
    }, warmupS * 1000);
    instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
      statusCodes[status] = (statusCodes[status] ?? 0) + 1;
      if (status < 200 || status >= 300) {
        errors++;
        return;
      }
      const now = performance.now();
      if (now < windowStart || now > windowEnd) return;
      if (n === samples.length) {
        const bigger = new Float64Array(samples.length * 2);
        bigger.set(samples);
        samples = bigger;
      }
      samples[n++] = ms;
    });
    instance.on('reqError', () => errors++);
  });
}

/** A row of zeros for a model with one numeric input: what to send when no values are given. */
async function zeroRow(client: InferrerClient, model: string): Promise<unknown> {
  const m = (
    await client.get<{ model: { inputs: { name: string; type: string; shape: (number | string)[] }[] } }>(`/api/v1/models/${encodeURIComponent(model)}`)
  ).body.model;
  const input = m.inputs[0];
  if (m.inputs.length !== 1 || !input || input.type === 'string' || input.type === 'bool') {
    throw new Error(
      `model ${model} has ${m.inputs.length === 1 ? `a ${input?.type} input` : `${m.inputs.length} inputs`}: give the request's values with --values (or images with --image)`,
    );
  }
  // Dimensions after the batch axis; symbolic ones become 1.
  const dims = input.shape.slice(1).map((d) => (typeof d === 'number' && d > 0 ? d : 1));
  const make = (k: number): unknown => (k === dims.length ? 0 : Array.from({ length: dims[k]! }, () => make(k + 1)));
  return make(0);
}

function connectionsList(value: string): number[] {
  const list = value.split(',').map((s) => Number(s.trim()));
  if (list.length === 0 || list.some((c) => !Number.isInteger(c) || c < 1 || c > 10_000))
    throw new InvalidArgumentError('a comma-separated list of client counts, e.g. 1,8,32');
  return list;
}

export function registerBench(program: Command, ctx: Context): void {
  program
    .command('bench')
    .description('load one model at several client counts and print requests/s and latency percentiles')
    .argument('<model>', 'model name')
    .option('--values <json>', 'the values each request sends (default: a row of zeros shaped like the model input)', parseValues)
    .option('--image <file>', 'send this image file (multipart) instead of values')
    .option('-c, --connections <list>', 'concurrent clients per load point', connectionsList, [1, 8, 32])
    .option('-d, --duration <s>', 'measured seconds per load point', positiveInt('--duration'), 10)
    .option(
      '--warmup <s>',
      'seconds of load before each window',
      (v) => {
        const n = Number(v);
        if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('--warmup must be a number of seconds ≥ 0');
        return n;
      },
      2,
    )
    .option('--version <n>', 'a model version', positiveInt('--version'))
    .addHelpText(
      'after',
      `
Example:
  inferrer bench iris --values '[5.1, 3.5, 1.4, 0.2]' -c 1,32,128 -d 10

The load generator runs in this process: on the machine that serves, it takes CPU from the cluster (pnpm
bench runs it in its own process and compares against baselines; see bench/README.md).`,
    )
    .action(
      act(
        async (
          model: string,
          opts: { values?: unknown; image?: string; connections: number[]; duration: number; warmup: number; version?: number },
          cmd: Command,
        ) => {
          const io: Io = ctx.io(cmd);
          const client = ctx.client(cmd);
          const q = new URLSearchParams();
          if (opts.version !== undefined) q.set('version', String(opts.version));
          const url = `${client.url}/api/v1/models/${encodeURIComponent(model)}/prediction${q.size ? `?${q}` : ''}`;
          const auth: Record<string, string> = client.apiKey ? { authorization: `Bearer ${client.apiKey}` } : {};
          let target: Target;
          if (opts.image) {
            const boundary = '----inferrer-bench';
            const head = Buffer.from(
              `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${path.basename(opts.image).replace(/["\r\n]/g, '_')}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
            );
            const body = Buffer.concat([head, await readFile(opts.image), Buffer.from(`\r\n--${boundary}--\r\n`)]);
            target = {
              url,
              headers: { ...auth, 'content-type': `multipart/form-data; boundary=${boundary}` },
              body,
              what: `the image ${path.basename(opts.image)}`,
            };
          } else {
            const values = opts.values ?? (await zeroRow(client, model));
            const body = Buffer.from(
              JSON.stringify(values && typeof values === 'object' && !Array.isArray(values) && 'values' in values ? values : { values }),
            );
            target = {
              url,
              headers: { ...auth, 'content-type': 'application/json' },
              body,
              what: body.length > 80 ? `${body.length} bytes of JSON` : body.toString(),
            };
          }
          // One request first: a refused one (a wrong shape, an unknown model) says why before any load.
          await client.request('POST', url.slice(client.url.length), { data: target.body, headers: target.headers });
          const say = io.json ? io.err : io.out;
          say(`POST ${url} with ${target.what}; ${opts.warmup} s warm-up + ${opts.duration} s per point`);
          const points: LoadPoint[] = [];
          for (const c of opts.connections) {
            if (!io.json && io.tty) io.err(`… ${c} client${c === 1 ? '' : 's'}`);
            points.push(await measure(target, c, opts.warmup, opts.duration));
          }
          if (io.json) io.out(json({ url, body: target.what, warmupS: opts.warmup, durationS: opts.duration, points }));
          else {
            const ms = (x: number): string => (Number.isNaN(x) ? '-' : x.toFixed(x < 10 ? 2 : 1));
            io.out(
              table(
                ['clients', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'errors'],
                points.map((p) => [p.connections, Math.round(p.rps), ms(p.p50), ms(p.p90), ms(p.p99), ms(p.max), p.errors]),
              ),
            );
            const codes = new Set(points.flatMap((p) => Object.keys(p.statusCodes).filter((s) => !s.startsWith('2'))));
            if (codes.size) io.out(`errors by status: ${[...codes].map((s) => `${s}: ${points.reduce((a, p) => a + (p.statusCodes[s] ?? 0), 0)}`).join(', ')}`);
          }
          return points.every((p) => p.ok > 0) ? 0 : 1;
        },
      ),
    );
}
