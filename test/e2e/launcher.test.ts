/**
 * The launcher as a user runs it (`pnpm start` = services/cli/src/main.ts start): it prints a banner with a
 * working curl; when it is killed outright (SIGKILL: it cannot stop anything), the services it started stop
 * by themselves instead of living on as orphans holding their ports; Ctrl-C stops every service in order,
 * each saying "stopped", and removes its run folder; a bad setting or a taken port stops the launch with
 * exit code 78 and a message naming the setting, instead of restarting services forever.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
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

/** The launcher's environment: this one, less the settings a test must choose itself. */
function launcherEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const base = { ...process.env };
  for (const k of ['PORT', 'METRICS_PORT', 'GRPC_PORT', 'LOG_LEVEL', 'MODEL_DIR', 'INFERRER_URL']) delete base[k];
  return { ...base, ...env };
}

/** Runs the launcher to its end; resolves with its exit code and everything it printed. */
function runLauncher(env: Record<string, string>, timeoutMs = 90_000): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'services/cli/src/main.ts', 'start'], {
    cwd: REPO,
    env: launcherEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) =>
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    }),
  );
}

/** Holds a port as another program would. */
function holdPort(port: number): Promise<net.Server | undefined> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(undefined));
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

/** Run folders (os.tmpdir()/inferrer-run-*) by the pid of the launcher that owns them. */
async function runDirs(): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  for (const name of await readdir(os.tmpdir())) {
    if (!name.startsWith('inferrer-run-')) continue;
    const pid = Number(await readFile(path.join(os.tmpdir(), name, 'launcher.pid'), 'utf8').catch(() => ''));
    if (pid > 0) out.set(pid, name);
  }
  return out;
}

/** Starts the launcher; resolves with its banner once the cluster is up. */
async function startLauncher(env: Record<string, string>): Promise<{ child: ChildProcess; banner: string; output: () => string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'services/cli/src/main.ts', 'start'], {
    cwd: REPO,
    env: launcherEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
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
  return { child, banner, output: () => out };
}

let killedLauncher: number | undefined;

describe('the launcher', () => {
  test('prints a working curl; after a SIGKILL of the launcher, every service it started stops', { timeout: 180_000 }, async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-launcher-'));
    dirs.push(dir);
    const port = await freePort();
    const metricsPort = await freePort();
    const grpcPort = await freePort();
    // nginx where it is installed (a shell guard stops it), else the built-in balancer (a Node service).
    const { child, banner } = await startLauncher({
      PORT: String(port),
      METRICS_PORT: String(metricsPort),
      GRPC_PORT: String(grpcPort),
      MODELHOSTS: '2',
      MODEL_DIR: path.join(dir, 'models'),
      LOG_LEVEL: 'warn',
    });
    assert.match(banner, new RegExp(`gRPC: +127\\.0\\.0\\.1:${grpcPort} \\(inference\\.GRPCInferenceService`), 'the banner says where gRPC is');
    assert.ok((await runDirs()).has(child.pid!), 'the launcher keeps its run folder (nginx config, pid file) under its pid');

    const cores = Math.max(1, Math.floor(os.availableParallelism() / 2));
    assert.match(
      banner,
      new RegExp(`execution: +each modelhost runs a model on ${cores} cores? \\(CPUS\\), with the slots × threads and batch size it measures best`),
      'the banner says each modelhost plans on its share of the cores',
    );
    assert.match(
      banner,
      /rate limits: +10000 requests\/s per client address without a key, 10000 requests\/s per API key \(RATE_LIMIT_IP_RPS/,
      'the banner says a load generator will meet the rate limit',
    );
    // The banner's curl works.
    const curl = /curl -X POST (\S+) -H 'Content-Type: application\/json' -d '(.+)'/.exec(banner);
    assert.ok(curl, banner);
    const res = await fetch(curl[1]!, { method: 'POST', headers: { 'content-type': 'application/json' }, body: curl[2]! });
    assert.equal(res.status, 200);
    assert.deepEqual(((await res.json()) as { values: unknown }).values, [1]);

    const urls = [
      `http://127.0.0.1:${port}`,
      `http://127.0.0.1:${metricsPort}`,
      `http://127.0.0.1:${grpcPort}`,
      ...(/modelhosts: +\d+ \(([^)]+)\)/.exec(banner)?.[1]?.split(', ') ?? []),
    ];
    const balancer = /load balancer: .* at (http:\/\/\S+)/.exec(banner)?.[1];
    if (balancer) urls.push(balancer);
    assert.equal(urls.length, 6, `Inferrer, metrics, gRPC, 2 modelhosts, balancer: ${urls.join(' ')}`);
    for (const u of urls) assert.ok(await listening(u), `${u} listens while the launcher runs`);

    child.kill('SIGKILL');
    const deadline = Date.now() + 20_000;
    let still = urls;
    while (still.length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      still = (await Promise.all(urls.map(async (u) => ((await listening(u)) ? u : undefined)))).filter((u): u is string => u !== undefined);
    }
    assert.deepEqual(still, [], 'no service outlives the launcher');
    // A killed launcher cannot remove its run folder: the next launch does (next test).
    killedLauncher = child.pid;
  });

  test('Ctrl-C: every service stops in order and says so, no one is killed, the run folder goes', { timeout: 180_000 }, async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-launcher-'));
    dirs.push(dir);
    // The metrics service's default port (METRICS_PORT unset) held by another program: it takes a free one and says so.
    const held = await holdPort(9400);
    // So is gRPC's default port 8001 (GRPC_PORT unset), when another program holds it.
    const heldGrpc = await holdPort(8001);
    try {
      const { child, banner, output } = await startLauncher({ PORT: '0', MODELHOSTS: '1', MODEL_DIR: path.join(dir, 'models'), LOG_LEVEL: 'info' });
      const metricsUrl = /metrics: +(http:\/\/\S+)/.exec(banner)?.[1];
      assert.ok(metricsUrl && !metricsUrl.endsWith(':9400'), banner);
      assert.match(banner, /note: +port 9400 is taken by another program: the metrics service took a free one \(METRICS_PORT sets it\)/);
      assert.match(banner, /gRPC: +127\.0\.0\.1:(?!8001\b)\d+ /, 'gRPC took a free port');
      assert.match(banner, /note: +port 8001 is taken by another program: gRPC took a free one \(GRPC_PORT sets it\)/);
      assert.equal((await fetch(`${metricsUrl}/health/live`)).status, 200);
      if (killedLauncher !== undefined) assert.ok(!(await runDirs()).has(killedLauncher), "the killed launcher's run folder was removed by this launch");
      const runDir = (await runDirs()).get(child.pid!);
      assert.ok(runDir, 'this launcher has a run folder');

      const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
      const t0 = performance.now();
      child.kill('SIGINT');
      const code = await exited;
      const seconds = (performance.now() - t0) / 1000;
      const out = output();
      assert.equal(code, 0, out.slice(-3000));
      const after = out.slice(out.indexOf('SIGINT: stopping the cluster'));
      // Every Node service logs "stopped" (the launcher says it for nginx), front to back: the Inferrer first, modelhosts last.
      const names = ['inferrer', 'metrics', /load balancer: nginx/.test(banner) ? 'nginx' : 'balancer', 'modelhost-1'];
      const at = names.map((name) => after.search(name === 'nginx' ? /^launcher +\| nginx stopped/m : new RegExp(`^${name} +\\|.*\\bstopped\\b`, 'm')));
      names.forEach((name, i) => assert.ok(at[i]! >= 0, `${name} said it stopped:\n${after}`));
      assert.deepEqual(
        at,
        [...at].sort((x, y) => x - y),
        `in order:\n${after}`,
      );
      assert.doesNotMatch(after, /killed/, 'nothing had to be killed');
      assert.match(after, /launcher +\| stopped in \d+\.\d s/);
      // The issue asks for "a few seconds" when idle (the kill deadline is 10 s per service).
      assert.ok(seconds < 8, `stopping took ${seconds.toFixed(1)} s`);
      assert.ok(!(await runDirs()).has(child.pid!), 'the run folder is removed');
      await readdir(path.join(os.tmpdir(), runDir!)).then(
        () => assert.fail('the run folder is still there'),
        (err: NodeJS.ErrnoException) => assert.equal(err.code, 'ENOENT'),
      );
    } finally {
      held?.close();
      heldGrpc?.close();
    }
  });

  test('on a terminal, service lines are for people (LOG_FORMAT=pretty); LOG_FORMAT=json keeps JSON', {
    timeout: 180_000,
    skip: existsSync('/usr/bin/script') ? false : 'no script(1) to give the launcher a terminal',
  }, async () => {
    for (const format of ['pretty', 'json'] as const) {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-launcher-tty-'));
      dirs.push(dir);
      const env = launcherEnv({
        PORT: String(await freePort()),
        METRICS_PORT: String(await freePort()),
        MODELHOSTS: '1',
        MODEL_DIR: path.join(dir, 'models'),
        ...(format === 'json' ? { LOG_FORMAT: 'json', GRPC_PORT: '0' } : {}),
      });
      const command = `${process.execPath} --import tsx services/cli/src/main.ts start`;
      const child = spawn('/usr/bin/script', ['-qfec', command, '/dev/null'], { cwd: REPO, env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      const deadline = Date.now() + 90_000;
      while (!out.includes('Ctrl-C stops the cluster.') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      process.kill(-child.pid!, 'SIGINT');
      await new Promise((r) => child.once('close', r));
      const listening = out.split(/\r?\n/).find((l) => /^inferrer +\| /.test(l) && l.includes('inferrer listening'));
      assert.ok(listening, `the Inferrer's start line (${format}):\n${out.slice(0, 3000)}`);
      const line = listening.replace(/^inferrer +\| /, '');
      if (format === 'pretty') assert.match(line, /^\d\d:\d\d:\d\d\.\d{3} .*INFO.* main inferrer listening .*host=127\.0\.0\.1/);
      else assert.equal(JSON.parse(line).msg, 'inferrer listening');
      // GRPC_PORT unset: gRPC on 8001 (or a free port); GRPC_PORT=0 (the json run): no gRPC at all.
      const grpcLines = out.split(/\r?\n/).filter((l) => /gRPC listening|^ +gRPC: /.test(l));
      if (format === 'pretty') assert.equal(grpcLines.length, 2, `the Inferrer's gRPC line and the banner's:\n${out.slice(0, 3000)}`);
      else assert.deepEqual(grpcLines, [], 'GRPC_PORT=0 turns gRPC off');
    }
  });

  test('a bad setting: each service refuses it once, the launch stops with exit code 78 and the message', { timeout: 120_000 }, async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-launcher-'));
    dirs.push(dir);
    const r = await runLauncher({ PORT: '0', METRICS_PORT: '0', MODELHOSTS: '1', MODEL_DIR: path.join(dir, 'models'), LOG_LEVEL: 'verbose' });
    assert.equal(r.code, 78, r.out.slice(-3000));
    assert.match(
      r.out,
      /inferrer start: \S+ cannot run with these settings \(exit code 78\):\n {2}invalid \S+ configuration:\n {4}LOG_LEVEL: .*\(got "verbose"\)/,
    );
    assert.doesNotMatch(r.out, /restarting in/, 'no service is restarted');
    assert.doesNotMatch(r.out, /Inferrer is up/);
  });

  test('a taken port: the launch stops before starting anything, naming the port and the variable that moves it', { timeout: 60_000 }, async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-launcher-'));
    dirs.push(dir);
    const port = await freePort();
    const held = await holdPort(port);
    assert.ok(held);
    try {
      const inferrer = await runLauncher({ PORT: String(port), METRICS_PORT: '0', MODELHOSTS: '1', MODEL_DIR: path.join(dir, 'models') });
      assert.equal(inferrer.code, 78, inferrer.out);
      assert.match(
        inferrer.out,
        new RegExp(
          `port ${port} on 127\\.0\\.0\\.1 is taken by another program, so the Inferrer cannot use it: set PORT to another port \\(PORT=0 picks a free one\\)`,
        ),
      );
      const metrics = await runLauncher({ PORT: '0', METRICS_PORT: String(port), MODELHOSTS: '1', MODEL_DIR: path.join(dir, 'models') });
      assert.equal(metrics.code, 78, metrics.out);
      assert.match(
        metrics.out,
        new RegExp(`port ${port} on 127\\.0\\.0\\.1 is taken by another program, so the metrics service cannot use it: set METRICS_PORT`),
      );
      for (const r of [inferrer, metrics]) {
        assert.doesNotMatch(r.out, /listening|EADDRINUSE|Inferrer is up/, 'nothing started, no stack trace, no banner');
      }
    } finally {
      held.close();
    }
  });
});
