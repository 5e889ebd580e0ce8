/**
 * `inferrer models list|show|push|delete|versions|canary|promote|rollback`: the model store through the
 * Inferrer's management API (FRACTAL v1 routes under /api/v1/models).
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import type { InferrerClient } from '../client.ts';
import { type Io, bytes, fields, json, table } from '../output.ts';
import { type Context, act, positiveInt } from './common.ts';

interface TensorSpec {
  name: string;
  type: string;
  shape: (number | string)[];
}

interface VersionDetails {
  version: number;
  created_at: string;
  bytes?: number;
  sha256?: string;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  profile?: unknown;
}

interface ModelDescription {
  name: string;
  description: string;
  default_version: number;
  versions: number[];
  created_at: string;
  updated_at: string;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  config: Record<string, unknown>;
  labels?: string[];
  enabled: boolean;
  traffic: Record<string, number>;
  version_details: VersionDetails[];
  image_pipeline?: unknown;
}

const path1 = (name: string): string => `/api/v1/models/${encodeURIComponent(name)}`;

function jsonObject(value: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(value);
  } catch (err) {
    throw new InvalidArgumentError(`not JSON: ${(err as Error).message}`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new InvalidArgumentError('must be a JSON object, e.g. {"description": "…"}');
  return v as Record<string, unknown>;
}

/** The inputs and outputs of a model version as a table. */
export function signatureTable(m: { inputs: TensorSpec[]; outputs: TensorSpec[] }): string {
  return table(
    ['', 'name', 'type', 'shape'],
    [
      ...m.inputs.map((t) => ['input', t.name, t.type, `[${t.shape.join(', ')}]`]),
      ...m.outputs.map((t) => ['output', t.name, t.type, `[${t.shape.join(', ')}]`]),
    ],
  );
}

function traffic(m: ModelDescription): string {
  const split = Object.entries(m.traffic ?? {}).filter(([, p]) => p > 0);
  if (split.length === 0) return `all to version ${m.default_version}`;
  const canary = split.reduce((a, [, p]) => a + p, 0);
  return `${split.map(([v, p]) => `${p}% to version ${v}`).join(', ')}, ${100 - canary}% to version ${m.default_version}`;
}

function batching(config: Record<string, unknown>): string {
  const b = config.batching as Record<string, unknown> | undefined;
  if (!b) return 'worker defaults';
  return Object.entries(b)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
}

async function describe(client: InferrerClient, name: string): Promise<ModelDescription> {
  return (await client.get<{ model: ModelDescription }>(path1(name))).body.model;
}

function showModel(io: Io, m: ModelDescription): void {
  io.out(
    fields([
      ['name', m.name],
      ['description', m.description],
      ['default version', m.default_version],
      ['versions', m.versions.join(', ')],
      ['traffic', traffic(m)],
      ['enabled', m.enabled ? 'yes' : 'no (predictions refused)'],
      ['batching', batching(m.config ?? {})],
      ...(m.labels?.length ? ([['labels', m.labels.join(', ')]] as [string, unknown][]) : []),
      ...(m.image_pipeline ? ([['images', 'yes: send image files (inferrer predict --image)']] as [string, unknown][]) : []),
      ['created', m.created_at],
      ['updated', m.updated_at],
    ]),
  );
  io.out('');
  io.out(signatureTable(m));
}

/**
 * Progress of an upload on standard error: a redrawn bar on a terminal (cli-progress); without one (with
 * --progress) a line every second while it lasts, and one when every byte is sent.
 */
function uploadProgress(io: Io, label: string, force: boolean): { update(sent: number, total: number): void; done(): void } | undefined {
  if (!io.tty && !force) return undefined;
  const started = performance.now();
  const elapsed = (): number => (performance.now() - started) / 1000;
  const line = (sent: number, total: number): string => {
    const pct = total > 0 ? Math.floor((sent / total) * 100) : 100;
    const filled = Math.round((pct / 100) * 30);
    const note =
      sent >= total ? `in ${elapsed().toFixed(1)} s; the Inferrer is checking the model…` : elapsed() > 0.2 ? `${bytes(Math.round(sent / elapsed()))}/s` : '';
    return `${label} [${'#'.repeat(filled)}${'.'.repeat(30 - filled)}] ${pct}% ${bytes(sent)}/${bytes(total)} ${note}`.trimEnd();
  };
  let finished = false;
  if (!io.tty) {
    let last = 0;
    return {
      update(sent, total) {
        if (finished) return;
        finished = sent >= total;
        if (finished || performance.now() - last > 1000) {
          last = performance.now();
          io.err(line(sent, total));
        }
      },
      done() {},
    };
  }
  const bar = new cliProgress.SingleBar({ format: '{line}', stream: process.stderr, hideCursor: true, fps: 10 });
  let begun = false;
  return {
    update(sent, total) {
      if (!begun) {
        bar.start(total, 0, { line: line(0, total) });
        begun = true;
      }
      if (finished) return;
      finished = sent >= total;
      bar.update(sent, { line: line(sent, total) });
    },
    done() {
      if (begun) bar.stop();
    },
  };
}

export function registerModels(program: Command, ctx: Context): void {
  const models = program.command('models').description('list, inspect, upload and delete models; canary, promote and roll back versions');

  models
    .command('list')
    .alias('ls')
    .description('every model with its default version, versions and description')
    .action(
      act(async (_opts: unknown, cmd: Command) => {
        const io = ctx.io(cmd);
        type Summary = { name: string; description: string; default_version: number; versions: number[] };
        const a = await ctx.client(cmd).get<{ model_list?: Summary[]; models?: Summary[] }>('/api/v1/models/information');
        // model_list (FRACTAL's name); Inferrers before it answered `models`.
        const list = a.body.model_list ?? a.body.models ?? [];
        if (io.json) {
          io.out(json(list.map((m) => ({ name: m.name, description: m.description, default_version: m.default_version, versions: m.versions }))));
          return 0;
        }
        if (list.length === 0) {
          io.out('no models yet: inferrer models push <name> <model.onnx>');
          return 0;
        }
        io.out(
          table(
            ['name', 'default', 'versions', 'description'],
            list.map((m) => [m.name, m.default_version, m.versions.join(','), m.description.length > 70 ? `${m.description.slice(0, 69)}…` : m.description]),
          ),
        );
        return 0;
      }),
    );

  models
    .command('show')
    .description("a model: description, versions, traffic, batching, and the default version's inputs and outputs")
    .argument('<name>', 'model name')
    .action(
      act(async (name: string, _opts: unknown, cmd: Command) => {
        const io = ctx.io(cmd);
        const model = await describe(ctx.client(cmd), name);
        if (io.json) io.out(json(model));
        else showModel(io, model);
        return 0;
      }),
    );

  models
    .command('versions')
    .description('the versions of a model: which is the default, which gets traffic, size, inputs and outputs')
    .argument('<name>', 'model name')
    .action(
      act(async (name: string, _opts: unknown, cmd: Command) => {
        const io = ctx.io(cmd);
        const model = await describe(ctx.client(cmd), name);
        if (io.json) {
          io.out(json(model.version_details));
          return 0;
        }
        const share = (v: number): string => {
          const canary = Object.values(model.traffic ?? {}).reduce((a, p) => a + p, 0);
          const p = v === model.default_version ? 100 - canary : (model.traffic?.[String(v)] ?? 0);
          return `${p}%`;
        };
        const sig = (ts: TensorSpec[]): string => ts.map((t) => `${t.name} ${t.type}[${t.shape.join(',')}]`).join('; ');
        io.out(
          table(
            ['version', 'default', 'traffic', 'size', 'created', 'inputs', 'outputs'],
            model.version_details.map((v) => [
              v.version,
              v.version === model.default_version ? 'yes' : '',
              share(v.version),
              v.bytes === undefined ? '-' : bytes(v.bytes),
              v.created_at,
              sig(v.inputs),
              sig(v.outputs),
            ]),
          ),
        );
        return 0;
      }),
    );

  models
    .command('push')
    .description('upload a model file as a new model, or as a new version of one; prints its inputs and outputs')
    .argument('<name>', 'model name (1–128 letters, digits, . _ -)')
    .argument('<file>', 'the .onnx file (streamed, never read whole)')
    .option('-d, --description <text>', 'what the model does')
    .option('--metadata <json>', 'more metadata as a JSON object, e.g. \'{"config": {"batching": {"max_batch_size": 16}}}\'', jsonObject)
    .option('--no-default', 'upload without making it the default version (for a canary: then inferrer models promote)')
    .option('--progress', 'show the upload progress even when standard error is not a terminal')
    .addHelpText('after', '\nExample:\n  inferrer models push mymodel model.onnx -d "my model" --metadata \'{"labels": ["cat", "dog"]}\'')
    .action(
      act(
        async (
          name: string,
          file: string,
          opts: { description?: string; metadata?: Record<string, unknown>; default: boolean; progress?: boolean },
          cmd: Command,
        ) => {
          const io = ctx.io(cmd);
          const client = ctx.client(cmd);
          const size = (await stat(file)).size;
          if (size === 0) throw new Error(`${file} is empty`);
          const metadata = {
            ...(opts.metadata ?? {}),
            ...(opts.description !== undefined ? { description: opts.description } : {}),
            ...(opts.default ? {} : { make_default: false }),
          };
          const progress = uploadProgress(io, `uploading ${path.basename(file)}`, opts.progress === true);
          let a;
          try {
            a = await client.upload<{ message: string; version: number; model: ModelDescription }>(
              'PUT',
              path1(name),
              file,
              { 'content-type': 'application/octet-stream', ...(Object.keys(metadata).length ? { 'x-model-metadata': JSON.stringify(metadata) } : {}) },
              progress ? (sent, total) => progress.update(sent, total) : undefined,
            );
          } finally {
            progress?.done();
          }
          if (io.json) {
            io.out(json({ newModel: a.body.model.versions.length === 1, version: a.body.version, model: a.body.model }));
            return 0;
          }
          const m = a.body.model;
          io.out(
            `${m.versions.length === 1 ? 'new model' : 'new version'}: ${m.name} version ${a.body.version} (${bytes(size)})${m.default_version === a.body.version ? ', the default' : `; the default is still version ${m.default_version}`}`,
          );
          io.out('');
          io.out(signatureTable(m.version_details.find((v) => v.version === a.body.version) ?? m));
          return 0;
        },
      ),
    );

  models
    .command('delete')
    .alias('rm')
    .description('delete a model and all its versions')
    .argument('<name>', 'model name')
    .action(
      act(async (name: string, _opts: unknown, cmd: Command) => {
        const io = ctx.io(cmd);
        const a = await ctx.client(cmd).request<{ message: string }>('DELETE', path1(name));
        io.out(io.json ? json({ deleted: name }) : a.body.message);
        return 0;
      }),
    );

  models
    .command('canary')
    .description('send a share of the requests that name no version to another version (0 ends the split)')
    .argument('<name>', 'model name')
    .requiredOption('--version <n>', 'the canary version', positiveInt('--version'))
    .requiredOption('--percent <p>', 'its share, 0–100', (v) => {
      const p = Number(v);
      if (!Number.isFinite(p) || p < 0 || p > 100) throw new InvalidArgumentError('--percent must be a number from 0 to 100');
      return p;
    })
    .action(
      act(async (name: string, opts: { version: number; percent: number }, cmd: Command) => {
        const io = ctx.io(cmd);
        const a = await ctx.client(cmd).request<{ model: ModelDescription }>('POST', `${path1(name)}/canary`, {
          data: { version: opts.version, percent: opts.percent },
          headers: { 'content-type': 'application/json' },
        });
        io.out(io.json ? json(a.body.model) : `${a.body.model.name}: traffic: ${traffic(a.body.model)}`);
        return 0;
      }),
    );

  models
    .command('promote')
    .description('make the canary (or the given version) the default, and clear the traffic split')
    .argument('<name>', 'model name')
    .option('--version <n>', 'the version to make the default (default: the canary)', positiveInt('--version'))
    .action(
      act(async (name: string, opts: { version?: number }, cmd: Command) => {
        const io = ctx.io(cmd);
        const a = await ctx.client(cmd).request<{ model: ModelDescription }>('POST', `${path1(name)}/promote`, {
          data: opts.version === undefined ? {} : { version: opts.version },
          headers: { 'content-type': 'application/json' },
        });
        io.out(
          io.json ? json(a.body.model) : `${a.body.model.name}: version ${a.body.model.default_version} is the default; traffic: ${traffic(a.body.model)}`,
        );
        return 0;
      }),
    );

  models
    .command('rollback')
    .description('send all traffic back to the default version (ends a canary)')
    .argument('<name>', 'model name')
    .action(
      act(async (name: string, _opts: unknown, cmd: Command) => {
        const io = ctx.io(cmd);
        const a = await ctx.client(cmd).request<{ model: ModelDescription }>('POST', `${path1(name)}/rollback`);
        io.out(io.json ? json(a.body.model) : `${a.body.model.name}: traffic: ${traffic(a.body.model)}`);
        return 0;
      }),
    );
}
