/**
 * `inferrer jobs …`: batch jobs against a running Inferrer.
 *   inferrer jobs submit <model> <file> [--wait] [--out FILE] [--format ndjson|csv|zip|tar] [--version N]
 *   inferrer jobs status <id> | results <id> [--out FILE] | cancel <id> | list
 * The file is streamed (never read whole); --wait shows a progress bar until the job ends, then writes the
 * results (NDJSON, input order) to --out (default: <file>.results.ndjson).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';

export const JOBS_USAGE = `usage: inferrer jobs submit <model> <file> [--wait] [--out FILE] [--format ndjson|csv|zip|tar] [--version N]
       inferrer jobs status <id>
       inferrer jobs results <id> [--out FILE]
       inferrer jobs cancel <id>
       inferrer jobs list

  --url URL     the Inferrer (default: INFERRER_URL, else http://127.0.0.1:PORT)
  INFERRER_API_KEY=<key> is sent as Authorization: Bearer <key>.`;

const TYPES: Record<string, string> = { ndjson: 'application/x-ndjson', jsonl: 'application/x-ndjson', csv: 'text/csv', zip: 'application/zip', tar: 'application/x-tar', tgz: 'application/gzip', gz: 'application/gzip' };

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: any;
}

export interface JobsCommandOptions {
  url: string;
  apiKey: string | undefined;
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
  /** Progress on one rewritten line (a terminal) or a line every few seconds. */
  tty: boolean;
}

export async function jobsCommand(argv: string[], o: JobsCommandOptions): Promise<number> {
  const { positional, flags } = parseArgs(argv);
  const base = String(flags.url ?? o.url).replace(/\/+$/, '');
  const headers: Record<string, string> = o.apiKey ? { authorization: `Bearer ${o.apiKey}` } : {};
  const say = (s: string): void => void o.out.write(`${s}\n`);
  const fail = (a: Answer): number => {
    o.err.write(`error ${a.status}: ${a.body?.error?.code ?? ''} ${a.body?.error?.message ?? JSON.stringify(a.body)}\n`);
    return 1;
  };
  const [sub, ...rest] = positional;
  switch (sub) {
    case 'submit': {
      const [model, file] = rest;
      if (!model || !file) return usage(o);
      const size = (await stat(file)).size;
      const ext = path.extname(file).slice(1).toLowerCase();
      const format = typeof flags.format === 'string' ? flags.format : undefined;
      const q = new URLSearchParams();
      if (format) q.set('format', format);
      if (typeof flags.version === 'string') q.set('version', flags.version);
      const type = TYPES[format ?? ext] ?? 'application/octet-stream';
      const a = await request(`${base}/api/v1/models/${encodeURIComponent(model)}/jobs${q.size ? `?${q}` : ''}`, 'POST', { ...headers, 'content-type': type, 'content-length': String(size) }, file);
      if (a.status !== 202) return fail(a);
      const job = a.body.job;
      say(`job ${job.id}: ${job.items.total} items for model ${job.model} (${base}${a.headers.location ?? ''})`);
      if (!flags.wait) return 0;
      const final = await follow(base, job.id, headers, o);
      if (!final) return 1;
      const outFile = typeof flags.out === 'string' ? flags.out : `${file}.results.ndjson`;
      const n = await download(`${base}/api/v1/jobs/${job.id}/results`, headers, outFile);
      say(`job ${job.id} ${final.state}: ${final.items.succeeded} succeeded, ${final.items.failed} failed; ${n} results written to ${outFile}`);
      return final.state === 'SUCCEEDED' ? 0 : final.state === 'PARTIAL' ? 3 : 1;
    }
    case 'status': {
      if (!rest[0]) return usage(o);
      const a = await request(`${base}/api/v1/jobs/${encodeURIComponent(rest[0])}`, 'GET', headers);
      if (a.status !== 200) return fail(a);
      say(JSON.stringify(a.body.job, null, 2));
      return 0;
    }
    case 'results': {
      if (!rest[0]) return usage(o);
      const outFile = typeof flags.out === 'string' ? flags.out : `${rest[0]}.results.ndjson`;
      const n = await download(`${base}/api/v1/jobs/${encodeURIComponent(rest[0])}/results`, headers, outFile);
      say(`${n} results written to ${outFile}`);
      return 0;
    }
    case 'cancel': {
      if (!rest[0]) return usage(o);
      const a = await request(`${base}/api/v1/jobs/${encodeURIComponent(rest[0])}`, 'DELETE', headers);
      if (a.status !== 200) return fail(a);
      say(`job ${a.body.job.id} ${a.body.job.state} (${a.body.job.items.done}/${a.body.job.items.total} items done)`);
      return 0;
    }
    case 'list': {
      const a = await request(`${base}/api/v1/jobs`, 'GET', headers);
      if (a.status !== 200) return fail(a);
      for (const j of a.body.jobs) say(`${j.id}  ${j.state.padEnd(9)}  ${j.model}  ${j.items.done}/${j.items.total} (${j.items.failed} failed)  ${j.created_at}`);
      return 0;
    }
    default:
      return usage(o);
  }
}

function usage(o: JobsCommandOptions): number {
  o.err.write(`${JOBS_USAGE}\n`);
  return 2;
}

function parseArgs(argv: string[]): { positional: string[]; flags: Record<string, string | true> } {
  const positional: string[] = [];
  const flags: Record<string, string | true> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) {
      positional.push(a);
      continue;
    }
    const [k, v] = a.slice(2).split('=', 2) as [string, string | undefined];
    if (k === 'wait') flags.wait = true;
    else flags[k] = v ?? argv[++i] ?? '';
  }
  return { positional, flags };
}

/** Polls the job, drawing a progress bar, until it ends. */
async function follow(base: string, id: string, headers: Record<string, string>, o: JobsCommandOptions): Promise<any> {
  let lastLine = 0;
  let misses = 0;
  for (;;) {
    let a: Answer;
    try {
      a = await request(`${base}/api/v1/jobs/${id}`, 'GET', headers);
      misses = 0;
    } catch (err) {
      // The Inferrer may be restarting: the job goes on without it.
      if (++misses > 120) throw err;
      await new Promise((r) => setTimeout(r, 500));
      continue;
    }
    if (a.status !== 200) {
      o.err.write(`\nerror ${a.status}: ${a.body?.error?.message ?? ''}\n`);
      return undefined;
    }
    const j = a.body.job;
    const end = ['SUCCEEDED', 'PARTIAL', 'FAILED', 'CANCELLED'].includes(j.state);
    const line = progressLine(j);
    if (o.tty) o.out.write(`\r${line}\x1b[K${end ? '\n' : ''}`);
    else if (end || Date.now() - lastLine > 5000) {
      o.out.write(`${line}\n`);
      lastLine = Date.now();
    }
    if (end) return j;
    await new Promise((r) => setTimeout(r, 250));
  }
}

export function progressLine(j: { state: string; items: { total: number; done: number; failed: number }; rate: number | null; eta_s: number | null }): string {
  const width = 30;
  const frac = j.items.total > 0 ? j.items.done / j.items.total : 0;
  const filled = Math.round(frac * width);
  const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
  const rate = j.rate === null ? '' : `, ${j.rate.toFixed(j.rate < 10 ? 1 : 0)} items/s`;
  const eta = j.eta_s === null || j.state !== 'RUNNING' ? '' : `, ETA ${fmtSeconds(j.eta_s)}`;
  return `[${bar}] ${(frac * 100).toFixed(0).padStart(3)}% ${j.items.done}/${j.items.total} (${j.items.failed} failed) ${j.state}${rate}${eta}`;
}

function fmtSeconds(s: number): string {
  if (s < 60) return `${Math.ceil(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.ceil(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.ceil((s % 3600) / 60)} min`;
}

function client(url: URL): typeof http | typeof https {
  return url.protocol === 'https:' ? https : http;
}

function request(raw: string, method: string, headers: Record<string, string>, file?: string): Promise<Answer> {
  const url = new URL(raw);
  return new Promise((resolve, reject) => {
    const req = client(url).request(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
    });
    req.on('error', reject);
    if (file) createReadStream(file).on('error', reject).pipe(req);
    else req.end();
  });
}

/** Streams the results to a file; resolves with the number of lines. */
function download(raw: string, headers: Record<string, string>, file: string): Promise<number> {
  const url = new URL(raw);
  return new Promise((resolve, reject) => {
    client(url)
      .get(url, { headers }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          return reject(new Error(`results: status ${res.statusCode}`));
        }
        let lines = 0;
        res.on('data', (c: Buffer) => {
          for (const b of c) if (b === 10) lines++;
        });
        pipeline(res, createWriteStream(file)).then(() => resolve(lines), reject);
      })
      .on('error', reject);
  });
}
