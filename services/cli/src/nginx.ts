/**
 * Renders nginx/nginx.conf.template for a local cluster and finds the nginx binary. The rendering is
 * nginx/render.sh's, the one renderer of the template (the balancer image runs it too).
 */
import { execFile, execFileSync } from 'node:child_process';
import { constants, openSync } from 'node:fs';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { chmod } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './paths.ts';

export const NGINX_TEMPLATE = path.join(REPO_ROOT, 'nginx', 'nginx.conf.template');
export const NGINX_RENDER = path.join(REPO_ROOT, 'nginx', 'render.sh');

export interface NginxOptions {
  prefix: string;
  listen: string;
  upstreams: string[];
  balance: 'least_conn' | 'hash' | 'placement';
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

/** Writes the rendered config and the temp folders under `prefix` (nginx/render.sh); returns the config path. */
export async function writeNginxConf(opts: NginxOptions): Promise<string> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    NGINX_TEMPLATE,
    NGINX_PREFIX: opts.prefix,
    MODELHOST_UPSTREAMS: opts.upstreams.join(','),
    BALANCE: opts.balance,
    LISTEN: opts.listen,
    MAX_BODY_BYTES: String(opts.maxBodyBytes),
    REQUEST_TIMEOUT_MS: String(opts.requestTimeoutMs),
    NGINX_WORKER_PROCESSES: String(opts.workerProcesses),
    ACCESS_LOG: opts.accessLog,
  };
  let file: string;
  try {
    file = (await promisify(execFile)('sh', [NGINX_RENDER], { env, encoding: 'utf8' })).stdout.trim();
  } catch (err) {
    throw new Error(`nginx config: ${((err as { stderr?: string }).stderr ?? '').trim() || (err as Error).message}`);
  }
  for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) await chmod(path.join(opts.prefix, d), 0o777);
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
