/**
 * The `inferrer` command.
 *   inferrer start     run a local cluster (Inferrer + MODELHOSTS modelhosts + load balancer) with demo models
 *   inferrer jobs …    submit batch jobs, follow them, fetch their results (jobs-command.ts)
 */
import { exitOnConfigError } from '@inferrer/telemetry';
import { loadConfig } from './config.ts';
import { JOBS_USAGE, jobsCommand } from './jobs-command.ts';
import { runStart } from './start.ts';

const USAGE = `usage: inferrer start

Environment (all optional):
  PORT=8002            Inferrer port
  MODELHOSTS=<cores>   modelhost processes
  MODEL_DIR=.inferrer/models   the model store
  BALANCER=auto|nginx|builtin  nginx when installed, else the built-in balancer
  BALANCE=least_conn|hash      hash: consistent hash on the model name
  SEED_DEMO_MODELS=true        put the demo models into an empty store
  METRICS_PORT=9400            the metrics service (status page at /, /api/v1/stats); 0 picks a free port
                               (unset: 9400, or a free port when 9400 is taken)
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
process.exit(await runStart(config));
