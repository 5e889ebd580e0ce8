/**
 * The `inferrer` command as a user runs it: spawned processes (the package bin, services/cli/bin/inferrer.mjs,
 * as `npx inferrer` runs it) against a real cluster with API keys. Help on every command, usage errors with
 * exit code 2, the bin through a symlink from elsewhere (a global install), models push with its progress
 * and signature, list/show/versions/promote/rollback/delete, predictions from values, files and images,
 * jobs ending SUCCEEDED / PARTIAL / FAILED with their exit codes, bench's percentile table, --json.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import onnxProto from 'onnx-proto';
import { REPO, type TestCluster, startTestCluster } from '../helpers/cluster.ts';

const BIN = path.join(REPO, 'services', 'cli', 'bin', 'inferrer.mjs');
const VERSION = (JSON.parse(readFileSync(path.join(REPO, 'services', 'cli', 'package.json'), 'utf8')) as { version: string }).version;
const ADMIN_KEY = 'cli-test-admin-key-0123456789';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** This environment less the CLI's own settings, plus `env`. */
function cleanEnv(env: Record<string, string> = {}): NodeJS.ProcessEnv {
  const base = { ...process.env };
  for (const k of ['INFERRER_URL', 'INFERRER_API_KEY', 'PORT']) delete base[k];
  return { ...base, ...env };
}

function run(command: string, args: string[], opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: opts.cwd ?? REPO, env: cleanEnv(opts.env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `inferrer …` through the package's bin. */
function inferrer(args: string[], opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): Promise<Run> {
  return run(process.execPath, [BIN, ...args], opts);
}

const show = (r: Run): string => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

/** A model with a large initializer (x[batch, n] · w[n, 2]), so the upload takes many chunks. */
function bigModel(n: number): Uint8Array {
  const { onnx } = onnxProto;
  const w = new Float32Array(n * 2).fill(0.5);
  const type = (dims: (number | string)[]) => ({
    tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) } },
  });
  const model = onnx.ModelProto.create({
    irVersion: 7,
    opsetImport: [{ domain: '', version: 13 }],
    graph: onnx.GraphProto.create({
      name: 'wide',
      node: [onnx.NodeProto.create({ opType: 'MatMul', input: ['x', 'w'], output: ['y'] })],
      initializer: [onnx.TensorProto.create({ name: 'w', dims: [n, 2], dataType: onnx.TensorProto.DataType.FLOAT, rawData: new Uint8Array(w.buffer) })],
      input: [onnx.ValueInfoProto.create({ name: 'x', type: type(['batch', n]) })],
      output: [onnx.ValueInfoProto.create({ name: 'y', type: type(['batch', 2]) })],
    }),
  });
  return onnx.ModelProto.encode(model).finish();
}

describe('the inferrer command without a cluster', () => {
  test('--version, and --help on every command; start --help does not start a cluster', { timeout: 240_000 }, async () => {
    const version = await inferrer(['--version']);
    assert.equal(version.code, 0, show(version));
    assert.equal(version.stdout.trim(), VERSION);

    // Every command path, from the completion script (generated from the command tree).
    const completion = await inferrer(['completion']);
    assert.equal(completion.code, 0, show(completion));
    const paths = [...completion.stdout.matchAll(/^ {4}"([^"]*)"\) echo/gm)].map((m) => m[1]!);
    for (const p of [
      '',
      'start',
      'models',
      'models list',
      'models show',
      'models push',
      'models delete',
      'models versions',
      'models promote',
      'models rollback',
      'predict',
      'jobs',
      'jobs submit',
      'jobs status',
      'jobs results',
      'jobs cancel',
      'jobs list',
      'bench',
    ]) {
      assert.ok(paths.includes(p), `the completion script knows "${p}"`);
    }
    const queue = [...paths];
    const failures: string[] = [];
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
          const r = await inferrer([...p.split(' ').filter(Boolean), '--help']);
          // "Usage: inferrer models list|ls [options]": the command's path, its alias, then its arguments.
          const usage = new RegExp(`^Usage: inferrer${p ? ` ${p}` : ''}(\\|[a-z]+)? `);
          if (r.code !== 0 || !usage.test(r.stdout) || r.stdout.includes('Inferrer is up')) failures.push(`${p}: ${show(r)}`);
        }
      }),
    );
    assert.deepEqual(failures, []);

    const start = await inferrer(['start', '--help'], { env: { PORT: '1' } });
    assert.equal(start.code, 0, show(start));
    assert.match(start.stdout, /METRICS_PORT=9400/);
    assert.match(start.stdout, /78 a setting to fix/);
  });

  test('usage errors exit with code 2 and say what was wrong', { timeout: 60_000 }, async () => {
    const cases: [string[], RegExp][] = [
      [['modelz'], /unknown command 'modelz'[\s\S]*Did you mean models\?/],
      [['models', 'list', '--bogus'], /unknown option '--bogus'/],
      [['models', 'show'], /missing required argument 'name'/],
      [['predict', 'iris', '[1, 2'], /values must be JSON/],
      [['predict', 'iris'], /give exactly one of: JSON values, --file <rows>, --image <files…>/],
      [['models', 'promote', 'iris', '--version', 'two'], /--version must be a positive integer/],
      [['jobs', 'list', '--state', 'DONE'], /Allowed choices are RECEIVING, QUEUED, RUNNING, SUCCEEDED, PARTIAL, FAILED, CANCELLED/],
      [['models', 'list', '--url', 'ftp://x'], /must be an http:\/\/ or https:\/\/ URL/],
    ];
    const results = await Promise.all(cases.map(([args]) => inferrer(args)));
    results.forEach((r, i) => {
      assert.equal(r.code, 2, `${cases[i]![0].join(' ')}: ${show(r)}`);
      assert.match(r.stderr, cases[i]![1], cases[i]![0].join(' '));
    });
  });

  test('nothing listening: a message naming the URL and what to do, exit code 1', { timeout: 60_000 }, async () => {
    const r = await inferrer(['models', 'list'], { env: { INFERRER_URL: 'http://127.0.0.1:9' } });
    assert.equal(r.code, 1, show(r));
    assert.match(
      r.stderr,
      /^inferrer: nothing answers at http:\/\/127\.0\.0\.1:9 \(connection refused\): start a cluster \(inferrer start\) or point --url \/ INFERRER_URL at one$/m,
    );
  });

  test('the bin works through a symlink from any folder (a global install), and as npx inferrer in the repository', { timeout: 120_000 }, async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-bin-'));
    try {
      await mkdir(path.join(dir, 'bin'));
      await symlink(BIN, path.join(dir, 'bin', 'inferrer'));
      const r = await run('inferrer', ['--version'], { cwd: dir, env: { PATH: `${path.join(dir, 'bin')}:${process.env.PATH}` } });
      assert.equal(r.code, 0, show(r));
      assert.equal(r.stdout.trim(), VERSION);
      const npx = spawnSync('npx', ['--version'], { encoding: 'utf8' });
      if (npx.status === 0) {
        const viaNpx = await run('npx', ['--no-install', 'inferrer', '--version']);
        assert.equal(viaNpx.code, 0, show(viaNpx));
        assert.equal(viaNpx.stdout.trim(), VERSION);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the inferrer command against a cluster with API keys', () => {
  let c: TestCluster;
  let dir: string;
  let env: Record<string, string>;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-cli-'));
    const keys = path.join(dir, 'keys.json');
    await writeFile(keys, JSON.stringify({ keys: [{ key: ADMIN_KEY, scopes: ['admin', 'predict'], name: 'cli-test' }] }));
    c = await startTestCluster({ inferrerEnv: { AUTH_DISABLED: 'false', API_KEYS_FILE: keys } });
    env = { INFERRER_URL: c.url, INFERRER_API_KEY: ADMIN_KEY };
  });
  after(async () => {
    await c?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('--key / INFERRER_API_KEY: sent as a Bearer token; without one the 401 is reported', async () => {
    const without = await inferrer(['models', 'list'], { env: { INFERRER_URL: c.url } });
    assert.equal(without.code, 1, show(without));
    assert.match(without.stderr, /^inferrer: 401 UNAUTHORIZED: /m);
    const withFlag = await inferrer(['models', 'list', '--url', c.url, '--key', ADMIN_KEY]);
    assert.equal(withFlag.code, 0, show(withFlag));
    const withEnv = await inferrer(['models', 'list'], { env });
    assert.equal(withEnv.code, 0, show(withEnv));
    assert.equal(withEnv.stdout, withFlag.stdout);
    assert.match(withEnv.stdout, /^NAME +DEFAULT +VERSIONS +DESCRIPTION$/m);
    assert.match(withEnv.stdout, /^iris +1 +1 +Small MLP/m);
  });

  test('models push streams the file with progress, then prints its inputs and outputs; versions, promote, rollback, delete', {
    timeout: 180_000,
  }, async () => {
    const file = path.join(dir, 'wide.onnx');
    await writeFile(file, bigModel(2_000_000));
    const push = await inferrer(['models', 'push', 'wide', file, '-d', 'a wide model', '--progress'], { env });
    assert.equal(push.code, 0, show(push));
    assert.match(push.stdout, /^new model: wide version 1 \(15 MiB\), the default$/m);
    assert.match(push.stdout, /^input +x +float32 +\[batch, 2000000\]$/m);
    assert.match(push.stdout, /^output +y +float32 +\[batch, 2\]$/m);
    assert.match(push.stderr, /^uploading wide\.onnx \[#{30}\] 100% 15 MiB\/15 MiB in \d+\.\d s; the Inferrer is checking the model…$/m, show(push));

    const second = await inferrer(['models', 'push', 'wide', file, '--no-default', '--json'], { env });
    assert.equal(second.code, 0, show(second));
    const pushed = JSON.parse(second.stdout) as { newModel: boolean; version: number; model: { default_version: number } };
    assert.deepEqual([pushed.newModel, pushed.version, pushed.model.default_version], [false, 2, 1]);
    assert.equal(second.stderr, '', 'no progress without a terminal unless asked');

    const versions = await inferrer(['models', 'versions', 'wide'], { env });
    assert.equal(versions.code, 0, show(versions));
    assert.match(versions.stdout, /^1 +yes +100% +15 MiB /m);
    assert.match(versions.stdout, /^2 +- +0% +15 MiB /m);

    const promote = await inferrer(['models', 'promote', 'wide', '--version', '2'], { env });
    assert.equal(promote.code, 0, show(promote));
    assert.equal(promote.stdout.trim(), 'wide: version 2 is the default; traffic: all to version 2');
    const shown = await inferrer(['models', 'show', 'wide'], { env });
    assert.match(shown.stdout, /^description +a wide model$/m);
    assert.match(shown.stdout, /^default version +2$/m);
    assert.match(shown.stdout, /^versions +1, 2$/m);

    const canary = await fetch(`${c.url}/api/v1/models/wide/canary`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ version: 1, percent: 20 }),
    });
    assert.equal(canary.status, 200);
    const split = await inferrer(['models', 'show', 'wide', '--json'], { env });
    assert.deepEqual((JSON.parse(split.stdout) as { traffic: unknown }).traffic, { 1: 20 });
    const rollback = await inferrer(['models', 'rollback', 'wide'], { env });
    assert.equal(rollback.code, 0, show(rollback));
    assert.equal(rollback.stdout.trim(), 'wide: traffic: all to version 2');

    const del = await inferrer(['models', 'delete', 'wide'], { env });
    assert.equal(del.code, 0, show(del));
    assert.equal(del.stdout.trim(), 'model wide deleted');
    const gone = await inferrer(['models', 'show', 'wide'], { env });
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /^inferrer: 404 MODEL_NOT_FOUND: model wide not found$/m);
  });

  test('predict: JSON values, a file of rows, images; a refused request says why; --json is the answer', async () => {
    const one = await inferrer(['predict', 'iris', '[6.7, 2.5, 5.8, 1.8]'], { env });
    assert.equal(one.code, 0, show(one));
    assert.equal(one.stdout, 'iris version 1\nROW  VALUE\n0    2\n');

    const all = await inferrer(['predict', 'iris', '[[6.7, 2.5, 5.8, 1.8], [5.1, 3.5, 1.4, 0.2]]', '--all'], { env });
    assert.equal(all.code, 0, show(all));
    assert.match(all.stdout, /^ROW +LABEL +PROBABILITIES$/m);
    assert.match(all.stdout, /^0 +2 +\[[^\]]+\]$/m);
    assert.match(all.stdout, /^1 +0 +\[[^\]]+\]$/m);

    const csv = path.join(dir, 'rows.csv');
    await writeFile(csv, 'sepal_length,sepal_width,petal_length,petal_width\n6.7,2.5,5.8,1.8\n5.1,3.5,1.4,0.2\n');
    const rows = await inferrer(['predict', 'iris', '--file', csv, '--json'], { env });
    assert.equal(rows.code, 0, show(rows));
    assert.deepEqual((JSON.parse(rows.stdout) as { values: number[] }).values, [2, 0]);

    const image = await inferrer(['predict', 'digits', '--image', path.join(REPO, 'test', 'fixtures', 'images', 'digit_7.png'), '--top-k', '2'], { env });
    assert.equal(image.code, 0, show(image));
    assert.match(image.stdout, /^FILE +LABEL +SCORE$\n^digit_7\.png +7 +/m);

    const bad = await inferrer(['predict', 'iris', '[1, 2, 3]'], { env });
    assert.equal(bad.code, 1, show(bad));
    assert.match(bad.stderr, /^inferrer: 400 INVALID_INPUT: input 'input' expects one row of shape \[4\]/m);
  });

  test('jobs: submit --wait ends with the job; exit 0 SUCCEEDED, 3 PARTIAL, 1 FAILED; status is a table, --json for scripts', {
    timeout: 120_000,
  }, async () => {
    const good = path.join(dir, 'good.ndjson');
    const partial = path.join(dir, 'partial.ndjson');
    const failed = path.join(dir, 'failed.ndjson');
    await writeFile(good, '[5.1,3.5,1.4,0.2]\n[6.7,2.5,5.8,1.8]\n');
    await writeFile(partial, '[5.1,3.5,1.4,0.2]\n[1,2]\n');
    await writeFile(failed, '[1,2]\n{not json\n');
    const [g, p, f] = await Promise.all(
      [good, partial, failed].map((file) => inferrer(['jobs', 'submit', 'iris', file, '--wait', '--out', `${file}.out`], { env })),
    );
    assert.equal(g!.code, 0, show(g!));
    assert.match(g!.stdout, /^job j[a-z0-9]+ SUCCEEDED: 2 succeeded, 0 failed; 2 results written to /m);
    assert.equal(p!.code, 3, show(p!));
    assert.match(p!.stdout, /^job j[a-z0-9]+ PARTIAL: 1 succeeded, 1 failed; 2 results written to /m);
    assert.equal(f!.code, 1, show(f!));
    assert.match(f!.stdout, /^job (j[a-z0-9]+) FAILED: 0 succeeded, 2 failed; 2 results written to /m);
    const id = /^job (j[a-z0-9]+) FAILED/m.exec(f!.stdout)![1]!;

    const status = await inferrer(['jobs', 'status', id], { env });
    assert.equal(status.code, 0, show(status));
    assert.match(status.stdout, new RegExp(`^job +${id}$`, 'm'));
    assert.match(status.stdout, /^state +FAILED$/m);
    assert.match(status.stdout, /^items +2\/2 done: 0 succeeded, 2 failed$/m);
    const asJson = JSON.parse((await inferrer(['jobs', 'status', id, '--json'], { env })).stdout) as { state: string; items: { failed: number } };
    assert.deepEqual([asJson.state, asJson.items.failed], ['FAILED', 2]);

    const waited = await inferrer(['jobs', 'wait', id], { env });
    assert.equal(waited.code, 1, 'wait exits by the final state');
    const list = JSON.parse((await inferrer(['jobs', 'list', '--state', 'PARTIAL', '--json'], { env })).stdout) as { state: string }[];
    assert.ok(list.length >= 1 && list.every((j) => j.state === 'PARTIAL'));
    const table = await inferrer(['jobs', 'list'], { env });
    assert.match(table.stdout, /^ID +MODEL +STATE +DONE +FAILED +TOTAL +CREATED$/m);
  });

  test('every `pnpm inferrer` command in the README and docs/ runs as pasted, in order', { timeout: 300_000 }, async () => {
    // A folder like the repository root as a user has it: the files the commands name, links to models/ and test/.
    const cwd = path.join(dir, 'readme');
    await mkdir(cwd);
    for (const d of ['models', 'test']) await symlink(path.join(REPO, d), path.join(cwd, d));
    await writeFile(path.join(cwd, 'rows.csv'), 'sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.7,2.5,5.8,1.8\n5.9,3.0,4.2,1.5\n');
    await copyFile(path.join(REPO, 'models', 'demo', 'iris.onnx'), path.join(cwd, 'iris-v2.onnx'));
    const docs = ['README.md', ...(await readdir(path.join(REPO, 'docs'))).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
    const commands: { doc: string; text: string }[] = [];
    for (const doc of docs) {
      let inBlock = false;
      for (const line of (await readFile(path.join(REPO, doc), 'utf8')).split('\n')) {
        if (line.startsWith('```')) inBlock = !inBlock && /^```(sh|bash|shell)\s*$/.test(line);
        else if (inBlock && /^pnpm inferrer /.test(line)) commands.push({ doc, text: line.replace(/\s+#\s.*$/, '') });
      }
    }
    assert.ok(commands.length >= 20, `found ${commands.length} commands`);
    // `pnpm inferrer` is the package's bin (what the root script runs), without pnpm's own start-up.
    const prelude = `pnpm() { if [ "$1" = inferrer ]; then shift; "${process.execPath}" "${BIN}" "$@"; else command pnpm "$@"; fi; }`;
    let job = '';
    const failures: string[] = [];
    for (const c of commands) {
      const text = c.text.replaceAll('<id>', job);
      const r = await run('bash', ['-c', `${prelude}\n${text}`], { cwd, env: { ...env, HOME: cwd } });
      job = /^job (j[a-z0-9]+)/m.exec(r.stdout)?.[1] ?? job;
      if (r.code !== 0) failures.push(`${c.doc}: ${text}\n${show(r)}`);
    }
    assert.deepEqual(failures, []);
    assert.match(await readFile(path.join(cwd, '.inferrer-completion.bash'), 'utf8'), /complete -o default -F _inferrer inferrer/);
  });

  test('bench: a percentile table per client count; --json for scripts', { timeout: 120_000 }, async () => {
    const r = await inferrer(['bench', 'iris', '-c', '1,4', '-d', '1', '--warmup', '0.5'], { env });
    assert.equal(r.code, 0, show(r));
    assert.match(
      r.stdout,
      /^POST http:\/\/127\.0\.0\.1:\d+\/api\/v1\/models\/iris\/prediction with \{"values":\[0,0,0,0\]\}; 0\.5 s warm-up \+ 1 s per point$/m,
    );
    assert.match(r.stdout, /^CLIENTS +REQ\/S +P50 MS +P90 MS +P99 MS +MAX MS +ERRORS$/m);
    assert.match(r.stdout, /^1 +\d+ +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+ +0$/m);
    assert.match(r.stdout, /^4 +\d+ +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+ +0$/m);
    const j = await inferrer(['bench', 'iris', '--values', '[5.1, 3.5, 1.4, 0.2]', '-c', '2', '-d', '1', '--warmup', '0', '--json'], { env });
    assert.equal(j.code, 0, show(j));
    const out = JSON.parse(j.stdout) as { points: { connections: number; ok: number; p50: number; p99: number; errors: number }[] };
    assert.equal(out.points.length, 1);
    assert.ok(out.points[0]!.ok > 0 && out.points[0]!.p50 > 0 && out.points[0]!.p99 >= out.points[0]!.p50, JSON.stringify(out));
    assert.equal(out.points[0]!.errors, 0);
  });
});
