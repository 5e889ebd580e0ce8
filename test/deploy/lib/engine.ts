/**
 * The real Docker engine for test/deploy/{docker-engine,compose,swarm}.test.ts: whether one answers (else
 * the suites skip with the reason), the local base images (deploy/docker/local-bases/build.sh, cached by
 * the engine and the Debian root's tarball), the product images built from deploy/docker, a compose CLI
 * (the `docker compose` plugin, else Debian's `docker-compose`), and small helpers that wait for states.
 * Everything a suite creates carries its own name prefix and is removed in `after`, even on failure.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { REPO } from './deploy-files.ts';

export interface Run {
  status: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command (no shell); never throws, a timeout gives status 124. */
export function run(cmd: string, args: string[], opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number; input?: string } = {}): Run {
  const t0 = Date.now();
  const r: SpawnSyncReturns<string> = spawnSync(cmd, args, {
    cwd: opts.cwd ?? REPO,
    env: { ...process.env, ...opts.env },
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 600_000,
    maxBuffer: 64 * 1024 * 1024,
    input: opts.input,
  });
  return { status: r.error ? 124 : (r.status ?? 1), stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : ''), ms: Date.now() - t0 };
}

/** Runs a command and fails with its output when it exits non-zero. */
export function must(cmd: string, args: string[], opts: Parameters<typeof run>[2] = {}): Run {
  const r = run(cmd, args, opts);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} → exit ${r.status}\n${(r.stderr || r.stdout).slice(-4000)}`);
  return r;
}

export const docker = (...args: string[]) => run('docker', args);
export const mustDocker = (...args: string[]) => must('docker', args);

/** Why the engine suites cannot run here, or undefined when a Docker engine answers. */
export function engineSkipReason(): string | undefined {
  if (process.env.INFERRER_SKIP_DOCKER) return 'INFERRER_SKIP_DOCKER is set';
  const cli = run('docker', ['--version'], { timeoutMs: 10_000 });
  if (cli.status !== 0) return 'no docker CLI (CI installs Debian docker.io in .ci/run)';
  const info = run('docker', ['info', '--format', '{{.ServerVersion}}'], { timeoutMs: 20_000 });
  if (info.status !== 0 || !info.stdout.trim())
    return `no Docker engine answers: ${(info.stderr || info.stdout).trim().split('\n')[0]} (.ci/run starts dockerd)`;
  if (process.getuid?.() !== 0) return 'the engine suites run as root (debootstrap builds the local Debian base)';
  return undefined;
}

/**
 * A docker CLI that builds with BuildKit: one with the buildx plugin, else a client older than 23, whose
 * `DOCKER_BUILDKIT=1 docker build` talks to the engine's own BuildKit (Debian's docker.io 20.10).
 */
export function buildkitCli(): string | undefined {
  for (const cli of ['docker', '/usr/bin/docker', '/usr/local/bin/docker']) {
    if (!cli.startsWith('/') ? run(cli, ['--version']).status !== 0 : !existsSync(cli)) continue;
    if (run(cli, ['buildx', 'version']).status === 0) return cli;
    const v = run(cli, ['version', '--format', '{{.Client.Version}}']).stdout.trim();
    if (/^(1\d|2[0-2])\./.test(v)) return cli;
  }
  return undefined;
}

/** `docker compose` (the plugin) or Debian's `docker-compose`; the command as argv prefix. */
export function composeCli(): string[] | undefined {
  if (run('docker', ['compose', 'version']).status === 0) return ['docker', 'compose'];
  if (run('docker-compose', ['version']).status === 0) return ['docker-compose'];
  return undefined;
}

/** The base images the Dockerfiles and stack files name, built locally where absent (cached by the engine). */
export function ensureBases(): Run {
  return must('sh', [path.join(REPO, 'deploy', 'docker', 'local-bases', 'build.sh')], { timeoutMs: 900_000 });
}

/** The CA bundle this machine trusts, handed to the images' dependency stage (deploy/docker/build-ca). */
export function ensureBuildCa(): void {
  const bundle = [process.env.SSL_CERT_FILE, process.env.NODE_EXTRA_CA_CERTS, '/etc/ssl/certs/ca-certificates.crt'].find((f) => f && existsSync(f));
  if (!bundle) return;
  const target = path.join(REPO, 'deploy', 'docker', 'build-ca', 'host.crt');
  // Copied only when it differs, so the build cache of the install layers stays valid.
  if (existsSync(target) && readFileSync(target).equals(readFileSync(bundle))) return;
  copyFileSync(bundle, target);
}

/** The CPU images of the product (the GPU one needs a CUDA base and NuGet: see docker-engine.test.ts). */
export const IMAGES = ['balancer', 'inferrer', 'modelhost', 'metrics'] as const;
export type ImageName = (typeof IMAGES)[number];

/** Builds one image; returns the run (its ms is the build time). */
export function buildImage(name: string, tag: string, opts: { buildkit?: boolean; cli?: string; buildArgs?: Record<string, string> } = {}): Run {
  const args = ['build', '-f', `deploy/docker/${name}.Dockerfile`, '-t', tag];
  if (!opts.buildkit) args.push('--force-rm');
  for (const [k, v] of Object.entries(opts.buildArgs ?? {})) args.push('--build-arg', `${k}=${v}`);
  args.push('.');
  return must(opts.cli ?? 'docker', args, { env: { DOCKER_BUILDKIT: opts.buildkit ? '1' : '0', BUILDKIT_PROGRESS: 'plain' }, timeoutMs: 900_000 });
}

/** inferrer/<name>:latest for every CPU image, built with the classic builder (layers cached). */
export function ensureImages(): Map<ImageName, number> {
  ensureBases();
  ensureBuildCa();
  const ms = new Map<ImageName, number>();
  for (const name of IMAGES) ms.set(name, buildImage(name, `inferrer/${name}:latest`).ms);
  return ms;
}

/** Whether the process with this id still runs (the suites name what they create after their pid). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * What a run of the compose suite left when it was killed before its `after` ran: the containers,
 * networks and volumes of every compose project named `<prefix><pid>` whose process is gone. Returns the
 * projects removed.
 */
export function sweepComposeLeftovers(prefix: string): string[] {
  const label = 'com.docker.compose.project';
  const projects = new Set<string>();
  for (const list of [
    ['ps', '-a'],
    ['network', 'ls'],
    ['volume', 'ls'],
  ]) {
    for (const name of docker(...list, '--filter', `label=${label}`, '--format', `{{.Label "${label}"}}`).stdout.split('\n')) {
      const pid = name.startsWith(prefix) ? Number(name.slice(prefix.length)) : Number.NaN;
      if (Number.isInteger(pid) && pid > 0 && !alive(pid)) projects.add(name);
    }
  }
  for (const project of projects) {
    const filter = ['--filter', `label=${label}=${project}`];
    const containers = docker('ps', '-aq', ...filter)
      .stdout.split('\n')
      .filter(Boolean);
    if (containers.length > 0) docker('rm', '-f', '-v', ...containers);
    for (const kind of ['network', 'volume']) {
      const ids = docker(kind, 'ls', '-q', ...filter)
        .stdout.split('\n')
        .filter(Boolean);
      if (ids.length > 0) docker(kind, 'rm', ...ids);
    }
  }
  return [...projects];
}

/** Image tags `<repo>:<prefix><pid>` (made by a suite) whose process is gone. */
export function sweepTestTags(repo: string, prefix: string): void {
  for (const tag of docker('image', 'ls', repo, '--format', '{{.Tag}}').stdout.split('\n')) {
    const pid = tag.startsWith(prefix) ? Number(tag.slice(prefix.length)) : Number.NaN;
    if (Number.isInteger(pid) && pid > 0 && !alive(pid)) docker('image', 'rm', `${repo}:${tag}`);
  }
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns a value (not undefined) or `timeoutMs` passes; then throws with `what`. */
export async function waitFor<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 120_000, everyMs = 1000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(everyMs);
  }
}

/** Every line of a container's log, stdout and stderr. */
export function containerLogLines(id: string): string[] {
  const r = docker('logs', id);
  return `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => l.trim() !== '');
}
