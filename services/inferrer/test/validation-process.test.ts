/**
 * Upload validation in a child process: real ONNX Runtime in a real child, real limits. A model that costs
 * too much memory or time is refused with MODEL_TOO_COSTLY naming the limit, the child is gone afterwards,
 * and this process's memory does not grow by what the model cost.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { InferrerError } from '@inferrer/core';
import { createLogger } from '@inferrer/telemetry';
import { constantOfShapeModel, identityChainModel, unknownOperatorModel } from '../../../test/helpers/costly-models.ts';
import { MLP_SIZES, mlpModel } from '../../../test/helpers/mlp-models.ts';
import { type ValidationLimits, createProcessInspector, memoryAllowance } from '../src/validation/validation-process.ts';

const MiB = 1024 * 1024;

const IRIS = path.resolve(import.meta.dirname, '../../../models/demo/iris.onnx');
const DEFAULTS: ValidationLimits = { memoryBaseMb: 256, memoryPerModelMb: 4, maxMemoryMb: 1536, timeoutMs: 60_000 };
const logger = createLogger({ service: 'test', level: 'error' });

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-validate-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function staged(name: string, bytes: Buffer | string): Promise<string> {
  const folder = await mkdtemp(path.join(dir, `${name}-`));
  const file = path.join(folder, 'model.onnx');
  if (typeof bytes === 'string') await copyFile(bytes, file);
  else await writeFile(file, bytes);
  return file;
}

/** Validation children of this process still alive (by command line: tsx's esbuild child is not one). */
function children(): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== process.pid) continue;
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('validate-child')) out.push(Number(pid));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

const costly = (limit: string) => (err: unknown) =>
  (err as InferrerError).code === 'MODEL_TOO_COSTLY' && (err as InferrerError).details.limit === limit && (err as Error).message.includes(limit);

describe('validation in a child process', () => {
  test('a good model: its facts, signature and cost; the child is gone', async () => {
    const inspect = createProcessInspector(DEFAULTS, logger);
    const file = await staged('iris', IRIS);
    const r = await inspect(file, path.dirname(file), {});
    assert.equal(r.signature.inputs[0]!.name, 'input');
    assert.ok(r.facts.opsets.length > 0);
    // The runtime thread was warmed before the measurement: what is left is the model's own (tens of KB
    // for iris; ONNX Runtime's start-up alone was about 40 MB).
    assert.ok(r.cost && r.cost.memory_bytes >= 0 && r.cost.memory_bytes < 16 * 1024 * 1024, JSON.stringify(r.cost));
    assert.deepEqual(children(), []);
  });

  test('what the session holds once created is recorded apart from the peak of creating it', async () => {
    const inspect = createProcessInspector(DEFAULTS, logger);
    // About 19 MB of weights (256→2048×3→8): creating the session also holds the file's bytes and copies
    // of the weights for a while, freed once it is made.
    const file = await staged('mlp', mlpModel({ inputs: 256, hidden: 2048, layers: 3, outputs: 8 }, 7));
    const { cost } = await inspect(file, path.dirname(file), {});
    const weights = (256 * 2048 + 2048 * 2048 + 2048 * 8) * 4;
    assert.ok(cost?.resident_bytes !== undefined, JSON.stringify(cost));
    assert.ok(cost.resident_bytes >= weights * 0.9, `the session holds its weights: ${JSON.stringify(cost)}`);
    assert.ok(cost.memory_bytes - cost.resident_bytes >= weights * 0.5, `the peak is well above what it holds: ${JSON.stringify(cost)}`);
  });

  test("what a small model's session holds reads the same in every child, near its weights", async () => {
    const inspect = createProcessInspector(DEFAULTS, logger);
    // The largest MLP of the many-models bench: 1.1 MB of weights; a hundred of its sessions held 1.32 MB
    // each in one process. Read with the file's bytes left in when V8 had not collected them, the figure
    // was 1.2 MB in some children and 2.6 in others (and 0 in one of 24).
    const bytes = mlpModel(MLP_SIZES[2]!, 11);
    const held: number[] = [];
    for (let k = 0; k < 3; k++) {
      const file = await staged(`held-${k}`, bytes);
      held.push((await inspect(file, path.dirname(file), {})).cost!.resident_bytes!);
    }
    const mb = held.map((b) => (b / MiB).toFixed(2)).join(', ');
    for (const b of held) assert.ok(b >= bytes.length && b <= bytes.length * 1.5 + MiB / 4, `${mb} MB for a file of ${(bytes.length / MiB).toFixed(2)} MB`);
    // Children differ by what their allocator kept around the run: 1.27–1.57 MB were seen on a busy CI machine.
    // Half a MiB still fails the readings this guards against (1.2 against 2.6; the bounds above fail 0 and 2.6).
    assert.ok(Math.max(...held) - Math.min(...held) <= MiB / 2, `${mb} MB`);
  });

  test('the allowance grows with the file and stops at the ceiling', () => {
    assert.equal(memoryAllowance(DEFAULTS, 0), 256 * 1024 * 1024);
    assert.equal(memoryAllowance(DEFAULTS, 100 * 1024 * 1024), 656 * 1024 * 1024);
    assert.equal(memoryAllowance(DEFAULTS, 1024 * 1024 * 1024), 1536 * 1024 * 1024);
  });

  test('a tiny model that folds into 400 MiB is refused for memory; this process does not grow', async () => {
    const inspect = createProcessInspector(DEFAULTS, logger);
    // 10240² floats: well past the 256 MiB a tiny file is allowed (8192² would be exactly that, at the edge).
    const file = await staged('cos', constantOfShapeModel(10240));
    const rss = process.memoryUsage.rss();
    await assert.rejects(inspect(file, path.dirname(file), {}), costly('VALIDATION_MAX_MEMORY_MB'));
    assert.ok(process.memoryUsage.rss() - rss < 64 * 1024 * 1024, 'the cost stayed in the child');
    assert.deepEqual(children(), []);
  });

  test('a model that takes too long is refused at VALIDATION_TIMEOUT_MS', async () => {
    const inspect = createProcessInspector({ ...DEFAULTS, maxMemoryMb: 8192, memoryBaseMb: 8192, timeoutMs: 1500 }, logger);
    const file = await staged('chain', identityChainModel());
    const started = performance.now();
    await assert.rejects(inspect(file, path.dirname(file), {}), costly('VALIDATION_TIMEOUT_MS'));
    assert.ok(performance.now() - started < 30_000);
    assert.deepEqual(children(), []);
  });

  test('what the runtime refuses is INVALID_MODEL, and the message names no file', async () => {
    const inspect = createProcessInspector(DEFAULTS, logger);
    const file = await staged('unknown', unknownOperatorModel());
    await assert.rejects(inspect(file, path.dirname(file), {}), (err: unknown) => {
      const e = err as InferrerError;
      assert.equal(e.code, 'INVALID_MODEL');
      assert.match(e.message, /NoSuchOperator/);
      assert.doesNotMatch(JSON.stringify(e.toJSON()), new RegExp(`${dir}|/onnxruntime_src|model\\.onnx`));
      return true;
    });
    const text = await staged('text', Buffer.from('not a model'));
    await assert.rejects(inspect(text, path.dirname(text), {}), { code: 'INVALID_MODEL' });
  });

  test('validations run one at a time', async () => {
    const inspect = createProcessInspector(DEFAULTS, logger);
    const files = await Promise.all([1, 2, 3].map((i) => staged(`iris${i}`, IRIS)));
    let most = 0;
    const watch = setInterval(() => (most = Math.max(most, children().length)), 10);
    const all = await Promise.all(files.map((f) => inspect(f, path.dirname(f), {})));
    clearInterval(watch);
    assert.equal(all.length, 3);
    assert.equal(most, 1);
  });
});
