/**
 * The `inferrer` command tree (commander): `start` runs a local cluster; `models`, `predict`, `jobs` and
 * `bench` talk to any Inferrer (--url / INFERRER_URL, --key / INFERRER_API_KEY). Every command has --help;
 * output is for people (tables) unless --json is given.
 *
 * Exit codes: 0 success; 1 the request or the operation failed; 2 a usage error (unknown command or
 * option, a missing argument); 3 a job ended PARTIAL; 78 `start` with a setting to fix.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError, Option } from 'commander';
import { exitOnConfigError } from '@inferrer/telemetry';
import { InferrerClient } from './client.ts';
import { registerBench } from './commands/bench.ts';
import { type Context, act } from './commands/common.ts';
import { registerCompletion } from './commands/completion.ts';
import { registerJobs } from './commands/jobs.ts';
import { registerModels } from './commands/models.ts';
import { registerPredict } from './commands/predict.ts';
import { loadClientConfig, loadConfig } from './config.ts';
import { processIo } from './output.ts';

export const EXIT_USAGE = 2;

const PKG = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'package.json');
export const VERSION = (JSON.parse(readFileSync(PKG, 'utf8')) as { version: string }).version;

interface GlobalOptions {
  url?: string;
  key?: string;
  json?: boolean;
}

function httpUrl(value: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new InvalidArgumentError('not a URL (e.g. http://127.0.0.1:8002)');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new InvalidArgumentError('must be an http:// or https:// URL');
  return value;
}

export function createProgram(): Command {
  const program = new Command('inferrer')
    .description('Inferrer: serve ONNX models on a cluster of workers, and talk to one.')
    .version(VERSION, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help for a command')
    // The program's options go before the command; each client command has its own copies (below), so
    // `inferrer models list --json` works and `--version` after a command is that command's option.
    .enablePositionalOptions()
    .showSuggestionAfterError(true)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  const globals = (cmd: Command): GlobalOptions => cmd.optsWithGlobals<GlobalOptions>();
  let clientConfig: ReturnType<typeof loadClientConfig> | undefined;
  const ctx: Context = {
    io: (cmd) => processIo(globals(cmd).json === true),
    client: (cmd) => {
      const g = globals(cmd);
      try {
        clientConfig ??= loadClientConfig();
      } catch (err) {
        exitOnConfigError(err);
      }
      return new InferrerClient({
        url: g.url ?? clientConfig.INFERRER_URL ?? `http://127.0.0.1:${clientConfig.PORT || 8002}`,
        apiKey: g.key ?? clientConfig.INFERRER_API_KEY,
      });
    },
  };

  program
    .command('start')
    .description('run a local cluster: the Inferrer, modelhosts, a load balancer and the metrics service, with demo models')
    .addHelpText(
      'after',
      `
Settings (environment variables, all optional):
  PORT=8002                    the Inferrer's port (0: a free one)
  MODELHOSTS=<cores>           modelhost processes
  MODEL_DIR=.inferrer/models   the model store
  BALANCER=auto|nginx|builtin  nginx when installed, else the built-in balancer
  BALANCE=least_conn|placement|hash  placement: a model's requests go to the workers
                               that hold it, more of them as its traffic grows;
                               hash: one worker per model (by name)
  SEED_DEMO_MODELS=true        put the demo models into an empty store
  METRICS_PORT=9400            the metrics service (status page); 0: a free one (unset: 9400, or a free one when taken)
  REDIS_URL=redis://…          batch jobs queue in Redis (BullMQ); unset: the embedded queue
  API_KEYS_FILE=keys.json      API keys; without it (or AUTH_DISABLED) the local cluster runs with auth off
Every other variable (LOG_LEVEL, BATCH_SIZE, MAX_QUEUE_DELAY_MS, …) is passed on to the services.

Ctrl-C stops every service in order. Exit codes: 0 stopped; 78 a setting to fix (a service refused its
configuration, a port is taken: the message names it); 1 a service kept crashing.`,
    )
    .action(
      act(async () => {
        let config;
        try {
          config = loadConfig();
        } catch (err) {
          exitOnConfigError(err);
        }
        // Loaded only here: the launcher brings ONNX Runtime (to check the demo models) with it.
        const { runStart } = await import('./start.ts');
        return runStart(config);
      }),
    );

  registerModels(program, ctx);
  registerPredict(program, ctx);
  registerJobs(program, ctx);
  registerBench(program, ctx);
  registerCompletion(program);
  addClientOptions(program);
  for (const group of program.commands)
    for (const cmd of [group, ...group.commands]) if (cmd.commands.length === 0 && !['start', 'completion'].includes(cmd.name())) addClientOptions(cmd);
  return program;
}

/** Where the client commands go and how they print (on the program, and on every client command). */
function addClientOptions(cmd: Command): void {
  cmd
    .addOption(new Option('--url <url>', 'the Inferrer (env INFERRER_URL; default http://127.0.0.1:$PORT, PORT=8002)').argParser(httpUrl))
    .addOption(new Option('--key <key>', 'API key, sent as Authorization: Bearer (env INFERRER_API_KEY)'))
    .option('--json', 'print JSON for scripts instead of tables');
}
