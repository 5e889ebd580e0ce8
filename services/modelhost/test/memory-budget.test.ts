import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ModelStore, type VersionRecord } from '@inferrer/model-store';
import { checkOnnxFile } from '@inferrer/model-store/onnx-check';
import { SessionThreads } from '@inferrer/runtime';
import { createLogger } from '../../../packages/telemetry/src/index.ts';
import { MLP_SIZES, mlpModel } from '../../../test/helpers/mlp-models.ts';
import { loadConfig } from '../src/config.ts';
import { MemoryBudget, type Resident, defaultBudget, memoryLimit } from '../src/memory-budget.ts';
import { ModelRegistry } from '../src/registry.ts';

const MiB = 1024 * 1024;

/** A store in `dir` holding these models, each of which validation says needs 64 KB. */
async function storeOf(dir: string, models: [string, Buffer][]): Promise<ModelStore> {
  const store = new ModelStore(dir, {
    inspect: async (file, folder) => ({
      facts: await checkOnnxFile(file, folder),
      signature: { inputs: [], outputs: [] },
      cost: { memory_bytes: 64 * 1024, ms: 0 },
    }),
  });
  await store.init();
  for (const [name, bytes] of models) {
    const staged = path.join(await store.stagingDir(), 'model.onnx');
    await writeFile(staged, bytes);
    await store.put(name, staged);
  }
  return store;
}

describe('memoryLimit', () => {
  const files =
    (map: Record<string, string>) =>
    (f: string): string => {
      if (f in map) return map[f]!;
      throw new Error('ENOENT');
    };

  test('cgroup v2 limit, then v1, else the host', () => {
    assert.deepEqual(memoryLimit(files({ '/sys/fs/cgroup/memory.max': '2147483648\n' })), { bytes: 2 * 1024 * MiB, source: 'cgroup' });
    assert.deepEqual(memoryLimit(files({ '/sys/fs/cgroup/memory/memory.limit_in_bytes': '536870912' })), { bytes: 512 * MiB, source: 'cgroup' });
    // No limit: v2 says "max", v1 a number near 2^63.
    assert.deepEqual(memoryLimit(files({ '/sys/fs/cgroup/memory.max': 'max\n', '/sys/fs/cgroup/memory/memory.limit_in_bytes': '9223372036854771712' })), {
      bytes: os.totalmem(),
      source: 'host',
    });
    assert.deepEqual(memoryLimit(files({})), { bytes: os.totalmem(), source: 'host' });
  });

  test('the default budget is 70 % of the limit less the worker, at least 64 MiB', () => {
    assert.equal(defaultBudget(1000 * MiB, 100 * MiB), 600 * MiB);
    assert.equal(defaultBudget(100 * MiB, 90 * MiB), 64 * MiB);
  });
});

describe('MemoryBudget', () => {
  const version = (bytes: number, memory?: number): VersionRecord =>
    ({ bytes, ...(memory === undefined ? {} : { validation: { memory_bytes: memory, ms: 1 } }) }) as VersionRecord;

  test('a version costs at least what validation measured (times its instances), else twice its file plus 1 MiB', () => {
    const b = new MemoryBudget(100 * MiB);
    assert.equal(b.floor(version(10 * MiB, 3 * MiB), 2), 6 * MiB);
    assert.equal(b.floor(version(10 * MiB), 1), 21 * MiB);
  });

  test("a loaded version counts at least what its session held at validation; room is made for validation's peak", () => {
    const b = new MemoryBudget(100 * MiB);
    const v = { bytes: MiB, validation: { memory_bytes: 3 * MiB, resident_bytes: 2 * MiB, ms: 1 } } as VersionRecord;
    assert.equal(b.floor(v, 2), 4 * MiB);
    assert.equal(b.peak(v, 2), 6 * MiB);
    assert.equal(b.expected('m@1', v, 2), 6 * MiB);
    // Memory an unloaded model gave back is reused: the process did not grow, the held figure counts.
    assert.equal(b.measured('m@1', v, 2, 0), 4 * MiB);
    assert.equal(b.measured('m@1', v, 2, 5 * MiB), 5 * MiB);
    // Records from before resident_bytes was measured, and nonsense figures, count the peak.
    assert.equal(b.floor(version(MiB, 3 * MiB), 1), 3 * MiB);
    assert.equal(b.floor({ bytes: MiB, validation: { memory_bytes: 3 * MiB, resident_bytes: 0, ms: 1 } } as VersionRecord, 1), 3 * MiB);
    assert.equal(b.floor({ bytes: MiB, validation: { memory_bytes: 3 * MiB, resident_bytes: 9 * MiB, ms: 1 } } as VersionRecord, 1), 3 * MiB);
    // A reading below the file's bytes (records validated before the reading was exact) counts the file.
    assert.equal(b.floor({ bytes: MiB, validation: { memory_bytes: 3 * MiB, resident_bytes: 1000, ms: 1 } } as VersionRecord, 2), 2 * MiB);
  });

  test('a load counts what it measured, never less than the floor; the next load of the version expects the last measurement', () => {
    const b = new MemoryBudget(100 * MiB);
    const v = version(MiB, 2 * MiB);
    assert.equal(b.expected('m@1', v, 1), 2 * MiB);
    // Memory an unloaded model gave back is reused: the process did not grow.
    assert.equal(b.measured('m@1', v, 1, 0), 2 * MiB);
    assert.equal(b.measured('m@1', v, 1, 5 * MiB), 5 * MiB);
    assert.equal(b.expected('m@1', v, 1), 5 * MiB);
    assert.equal(b.expected('m@1', v, 2), 4 * MiB, 'instances are measured apart');
  });

  test('victims: idle models, least recently used first, preload ones last, never pinned, leased or busy ones', () => {
    const b = new MemoryBudget(10 * MiB);
    const m = (name: string, lastUsed: number, extra: Partial<Resident & { busy: boolean }> = {}) => ({
      name,
      version: 1,
      costBytes: 2 * MiB,
      lastUsed,
      leases: 0,
      pinned: false,
      preload: false,
      busy: false,
      ...extra,
    });
    const models = [m('a', 5), m('b', 1, { preload: true }), m('c', 2), m('d', 3, { pinned: true }), m('e', 0, { leases: 1 }), m('f', 4, { busy: true })];
    const names = (v: typeof models | undefined) => v?.map((x) => x.name);
    assert.deepEqual(names(b.victims(models, 12 * MiB, 0, (x) => x.busy)), ['c']);
    assert.deepEqual(names(b.victims(models, 12 * MiB, 3 * MiB, (x) => x.busy)), ['c', 'a', 'b']);
    assert.equal(
      b.victims(models, 12 * MiB, 7 * MiB, (x) => x.busy),
      undefined,
      'the rest are pinned, held or busy',
    );
    assert.deepEqual(names(b.victims(models, 4 * MiB, 2 * MiB, (x) => x.busy)), [], 'it fits');
    assert.deepEqual(names(b.victims(models, 4 * MiB, 2 * MiB, (x) => x.busy, 2)), ['c', 'a'], 'a count to free as well');
  });

  test('victims: the fewest lookups per byte go first, whatever their last use; old lookups fade', () => {
    const b = new MemoryBudget(6 * MiB);
    const m = (name: string, lastUsed: number, costBytes = 2 * MiB): Resident => ({
      name,
      version: 1,
      costBytes,
      lastUsed,
      leases: 0,
      pinned: false,
      preload: false,
    });
    for (let i = 0; i < 50; i++) b.touch('hot', 1, 3);
    for (let i = 0; i < 10; i++) b.touch('warm', 1, 3);
    b.touch('once', 1, 3);
    const models = [m('hot', 1), m('warm', 2), m('once', 3)];
    const names = (v: Resident[] | undefined) => v?.map((x) => x.name);
    // 'once' was used last, yet it is the one that goes: a one-off does not push out a model in demand.
    assert.deepEqual(names(b.victims(models, 6 * MiB, 2 * MiB, () => false)), ['once']);
    assert.deepEqual(names(b.victims(models, 6 * MiB, 4 * MiB, () => false)), ['once', 'warm']);
    // Per byte: ten lookups of a model ten times the size of one asked for twice are worth less.
    b.touch('small', 1, 3);
    b.touch('small', 1, 3);
    assert.deepEqual(names(b.victims([m('warm', 1, 4 * MiB), m('small', 2, 0.2 * MiB)], 6 * MiB, 1 * MiB, () => false)), ['warm']);
    assert.equal(b.frequency('hot', 1), 50);
    // Every 1,000 lookups (at least ten per model loaded) the counts halve; a count below 2 is forgotten.
    for (let i = 0; i < 1000 - 63; i++) b.touch('other', 1, 3);
    assert.equal(b.frequency('hot', 1), 25);
    assert.equal(b.frequency('once', 1), 0);
  });

  test("resident: the real memory models hold is the process's resident memory above the least it was seen holding beside its count", () => {
    const b = new MemoryBudget(100 * MiB);
    assert.equal(b.resident(200 * MiB, 0), 0, "the first sight sets the process's own");
    assert.equal(b.resident(230 * MiB, 20 * MiB), 30 * MiB, 'memory beyond the count (fragmentation) shows');
    assert.equal(b.resident(205 * MiB, 10 * MiB), 10 * MiB, 'a lower own is taken as the own');
  });
});

/**
 * glibc's allocator as the modelhost runs it (the launcher and the images set it): a fixed threshold above
 * which blocks are mapped apart and given back to the system when freed. Left to itself glibc raises the
 * threshold after the first such block is freed, and a session's weights then stay in the heap after it is
 * released: the process keeps growing however many models it unloads.
 */
const ALLOCATOR_ENV = { MALLOC_MMAP_THRESHOLD_: '131072' };
const CHURN = 'loading and unloading 150 distinct models keeps the process within the budget, though later loads reuse freed memory and count little';

describe('ModelRegistry within its budget in real memory', () => {
  // The allocator reads its settings when the process starts: the test runs in a process started so.
  if (process.env.MALLOC_MMAP_THRESHOLD_ !== ALLOCATOR_ENV.MALLOC_MMAP_THRESHOLD_) {
    test(`${CHURN} (in a process with the modelhost's allocator settings)`, (t) => {
      const r = spawnSync(
        process.execPath,
        ['--import', 'tsx', '--test', '--test-reporter=spec', `--test-name-pattern=${CHURN}`, fileURLToPath(import.meta.url)],
        {
          // Without the test runner's context: the child reports on its own, not to this runner.
          env: { ...process.env, NODE_TEST_CONTEXT: undefined, ...ALLOCATOR_ENV },
          encoding: 'utf8',
          timeout: 120_000,
        },
      );
      for (const line of r.stdout.split('\n')) if (line.includes('resident growth') || line.includes('rror')) t.diagnostic(line.trim());
      assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /pass 1/);
    });
    return;
  }
  test(CHURN, async (t) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-budget-'));
    const threads = new SessionThreads(1);
    try {
      // Validation says each model needs 64 KB: a load that reuses memory freed by an unloaded model
      // measures no growth and counts that little, so only the process's real memory can hold the budget.
      const n = 150;
      const store = await storeOf(
        dir,
        Array.from({ length: n }, (_, i) => [`m-${i}`, mlpModel(MLP_SIZES[1 + (i % 2)]!, 7000 + i)]),
      );
      await threads.warm();
      const budget = 24 * MiB;
      const config = loadConfig({
        MODEL_DIR: dir,
        MODEL_MEMORY_BYTES: String(budget),
        INSTANCES: '1',
        INTRA_OP_THREADS: '1',
        MAX_BATCH_SIZE: '1',
        PLAN_MEASURE_MS: '0',
        MAX_LOADED_MODELS: '0',
      });
      const registry = new ModelRegistry(
        store,
        config,
        createLogger({ service: 'test', level: 'error' }),
        { observer: () => ({}) },
        { budgetBytes: budget, threads },
      );
      const rss = (): number => {
        const m = process.memoryUsage();
        return m.rss - m.heapTotal;
      };
      const start = rss();
      let peak = 0;
      let counted = 0;
      for (let round = 0; round < 2; round++) {
        for (let i = 0; i < n; i++) {
          const { model } = await registry.acquire(`m-${(i * 7 + round) % n}`, undefined);
          registry.release(model);
          peak = Math.max(peak, rss() - start);
          counted = Math.max(counted, registry.memory().used_bytes);
        }
      }
      const end = registry.memory().used_bytes;
      t.diagnostic(
        `budget ${budget / MiB} MB: resident growth at most ${(peak / MiB).toFixed(1)} MB, counted at most ${(counted / MiB).toFixed(1)} MB and ${(end / MiB).toFixed(1)} MB at the end, ${registry.entries().length} models loaded`,
      );
      assert.ok(registry.entries().length > 3, 'models stay loaded');
      // Models that counted little made room by their real memory: the count alone would have let in more.
      assert.ok(end < budget * 0.8, `the count at the end, ${(end / MiB).toFixed(1)} MB, is below the budget by what the process holds beyond it`);
      // A load adds its model before the next one trims: one model (about 1.5 MB) above the budget at most.
      assert.ok(peak <= budget * 1.15 + 2 * MiB, `resident memory grew ${(peak / MiB).toFixed(1)} MB for a budget of ${budget / MiB} MB`);
      await registry.close(5000);
    } finally {
      await threads.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('ModelRegistry budget watch', () => {
  test('says when the models hold well over the budget in resident memory, with what the worker holds, at most every 30 s', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-over-'));
    const threads = new SessionThreads(1);
    try {
      const store = await storeOf(
        dir,
        ['a', 'b', 'c', 'd'].map((name) => [name, mlpModel(MLP_SIZES[0]!, name.charCodeAt(0))]),
      );
      const budget = 8 * MiB;
      const config = loadConfig({ MODEL_DIR: dir, MODEL_MEMORY_BYTES: String(budget), PLAN_MEASURE_MS: '0', MAX_LOADED_MODELS: '0' });
      const lines: string[] = [];
      const stream = new PassThrough();
      stream.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter(Boolean)));
      // The worker's own memory stays at 100 MiB while models load; then something other than them takes 2 × the budget.
      let extra = 0;
      const registry = new ModelRegistry(
        store,
        config,
        createLogger({ service: 'test', level: 'warn', stream }),
        { observer: () => ({}) },
        { budgetBytes: budget, threads, rss: () => 100 * MiB + extra },
      );
      const over = (): Record<string, unknown>[] =>
        lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'the models hold more than the memory budget in resident memory');
      for (const name of ['a', 'b']) registry.release((await registry.acquire(name, undefined)).model);
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(over(), [], 'within the budget: nothing said');
      extra = 2 * budget;
      registry.release((await registry.acquire('c', undefined)).model);
      registry.release((await registry.acquire('d', undefined)).model);
      await new Promise((r) => setImmediate(r));
      const said = over();
      assert.equal(said.length, 1, JSON.stringify(lines));
      assert.equal(said[0]!.level, 'warn');
      assert.equal(said[0]!.budgetMb, 8);
      assert.ok(Number(said[0]!.residentMb) >= 16 && Number(said[0]!.countedMb) < 1, JSON.stringify(said[0]));
      // What is over is not the models': unloading every idle one would not bring it back, so none is.
      assert.equal(said[0]!.unloading, 0);
      for (const k of ['processResidentMb', 'heapMb', 'buffersMb']) assert.equal(typeof said[0]![k], 'number', k);
      assert.equal(registry.entries().length, 4);
      await registry.close(5000);
    } finally {
      await threads.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('ModelRegistry execution plans', () => {
  test('a model of the same structure as one measured here (a thousand MLPs of three shapes) loads with its plan, unmeasured; another shape is measured', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-plans-'));
    const threads = new SessionThreads(1);
    try {
      const store = new ModelStore(dir, {
        inspect: async (file, folder) => {
          const inputs = MLP_SIZES.map((s) => [{ name: 'x', type: 'float32' as const, shape: ['batch', s.inputs] }]);
          const shape = (await readFile(file)).length === mlpModel(MLP_SIZES[0]!, 1).length ? 0 : 1;
          return {
            facts: await checkOnnxFile(file, folder),
            signature: { inputs: inputs[shape]!, outputs: [{ name: 'y', type: 'float32' as const, shape: ['batch', MLP_SIZES[shape]!.outputs] }] },
          };
        },
      });
      await store.init();
      for (const [name, size, seed] of [
        ['a', 0, 1],
        ['b', 0, 2],
        ['c', 1, 3],
      ] as const) {
        const staged = path.join(await store.stagingDir(), 'model.onnx');
        await writeFile(staged, mlpModel(MLP_SIZES[size]!, seed));
        await store.put(name, staged);
      }
      await threads.warm();
      const config = loadConfig({ MODEL_DIR: dir, MODEL_MEMORY_BYTES: String(64 * MiB), CPUS: '1', PLAN_MEASURE_MS: '2000' });
      const registry = new ModelRegistry(
        store,
        config,
        createLogger({ service: 'test', level: 'error' }),
        { observer: () => ({}) },
        { budgetBytes: 64 * MiB, threads },
      );
      const [a, b, c] = [await registry.get('a'), await registry.get('b'), await registry.get('c')];
      assert.ok(a.plan.measured.length > 0 && !a.plan.reason.endsWith('(measured at an earlier load here)'), a.plan.reason);
      assert.equal(b.plan.reason, `${a.plan.reason} (measured at an earlier load here)`);
      assert.equal(b.plan.maxBatchSize, a.plan.maxBatchSize);
      assert.ok(c.plan.measured.length > 0 && !c.plan.reason.endsWith('(measured at an earlier load here)'), `another shape is measured: ${c.plan.reason}`);
      await registry.close(5000);
    } finally {
      await threads.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
