/** Renders nginx/nginx.conf.template for a local cluster and finds the nginx binary. */
import { execFileSync } from 'node:child_process';
import { constants, openSync } from 'node:fs';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT } from './paths.ts';

export const NGINX_TEMPLATE = path.join(REPO_ROOT, 'nginx', 'nginx.conf.template');

export interface NginxOptions {
  prefix: string;
  listen: string;
  upstreams: string[];
  balance: 'least_conn' | 'hash';
  maxBodyBytes: number;
  requestTimeoutMs: number;
  workerProcesses: number | 'auto';
  accessLog: string;
}

/** nginx on the PATH (or in /usr/sbin, where Debian puts it), else undefined. */
export function findNginx(): string | undefined {
  for (const candidate of ['nginx', '/usr/sbin/nginx', '/usr/local/sbin/nginx']) {
    try {
      execFileSync(candidate, ['-v'], { stdio: 'ignore' });
      return candidate;
    } catch {
      // try the next
    }
  }
  return undefined;
}

export function renderNginxConf(template: string, vars: Record<string, string>): string {
  return template.replace(/\{\{([A-Z_]+)\}\}/g, (_m, name: string) => {
    const v = vars[name];
    if (v === undefined) throw new Error(`nginx template needs ${name}`);
    return v;
  });
}

/** Writes the rendered config and the temp folders under `prefix`; returns the config path. */
export async function writeNginxConf(opts: NginxOptions): Promise<string> {
  await mkdir(opts.prefix, { recursive: true });
  for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) {
    await mkdir(path.join(opts.prefix, d), { recursive: true });
    await chmod(path.join(opts.prefix, d), 0o777);
  }
  const text = renderNginxConf(await readFile(NGINX_TEMPLATE, 'utf8'), {
    USER_DIRECTIVE: process.getuid?.() === 0 ? 'user root root;' : '',
    NGINX_WORKER_PROCESSES: String(opts.workerProcesses),
    PREFIX: opts.prefix,
    ACCESS_LOG: opts.accessLog,
    BALANCE_DIRECTIVE: opts.balance === 'hash' ? 'hash $inferrer_model consistent;' : 'least_conn;',
    UPSTREAM_SERVERS: opts.upstreams.map((u) => `        server ${u} max_fails=3 fail_timeout=5s;`).join('\n'),
    LISTEN: opts.listen,
    MAX_BODY_BYTES: String(opts.maxBodyBytes),
    REQUEST_TIMEOUT_S: String(Math.max(1, Math.ceil(opts.requestTimeoutMs / 1000))),
  });
  const file = path.join(opts.prefix, 'nginx.conf');
  await writeFile(file, text);
  return file;
}

/**
 * nginx cannot open /dev/stdout when its stdout is a socket (as under Node's spawn), so the launcher
 * gives it a FIFO as access log and reads lines from there. Opened read-write, so the reader never sees
 * end-of-file when nginx restarts.
 */
export function followFifo(prefix: string, onLine: (line: string) => void): { path: string; close(): void } {
  const fifo = path.join(prefix, 'access.fifo');
  try {
    execFileSync('mkfifo', [fifo], { stdio: 'ignore' });
  } catch {
    // exists already
  }
  // A libuv pipe handle (not a file stream), so reads wait in epoll and close() ends them.
  const stream = new net.Socket({ fd: openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK), readable: true, writable: false });
  createInterface({ input: stream, crlfDelay: Infinity }).on('line', onLine);
  stream.on('error', () => {});
  return { path: fifo, close: () => stream.destroy() };
}
