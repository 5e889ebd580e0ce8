/**
 * `inferrer start`: a local cluster in the foreground. Every service's lines are shown marked with its name;
 * a banner says where everything is once all are healthy; Ctrl-C (SIGINT) or SIGTERM stops them in order.
 * Exit codes: 0 after a stop asked for; 78 (EXIT_CONFIG) when a setting must change (a service refused its
 * configuration, a port is taken); 1 when a service kept crashing or the launch failed otherwise; 130 when
 * interrupted while starting.
 */
import { batchedStdout } from '@inferrer/telemetry';
import { type CliConfig, DEFAULT_GRPC_PORT, DEFAULT_METRICS_PORT } from './config.ts';
import { type Cluster, LaunchError, describeFailure, startCluster } from './launcher.ts';

export async function runStart(config: CliConfig): Promise<number> {
  const width = 'modelhost-00'.length;
  // Every service's lines pass through here: batched, one write per turn rather than one per line.
  const out = batchedStdout();
  const sink = (name: string, line: string): void => {
    out.write(`${name.padEnd(width)} | ${line}\n`);
  };
  const fail = (err: unknown): number => {
    const code = err instanceof LaunchError ? err.exitCode : 1;
    out.write(`\ninferrer start: ${(err as Error).message}\n`);
    return code;
  };

  const demoAuthOff = !config.API_KEYS_FILE && config.AUTH_DISABLED === undefined;
  const interrupt = new AbortController();
  let cluster: Cluster | undefined;
  let stopping: Promise<number> | undefined;
  let finished!: (code: number) => void;
  const done = new Promise<number>((resolve) => (finished = resolve));
  const stop = (code: number, why: string): Promise<number> =>
    (stopping ??= (async () => {
      const t0 = performance.now();
      sink('launcher', `${why}: stopping the cluster`);
      await cluster?.stop();
      sink('launcher', `stopped in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      finished(code);
      return code;
    })());
  const onSignal = (signal: string): void => {
    if (stopping) {
      // A second Ctrl-C: leave now. The services see the launcher gone (stdin) and stop by themselves.
      sink('launcher', `${signal} again: exiting without waiting; the services stop by themselves`);
      out.flush();
      process.exit(130);
    }
    if (cluster) void stop(0, signal);
    else interrupt.abort();
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));

  try {
    cluster = await startCluster({
      host: config.HOST,
      port: config.PORT,
      // gRPC on Triton's port 8001 unless GRPC_PORT says otherwise (0: off); the default gives way to another program.
      ...(config.GRPC_PORT === 0 ? {} : { grpcPort: config.GRPC_PORT ?? DEFAULT_GRPC_PORT, grpcPortFallback: config.GRPC_PORT === undefined }),
      modelhosts: config.MODELHOSTS,
      modelDir: config.MODEL_DIR,
      balancer: config.BALANCER,
      balance: config.BALANCE,
      seedDemo: config.SEED_DEMO_MODELS,
      metricsPort: config.METRICS_PORT ?? DEFAULT_METRICS_PORT,
      // The default port gives way to another program; one the operator chose does not.
      metricsPortFallback: config.METRICS_PORT === undefined,
      // Services print lines for people when the launcher's output is a terminal (LOG_FORMAT overrides).
      env: config.LOG_FORMAT === undefined && process.stdout.isTTY ? { ...process.env, LOG_FORMAT: 'pretty' } : process.env,
      // The local demo runs without keys unless the operator gives some; the banner says so loudly.
      ...(demoAuthOff ? { inferrerEnv: { AUTH_DISABLED: 'true' } } : {}),
      sink,
      restart: true,
      signal: interrupt.signal,
    });
  } catch (err) {
    const code = fail(err);
    out.flush();
    return code;
  }

  const example = `curl -X POST ${cluster.url}/api/v1/models/iris/prediction -H 'Content-Type: application/json' -d '{"values": [2, 5, 1, 4]}'`;
  // Through the same batched output as the service lines, so the banner stays in order with them.
  out.write(
    [
      '',
      `Inferrer is up at ${cluster.url}`,
      ...(cluster.grpcAddress ? [`  gRPC:          ${cluster.grpcAddress} (inference.GRPCInferenceService, the Open Inference Protocol)`] : []),
      `  load balancer: ${cluster.balancer.description} at ${cluster.balancerUrl}`,
      `  modelhosts:    ${cluster.modelhosts.length} (${cluster.modelhosts.map((m) => m.url).join(', ')})`,
      `  execution:     each modelhost runs a model on ${cluster.modelhostCpus} core${cluster.modelhostCpus === 1 ? '' : 's'} (CPUS), with the slots × threads and batch size it measures best when it loads the model (GET /api/v1/models/{name} → execution says what and why)`,
      ...(cluster.metrics ? [`  metrics:       ${cluster.metrics.url} (status page; ${cluster.metrics.url}/api/v1/stats, /metrics)`] : []),
      `  batch jobs:    ${cluster.jobsQueue}`,
      `  model store:   ${cluster.modelDir}${cluster.seeded.length ? ` (demo models added: ${cluster.seeded.join(', ')})` : ''}`,
      demoAuthOff || config.AUTH_DISABLED === true
        ? '  auth:          !!! OFF: anyone who can reach this port can upload and delete models. Set API_KEYS_FILE for keys. !!!'
        : config.API_KEYS_FILE
          ? `  auth:          API keys from ${config.API_KEYS_FILE}`
          : '  auth:          no API keys: predictions open, management closed',
      `  rate limits:   ${limitText(config.RATE_LIMIT_IP_RPS)} per client address without a key, ${limitText(config.RATE_LIMIT_KEY_RPS)} per API key (RATE_LIMIT_IP_RPS, RATE_LIMIT_KEY_RPS; 0 turns one off): a load generator above it gets 429`,
      ...cluster.notes.map((n) => `  note:          ${n}`),
      '',
      'Try:',
      `  ${cluster.url === 'http://127.0.0.1:8002' ? '' : `INFERRER_URL=${cluster.url} `}pnpm inferrer predict iris '[2, 5, 1, 4]'`,
      `  ${example}`,
      `  curl ${cluster.url}/help`,
      '',
      'Ctrl-C stops the cluster.',
      '',
    ].join('\n'),
  );

  // Runs until a signal asks it to stop, or a service is given up (its message, then a non-zero exit).
  void cluster.failed.then((f) => {
    if (stopping) return;
    const err = describeFailure(f);
    out.write(`\ninferrer start: ${err.message}\n`);
    void stop(err.exitCode, `${f.name} was given up`);
  });
  const code = await done;
  out.flush();
  return code;
}

const limitText = (rps: number): string => (rps === 0 ? 'no limit' : `${rps} requests/s`);
