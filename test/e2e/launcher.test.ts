/**
 * The launcher as a user runs it (`pnpm start` = services/cli/src/main.ts): it prints a banner with a
 * working curl, and when it is killed outright (SIGKILL: it cannot stop anything), the services it
 * started stop by themselves instead of living on as orphans holding their ports.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { REPO } from '../helpers/cluster.ts';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function listening(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const s = net.connect(Number(port), hostname);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Starts the launcher; resolves with its banner once the cluster is up. */
async function startLauncher(env: Record<string, string>): Promise<{ child: ChildProcess; banner: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'services/cli/src/main.ts', 'start'], { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const banner = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no banner in 90 s:\n${out.slice(-3000)}\n${err.slice(-2000)}`)), 90_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('Ctrl-C stops the cluster.')) {
        clearTimeout(timer);
        resolve(out);
      }
    });
    child.once('exit', (code) => reject(new Error(`the launcher exited (${code}) before its banner:\n${out.slice(-3000)}\n${err.slice(-2000)}`)));
  });
  return { child, banner };
}

describe('the launcher', () => {
  test('prints a working curl; after a SIGKILL of the launcher, every service it started stops', { timeout: 180_000 }, async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-launcher-'));
    dirs.push(dir);
    const port = await freePort();
    const metricsPort = await freePort();
    // nginx where it is installed (a shell guard stops it), else the built-in balancer (a Node service).
    const { child, banner } = await startLauncher({ PORT: String(port), METRICS_PORT: String(metricsPort), MODELHOSTS: '2', MODEL_DIR: path.join(dir, 'models'), LOG_LEVEL: 'warn' });

    // The banner's curl works.
    const curl = /curl -X POST (\S+) -H 'Content-Type: application\/json' -d '(.+)'/.exec(banner);
    assert.ok(curl, banner);
    const res = await fetch(curl[1]!, { method: 'POST', headers: { 'content-type': 'application/json' }, body: curl[2]! });
    assert.equal(res.status, 200);
    assert.deepEqual(((await res.json()) as { values: unknown }).values, [1]);

    const urls = [`http://127.0.0.1:${port}`, `http://127.0.0.1:${metricsPort}`, ...(/modelhosts: +\d+ \(([^)]+)\)/.exec(banner)?.[1]?.split(', ') ?? [])];
    const balancer = /load balancer: .* at (http:\/\/\S+)/.exec(banner)?.[1];
    if (balancer) urls.push(balancer);
    assert.equal(urls.length, 5, `Inferrer, metrics, 2 modelhosts, balancer: ${urls.join(' ')}`);
    for (const u of urls) assert.ok(await listening(u), `${u} listens while the launcher runs`);

    child.kill('SIGKILL');
    const deadline = Date.now() + 20_000;
    let still = urls;
    while (still.length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      still = (await Promise.all(urls.map(async (u) => ((await listening(u)) ? u : undefined)))).filter((u): u is string => u !== undefined);
    }
    assert.deepEqual(still, [], 'no service outlives the launcher');
  });
});
