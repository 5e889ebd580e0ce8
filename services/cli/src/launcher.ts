/**
 * Runs a whole Inferrer cluster as processes on one machine: N modelhosts, a load balancer (real nginx
 * when it is installed, else the built-in one) and the Inferrer, all on 127.0.0.1 by default. Every
 * service gets the launcher's environment plus its own variables (the same names docker-compose sets).
 * The e2e tests start clusters through this module too.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { findNginx, followFifo, writeNginxConf } from './nginx.ts';
import { NODE_FLAGS, REPO_ROOT, TSX_IMPORT } from './paths.ts';
import { EXIT_CONFIG } from '@inferrer/telemetry';
import { type LineSink, ManagedProcess, type ProcessFailure } from './processes.ts';
import { seedDemoModels } from './seed.ts';

export type BalancerKind = 'nginx' | 'builtin';

export interface ClusterOptions {
  host: string;
  /** Inferrer port; 0 picks a free one. */
  port: number;
  /** The Inferrer's gRPC port (GRPC_PORT); 0 picks a free one; absent: no gRPC. */
  grpcPort?: number;
  /** When grpcPort is taken by another program: pick a free one (and say so in `notes`) instead of failing. */
  grpcPortFallback?: boolean;
  modelhosts: number;
  modelDir: string;
  balancer: BalancerKind | 'auto';
  balance: 'least_conn' | 'hash' | 'placement';
  /** Put the demo models into the store when missing. */
  seedDemo: boolean;
  /** Environment every service starts with (defaults to the launcher's own). */
  env: NodeJS.ProcessEnv;
  /** Extra variables per service. */
  inferrerEnv?: Record<string, string>;
  modelhostEnv?: Record<string, string>;
  /** Run the metrics service (cluster summary, status page, nginx and host metrics); default true. */
  metrics?: boolean;
  /** Its port; 0 (default) picks a free one. */
  metricsPort?: number;
  /** When metricsPort is taken by another program: pick a free one (and say so in `notes`) instead of failing. */
  metricsPortFallback?: boolean;
  metricsEnv?: Record<string, string>;
  /** Where nginx's config and temp files go (a temp folder by default). */
  runDir?: string;
  sink: LineSink;
  restart: boolean;
  /** Quick restarts in a row before a crash-looping service is given up (default 5). */
  restartLimit?: number;
  /** Aborting it (Ctrl-C while starting) stops what was started and rejects. */
  signal?: AbortSignal;
  /** How long to wait for every service to answer its health check. */
  readyTimeoutMs?: number;
}

export interface ModelhostHandle {
  id: string;
  port: number;
  url: string;
  process: ManagedProcess;
}

export interface Cluster {
  url: string;
  /** host:port of the Inferrer's gRPC service, when it runs. */
  grpcAddress: string | undefined;
  balancerUrl: string;
  balancer: { kind: BalancerKind; description: string; process: ManagedProcess };
  inferrer: ManagedProcess;
  /** The metrics service, when it runs. */
  metrics: { url: string; process: ManagedProcess } | undefined;
  modelhosts: ModelhostHandle[];
  /** The cores each modelhost plans its models' execution on (CPUS: the machine's cores ÷ modelhosts unless set). */
  modelhostCpus: number;
  modelDir: string;
  seeded: string[];
  /** Which queue the Inferrer's batch jobs use (for the banner). */
  jobsQueue: string;
  /** Things the banner should say (a port that was taken and replaced). */
  notes: string[];
  /** Settles when a service is given up (a configuration error, a crash loop); the cluster should stop. */
  failed: Promise<ProcessFailure>;
  /** Stops every service, front to back; resolves when all are gone and the run folder is removed. */
  stop(): Promise<void>;
}

/** The launch cannot go on; `exitCode` is what `inferrer start` exits with (EXIT_CONFIG for a setting to change). */
export class LaunchError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = 'LaunchError';
    this.exitCode = exitCode;
  }
}

/** What the launcher says when it gives a service up: the service's own last words, then what to do. */
export function describeFailure(f: ProcessFailure): LaunchError {
  const said = f.stderr.length ? `\n  ${f.stderr.slice(-12).join('\n  ')}` : '';
  const how = f.signal ? `signal ${f.signal}` : `exit code ${f.code}`;
  if (f.reason === 'config') return new LaunchError(`${f.name} cannot run with these settings (${how}):${said}`, EXIT_CONFIG);
  if (f.reason === 'crash-loop') return new LaunchError(`${f.name} keeps exiting soon after it starts (${how}, ${f.restarts} restarts); gave up:${said}`);
  return new LaunchError(`${f.name} exited (${how}):${said}`);
}

const BALANCE_WORDS: Record<ClusterOptions['balance'], string> = {
  least_conn: 'least connections',
  placement: "model-aware placement: consistent hash on the Inferrer's replica keys",
  hash: 'consistent hash on the model name',
};

const RUN_PREFIX = 'inferrer-run-';
const RUN_OWNER = 'launcher.pid';

const SERVICE_MAIN = {
  inferrer: path.join(REPO_ROOT, 'services', 'inferrer', 'src', 'main.ts'),
  modelhost: path.join(REPO_ROOT, 'services', 'modelhost', 'src', 'main.ts'),
  balancer: path.join(REPO_ROOT, 'services', 'cli', 'src', 'balancer-main.ts'),
  metrics: path.join(REPO_ROOT, 'services', 'metrics', 'src', 'main.ts'),
};

/**
 * A free port for a service to listen on. Not one the kernel hands out itself (listen on port 0): those come
 * from the ephemeral range that outgoing connections use too, so between finding one free and the service
 * listening there, any connection this host opens may take it as its local port (EADDRINUSE at start). A
 * port below that range (Linux: /proc/sys/net/ipv4/ip_local_port_range) is only taken by programs that ask
 * for it by number: a random one that is free now stays free.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const low = ephemeralLow();
  const from = 10_000;
  if (low > from + 1000) {
    for (let i = 0; i < 50; i++) {
      const port = from + Math.floor(Math.random() * (low - from));
      if (claimPort(port) && !(await portTaken(host, port))) return port;
    }
  }
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Ports handed out by launchers on this host, one file each holding the pid of the launcher that took it. */
const PORT_CLAIMS = path.join(os.tmpdir(), 'inferrer-port-claims');

/**
 * Takes `port` for this process unless a launcher still running took it: a port found free is not bound
 * until its service starts, and meanwhile another launcher (tests run several at once) or the next
 * service of this one could draw the same number (a CI run's Inferrer once failed with EADDRINUSE so).
 * A claim of a process that is gone is taken over. Where claims cannot be written, every port is allowed.
 */
function claimPort(port: number): boolean {
  const file = path.join(PORT_CLAIMS, String(port));
  try {
    mkdirSync(PORT_CLAIMS, { recursive: true });
    writeFileSync(file, String(process.pid), { flag: 'wx' });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return true;
  }
  try {
    const owner = Number(readFileSync(file, 'utf8'));
    if (owner === process.pid || (owner > 0 && alive(owner))) return false;
    writeFileSync(file, String(process.pid));
    return true;
  } catch {
    return true;
  }
}

/** The first port of the kernel's ephemeral range (0 where it cannot be read). */
function ephemeralLow(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 0;
  } catch {
    return 0;
  }
}

/** Whether another program listens on host:port (tried by listening there ourselves). */
export function portTaken(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'EADDRINUSE' || err.code === 'EACCES'));
    srv.listen(port, host, () => srv.close(() => resolve(false)));
  });
}

/** Run folders of launchers that are gone (killed with SIGKILL: they could not remove their own). */
async function removeStaleRunDirs(): Promise<void> {
  const tmp = os.tmpdir();
  for (const name of await readdir(tmp).catch(() => [] as string[])) {
    if (!name.startsWith(RUN_PREFIX)) continue;
    const dir = path.join(tmp, name);
    const pid = Number(await readFile(path.join(dir, RUN_OWNER), 'utf8').catch(() => ''));
    if (!Number.isInteger(pid) || pid <= 0 || alive(pid)) continue;
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  const host = opts.host;
  const notes: string[] = [];
  // Ports the operator chose are checked before anything starts, so that nothing is announced on a port
  // another program holds.
  if (opts.port !== 0 && (await portTaken(host, opts.port))) {
    throw new LaunchError(
      `port ${opts.port} on ${host} is taken by another program, so the Inferrer cannot use it: set PORT to another port (PORT=0 picks a free one)`,
      EXIT_CONFIG,
    );
  }
  let grpcPortWanted = opts.grpcPort;
  if (grpcPortWanted && (await portTaken(host, grpcPortWanted))) {
    if (!opts.grpcPortFallback) {
      throw new LaunchError(
        `port ${grpcPortWanted} on ${host} is taken by another program, so the Inferrer cannot serve gRPC on it: set GRPC_PORT to another port (GRPC_PORT=0 turns gRPC off)`,
        EXIT_CONFIG,
      );
    }
    notes.push(`port ${grpcPortWanted} is taken by another program: gRPC took a free one (GRPC_PORT sets it)`);
    grpcPortWanted = 0;
  }
  let metricsPort = opts.metricsPort ?? 0;
  if ((opts.metrics ?? true) && metricsPort !== 0 && (await portTaken(host, metricsPort))) {
    if (!opts.metricsPortFallback) {
      throw new LaunchError(
        `port ${metricsPort} on ${host} is taken by another program, so the metrics service cannot use it: set METRICS_PORT to another port (METRICS_PORT=0 picks a free one)`,
        EXIT_CONFIG,
      );
    }
    notes.push(`port ${metricsPort} is taken by another program: the metrics service took a free one (METRICS_PORT sets it)`);
    metricsPort = 0;
  }
  const modelDir = path.resolve(opts.modelDir);
  await mkdir(modelDir, { recursive: true });
  const seeded = opts.seedDemo ? await seedDemoModels(modelDir) : [];
  let ownRunDir: string | undefined;
  if (opts.runDir === undefined) {
    await removeStaleRunDirs();
    ownRunDir = await mkdtemp(path.join(os.tmpdir(), RUN_PREFIX));
    await writeFile(path.join(ownRunDir, RUN_OWNER), String(process.pid));
  }
  const runDir = opts.runDir ?? ownRunDir!;
  const started: ManagedProcess[] = [];
  let giveUp!: (f: ProcessFailure) => void;
  const failed = new Promise<ProcessFailure>((resolve) => (giveUp = resolve));
  const supervise = (proc: ManagedProcess): ManagedProcess => {
    proc.onGiveUp = giveUp;
    started.push(proc);
    proc.start();
    return proc;
  };
  /** One of our Node services: run through tsx from the repository, restarted per opts, stopping with the launcher. */
  const nodeService = (name: string, main: keyof typeof SERVICE_MAIN, env: NodeJS.ProcessEnv): ManagedProcess =>
    supervise(
      new ManagedProcess(
        {
          name,
          command: process.execPath,
          args: [...NODE_FLAGS[main], ...TSX_IMPORT, SERVICE_MAIN[main]],
          env,
          cwd: REPO_ROOT,
          restart: opts.restart,
          restartLimit: opts.restartLimit,
          linked: true,
        },
        opts.sink,
      ),
    );
  const closers: (() => void)[] = [];
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      // Front to back: the Inferrer stops taking requests first, modelhosts drain last.
      for (const p of [...started].reverse()) {
        const how = await p.stop();
        if (how === 'killed') opts.sink('launcher', `${p.spec.name} did not stop within 10 s: killed`);
        else if (how === 'stopped' && !p.spec.linked) opts.sink('launcher', `${p.spec.name} stopped`);
      }
      for (const close of closers) close();
      if (ownRunDir) await rm(ownRunDir, { recursive: true, force: true }).catch(() => undefined);
    })());

  try {
    const inferrerEnv = opts.inferrerEnv ?? {};
    const maxBodyBytes = Number(inferrerEnv.MAX_BODY_BYTES ?? opts.env.MAX_BODY_BYTES ?? 64 * 1024 * 1024);
    const requestTimeoutMs = Number(inferrerEnv.REQUEST_TIMEOUT_MS ?? opts.env.REQUEST_TIMEOUT_MS ?? 30_000);

    const modelhosts: ModelhostHandle[] = [];
    // The modelhosts share this machine's cores: each plans its models' execution (slots × threads, batch
    // size) on its share (CPUS).
    const cpus = String(Math.max(1, Math.floor(os.availableParallelism() / Math.max(1, opts.modelhosts))));
    const modelhostCpus = Number(opts.modelhostEnv?.CPUS ?? opts.env.CPUS ?? cpus);
    // …and its memory: unless told otherwise, each budgets its models half of its share (a modelhost alone
    // would take 70 % of the machine's).
    const budget =
      opts.env.MODEL_MEMORY_BYTES ?? opts.modelhostEnv?.MODEL_MEMORY_BYTES ?? String(Math.floor((os.totalmem() * 0.5) / Math.max(1, opts.modelhosts)));
    // …and a ceiling on what each may take at all (a run that would need more is refused), so that N of
    // them together stay within 90 % of the machine.
    const ceiling =
      opts.env.PROCESS_MEMORY_BYTES ?? opts.modelhostEnv?.PROCESS_MEMORY_BYTES ?? String(Math.floor((os.totalmem() * 0.9) / Math.max(1, opts.modelhosts)));
    for (let i = 1; i <= opts.modelhosts; i++) {
      const port = await freePort(host);
      const id = `modelhost-${i}`;
      // glibc gives a released model's memory back to the system (MALLOC_MMAP_THRESHOLD_, as in the images):
      // see the modelhost's memory-budget.ts.
      const proc = nodeService(id, 'modelhost', {
        CPUS: cpus,
        MALLOC_MMAP_THRESHOLD_: '131072',
        ...opts.env,
        MODEL_MEMORY_BYTES: budget,
        PROCESS_MEMORY_BYTES: ceiling,
        ...opts.modelhostEnv,
        HOST: host,
        PORT: String(port),
        MODEL_DIR: modelDir,
        MODELHOST_ID: id,
      });
      modelhosts.push({ id, port, url: `http://${host}:${port}`, process: proc });
    }

    const balancerPort = await freePort(host);
    const upstreams = modelhosts.map((m) => `${host}:${m.port}`);
    const nginx = opts.balancer === 'builtin' ? undefined : findNginx();
    if (opts.balancer === 'nginx' && !nginx) throw new Error('BALANCER=nginx but nginx is not installed (apt-get install nginx)');
    let balancer: Cluster['balancer'];
    if (nginx) {
      const prefix = path.join(runDir, 'nginx');
      await mkdir(prefix, { recursive: true });
      let accessLog = 'off';
      if (opts.env.NGINX_ACCESS_LOG !== 'off') {
        const fifo = followFifo(prefix, (line) => opts.sink('nginx', line));
        closers.push(fifo.close);
        accessLog = `${fifo.path} inferrer`;
      }
      const conf = await writeNginxConf({
        prefix,
        listen: `${host}:${balancerPort}`,
        upstreams,
        balance: opts.balance,
        maxBodyBytes,
        requestTimeoutMs,
        workerProcesses: 1,
        accessLog,
      });
      const proc = supervise(
        new ManagedProcess(
          {
            name: 'nginx',
            command: nginx,
            args: ['-e', 'stderr', '-p', path.dirname(conf), '-c', conf, '-g', 'daemon off;'],
            env: opts.env,
            restart: opts.restart,
            restartLimit: opts.restartLimit,
          },
          opts.sink,
        ),
      );
      closers.push(guardNginx(path.join(prefix, 'nginx.pid')));
      balancer = { kind: 'nginx', description: `nginx ${nginxVersion(nginx)} (${BALANCE_WORDS[opts.balance]})`, process: proc };
    } else {
      const proc = nodeService('balancer', 'balancer', {
        ...opts.env,
        HOST: host,
        PORT: String(balancerPort),
        UPSTREAMS: upstreams.join(','),
        MAX_BODY_BYTES: String(maxBodyBytes),
        REQUEST_TIMEOUT_MS: String(requestTimeoutMs),
        BALANCE: opts.balance,
      });
      balancer = { kind: 'builtin', description: `built-in balancer, ${BALANCE_WORDS[opts.balance]} (http-proxy; nginx not found on the PATH)`, process: proc };
    }
    const balancerUrl = `http://${host}:${balancerPort}`;

    let metrics: Cluster['metrics'];
    if (opts.metrics ?? true) {
      if (metricsPort === 0) metricsPort = await freePort(host);
      const proc = nodeService('metrics', 'metrics', {
        ...opts.env,
        ...opts.metricsEnv,
        HOST: host,
        PORT: String(metricsPort),
        MODELHOSTS: modelhosts.map((m) => m.url).join(','),
        ...(balancer.kind === 'nginx' ? { NGINX_STATUS_URL: `${balancerUrl}/nginx/status` } : {}),
      });
      metrics = { url: `http://${host}:${metricsPort}`, process: proc };
    }

    const port = opts.port === 0 ? await freePort(host) : opts.port;
    const grpcPort = grpcPortWanted === undefined ? 0 : grpcPortWanted === 0 ? await freePort(host) : grpcPortWanted;
    const inferrer = nodeService('inferrer', 'inferrer', {
      ...opts.env,
      ...inferrerEnv,
      // A suite may have the Inferrer listen wider than the cluster's own traffic ('::' for IPv6 clients).
      HOST: inferrerEnv.HOST ?? host,
      PORT: String(port),
      GRPC_PORT: String(grpcPort),
      MODEL_DIR: modelDir,
      LOAD_BALANCER_URL: balancerUrl,
      ...(metrics ? { METRICS_URL: metrics.url } : {}),
    });
    const url = `http://${host}:${port}`;

    const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
    const polling = new AbortController();
    const healthy = (async () => {
      await Promise.all([
        ...modelhosts.map((m) => waitHealthy(`${m.url}/health/ready`, deadline, m.id, polling.signal)),
        waitHealthy(`${url}/health/live`, deadline, 'inferrer', polling.signal),
        ...(metrics ? [waitHealthy(`${metrics.url}/health/live`, deadline, 'metrics', polling.signal)] : []),
      ]);
      await waitHealthy(`${balancerUrl}/health/ready`, deadline, 'balancer', polling.signal);
    })();
    // Whichever comes first: every service healthy, one given up (its own message says why), or Ctrl-C.
    const givenUp = new Promise<never>((_resolve, reject) => void failed.then((f) => reject(describeFailure(f))));
    const interrupted = new Promise<never>((_resolve, reject) => {
      const fail = (): void => reject(new LaunchError('interrupted while starting', 130));
      if (opts.signal?.aborted) fail();
      else opts.signal?.addEventListener('abort', fail, { once: true });
    });
    for (const p of [healthy, givenUp, interrupted]) p.catch(() => undefined);
    try {
      await Promise.race([healthy, givenUp, interrupted]);
    } finally {
      polling.abort();
    }
    const redisUrl = inferrerEnv.REDIS_URL ?? opts.env.REDIS_URL;
    const jobsQueue = redisUrl
      ? `Redis (BullMQ) at ${redisUrl.replace(/\/\/[^@/]*@/, '//')}`
      : `embedded queue (no REDIS_URL; state in ${path.join(modelDir, '.jobs')}, one Inferrer)`;
    const grpcAddress = grpcPort ? `${host}:${grpcPort}` : undefined;
    return { url, grpcAddress, balancerUrl, balancer, inferrer, metrics, modelhosts, modelhostCpus, modelDir, seeded, jobsQueue, notes, failed, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

export async function waitHealthy(url: string, deadline: number, what: string, signal?: AbortSignal): Promise<void> {
  let last = '';
  while (Date.now() < deadline && !signal?.aborted) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (res.ok) return;
      last = `status ${res.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not become healthy at ${url} (${last})`);
}

function nginxVersion(bin: string): string {
  const r = spawnSync(bin, ['-v'], { encoding: 'utf8' });
  return /nginx\/([\d.]+)/.exec(`${r.stdout}${r.stderr}`)?.[1] ?? '';
}

/**
 * nginx cannot notice that the launcher is gone (the Node services do: @inferrer/telemetry
 * stopWithLauncher). A tiny shell guard does it for nginx: it reads a pipe from the launcher until the
 * launcher's process ends (however it ends), then asks nginx to quit via its pid file. A normal stop
 * kills the guard first. Returns that stop.
 */
function guardNginx(pidFile: string): () => void {
  const guard = spawn('sh', ['-c', 'cat > /dev/null; pid=$(cat "$1" 2>/dev/null) && kill -QUIT "$pid" 2>/dev/null', 'inferrer-nginx-guard', pidFile], {
    stdio: ['pipe', 'ignore', 'ignore'],
    detached: true,
  });
  guard.stdin!.on('error', () => undefined);
  guard.on('error', () => undefined);
  guard.unref();
  return () => {
    try {
      // The whole group: the shell and its `cat`.
      process.kill(-guard.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  };
}
