/**
 * The `inferrer` command.
 *   inferrer start     run a local cluster (Inferrer + MODELHOSTS modelhosts + load balancer) with demo models
 *   inferrer jobs …    submit batch jobs, follow them, fetch their results (jobs-command.ts)
 */
import { batchedStdout, exitOnConfigError } from '@inferrer/telemetry';
import { loadConfig } from './config.ts';
import { JOBS_USAGE, jobsCommand } from './jobs-command.ts';
import { type Cluster, startCluster } from './launcher.ts';

const USAGE = `usage: inferrer start

Environment (all optional):
  PORT=8002            Inferrer port
  MODELHOSTS=<cores>   modelhost processes
  MODEL_DIR=.inferrer/models   the model store
  BALANCER=auto|nginx|builtin  nginx when installed, else the built-in balancer
  BALANCE=least_conn|hash      hash: consistent hash on the model name
  SEED_DEMO_MODELS=true        put the demo models into an empty store
  METRICS_PORT=9400            the metrics service (status page at /, /api/v1/stats); 0 picks a free port
  REDIS_URL=redis://…          batch jobs queue in Redis (BullMQ); unset: the embedded queue
Every other variable (LOG_LEVEL, BATCH_SIZE, MAX_QUEUE_DELAY_MS, …) is passed to the services.

${JOBS_USAGE}`;

const command = process.argv[2];
if (command === 'jobs') {
  let cfg;
  try {
    cfg = loadConfig();
  } catch (err) {
    exitOnConfigError(err);
  }
  const url = cfg.INFERRER_URL ?? `http://127.0.0.1:${cfg.PORT}`;
  const code = await jobsCommand(process.argv.slice(3), { url, apiKey: cfg.INFERRER_API_KEY, out: process.stdout, err: process.stderr, tty: process.stdout.isTTY === true }).catch((err: unknown) => {
    process.stderr.write(`inferrer jobs: ${(err as Error).message}\n`);
    return 1;
  });
  process.exit(code);
}
if (command !== 'start') {
  process.stdout.write(`${USAGE}\n`);
  process.exit(command === undefined || command === 'help' || command === '--help' ? 0 : 2);
}

let config;
try {
  config = loadConfig();
} catch (err) {
  exitOnConfigError(err);
}

const width = 'modelhost-00'.length;
// Every service's lines pass through here: batched, one write per turn rather than one per line.
const out = batchedStdout();
const sink = (name: string, line: string): void => {
  out.write(`${name.padEnd(width)} | ${line}\n`);
};

const demoAuthOff = !config.API_KEYS_FILE && config.AUTH_DISABLED === undefined;

let cluster: Cluster;
try {
  cluster = await startCluster({
    host: config.HOST,
    port: config.PORT,
    modelhosts: config.MODELHOSTS,
    modelDir: config.MODEL_DIR,
    balancer: config.BALANCER,
    balance: config.BALANCE,
    seedDemo: config.SEED_DEMO_MODELS,
    metricsPort: config.METRICS_PORT,
    env: process.env,
    // The local demo runs without keys unless the operator gives some; the banner says so loudly.
    ...(demoAuthOff ? { inferrerEnv: { AUTH_DISABLED: 'true' } } : {}),
    sink,
    restart: true,
  });
} catch (err) {
  process.stderr.write(`inferrer start failed: ${(err as Error).message}\n`);
  process.exit(1);
}

const example = `curl -X POST ${cluster.url}/api/v1/models/iris/prediction -H 'Content-Type: application/json' -d '{"values": [2, 5, 1, 4]}'`;
// Through the same batched output as the service lines, so the banner stays in order with them.
out.write(
  [
    '',
    `Inferrer is up at ${cluster.url}`,
    `  load balancer: ${cluster.balancer.description} at ${cluster.balancerUrl}`,
    `  modelhosts:    ${cluster.modelhosts.length} (${cluster.modelhosts.map((m) => m.url).join(', ')})`,
    ...(cluster.metrics ? [`  metrics:       ${cluster.metrics.url} (status page; ${cluster.metrics.url}/api/v1/stats, /metrics)`] : []),
    `  batch jobs:    ${cluster.jobsQueue}`,
    `  model store:   ${cluster.modelDir}${cluster.seeded.length ? ` (demo models added: ${cluster.seeded.join(', ')})` : ''}`,
    demoAuthOff || config.AUTH_DISABLED === true
      ? '  auth:          !!! OFF: anyone who can reach this port can upload and delete models. Set API_KEYS_FILE for keys. !!!'
      : config.API_KEYS_FILE
        ? `  auth:          API keys from ${config.API_KEYS_FILE}`
        : '  auth:          no API keys: predictions open, management closed',
    '',
    'Try:',
    `  ${example}`,
    `  curl ${cluster.url}/help`,
    '',
    'Ctrl-C stops the cluster.',
    '',
  ].join('\n'),
);

let stopping = false;
const stop = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  sink('launcher', 'stopping the cluster');
  await cluster.stop();
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
