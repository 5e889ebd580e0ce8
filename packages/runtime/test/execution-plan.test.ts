import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { type Measurement, type PlanRequest, cgroupCpuQuota, candidateLayouts, cpuBudget, inlineRuntime, loadPlanned, pickBatch } from '@inferrer/runtime';
import { IRIS } from './fixtures.ts';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;

function valueInfo(name: string, dims: (number | string)[]): InstanceType<typeof onnx.ValueInfoProto> {
  return onnx.ValueInfoProto.create({
    name,
    type: onnx.TypeProto.create({
      tensorType: onnx.TypeProto.Tensor.create({
        elemType: FLOAT,
        shape: onnx.TensorShapeProto.create({ dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) }),
      }),
    }),
  });
}

/**
 * y = x + 0 · Σ(W·m)·W·…·W with m = mean(x): a fixed chain of 256×256 matmuls per run whatever the rows
 * (seeded by the input, so ONNX Runtime cannot fold it away): a batch costs what one row costs.
 */
function fixedCostModel(): Buffer {
  const n = 256;
  const w = new Float32Array(n * n).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  const node = [
    onnx.NodeProto.create({ opType: 'ReduceMean', input: ['x'], output: ['m'] }),
    onnx.NodeProto.create({ opType: 'Mul', input: ['w', 'm'], output: ['h0'] }),
  ];
  const chain = 6;
  for (let i = 0; i < chain; i++) node.push(onnx.NodeProto.create({ opType: 'MatMul', input: [`h${i}`, 'w'], output: [`h${i + 1}`] }));
  node.push(
    onnx.NodeProto.create({ opType: 'ReduceSum', input: [`h${chain}`], output: ['s'] }),
    onnx.NodeProto.create({ opType: 'Mul', input: ['s', 'zero'], output: ['z'] }),
    onnx.NodeProto.create({ opType: 'Add', input: ['x', 'z'], output: ['y'] }),
  );
  const graph = onnx.GraphProto.create({
    name: 'fixed-cost',
    node,
    initializer: [
      onnx.TensorProto.create({ name: 'w', dims: [n, n], dataType: FLOAT, rawData: new Uint8Array(w.buffer) }),
      onnx.TensorProto.create({ name: 'zero', dims: [], dataType: FLOAT, rawData: new Uint8Array(new Float32Array([0]).buffer) }),
    ],
    input: [valueInfo('x', ['batch', 4])],
    output: [valueInfo('y', ['batch', 4])],
  });
  return Buffer.from(onnx.ModelProto.encode(onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: '', version: 13 }], graph })).finish());
}

/** Identity on x [batch, seq]: a dynamic dimension besides the batch. */
function dynamicModel(): Buffer {
  const graph = onnx.GraphProto.create({
    name: 'dyn',
    node: [onnx.NodeProto.create({ opType: 'Identity', input: ['x'], output: ['y'] })],
    input: [valueInfo('x', ['batch', 'seq'])],
    output: [valueInfo('y', ['batch', 'seq'])],
  });
  return Buffer.from(onnx.ModelProto.encode(onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: '', version: 13 }], graph })).finish());
}

const m = (instances: number, intraOpThreads: number, batch: number, rowsPerS: number): Measurement => ({
  instances,
  intraOpThreads,
  batch,
  rowsPerS,
  msPerBatch: (instances * batch * 1000) / rowsPerS,
});

function request(file: string, over: Partial<PlanRequest> = {}): PlanRequest {
  return {
    file,
    session: { interOpThreads: 1, graphOptimizationLevel: 'all', executionProviders: ['cpu'] },
    fixed: {},
    cpus: { cpus: 1, source: 'test' },
    batchCap: 32,
    maxInstances: 64,
    budgetMs: 20_000,
    defaults: { instances: 1, intraOpThreads: 1, maxBatchSize: 32 },
    ...over,
  };
}

describe('execution plan', () => {
  let dir: string;
  let fixedCost: string;
  let dynamic: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'plan-test-'));
    fixedCost = path.join(dir, 'fixed-cost.onnx');
    dynamic = path.join(dir, 'dynamic.onnx');
    await writeFile(fixedCost, fixedCostModel());
    await writeFile(dynamic, dynamicModel());
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('batches only when they pay: 1 unless a batch size gives 10 % more rows/s than single rows, then the smallest near the best', () => {
    assert.deepEqual(pickBatch([m(1, 1, 1, 100), m(1, 1, 2, 104), m(1, 1, 4, 108)]), { batch: 1, rowsPerS: 100 });
    assert.deepEqual(pickBatch([m(1, 1, 1, 100), m(1, 1, 2, 150), m(1, 1, 4, 180), m(1, 1, 8, 196), m(1, 1, 16, 199)]), { batch: 8, rowsPerS: 196 });
    assert.deepEqual(pickBatch([m(1, 1, 1, 100), m(1, 1, 2, 112), m(1, 1, 4, 109)]), { batch: 2, rowsPerS: 112 });
    // Only a fixed batch size measured (no single-row point): that size.
    assert.deepEqual(pickBatch([m(2, 1, 8, 50)]), { batch: 8, rowsPerS: 50 });
  });

  test('figures the time ran out before confirming never turn batching on (a busy neighbour during single rows fakes any gain)', () => {
    const resnetOnSlowCpu = [m(1, 1, 1, 5.1), m(1, 1, 2, 8.1), m(1, 1, 4, 10.4), m(1, 1, 8, 10.5)];
    assert.deepEqual(pickBatch(resnetOnSlowCpu, true), { batch: 4, rowsPerS: 10.4 });
    assert.deepEqual(pickBatch(resnetOnSlowCpu, false), { batch: 1, rowsPerS: 5.1 });
    // Only a fixed batch size measured (no single rows to compare with): that size, confirmed or not.
    assert.deepEqual(pickBatch([m(2, 1, 8, 50)], false), { batch: 8, rowsPerS: 50 });
  });

  test('candidate layouts use the cores: one slot with all of them, one per core, and one between on larger machines; settings fix them', () => {
    const layouts = (over: Partial<PlanRequest>) => candidateLayouts(request('x', over)).map((l) => `${l.instances}x${l.intraOpThreads}`);
    assert.deepEqual(layouts({ cpus: { cpus: 1, source: '' } }), ['1x1']);
    assert.deepEqual(layouts({ cpus: { cpus: 2, source: '' } }), ['1x2', '2x1']);
    assert.deepEqual(layouts({ cpus: { cpus: 16, source: '' } }), ['1x16', '16x1', '4x4']);
    assert.deepEqual(layouts({ cpus: { cpus: 16, source: '' }, maxInstances: 3 }), ['1x16', '3x1', '3x4']);
    assert.deepEqual(layouts({ cpus: { cpus: 8, source: '' }, fixed: { instances: { value: 2, source: 'model config' } } }), ['2x4']);
    assert.deepEqual(layouts({ cpus: { cpus: 8, source: '' }, fixed: { intraOpThreads: { value: 2, source: 'worker setting' } } }), ['4x2']);
    assert.deepEqual(layouts({ cpus: { cpus: 8, source: '' }, budgetMs: 0 }), ['1x1']);
    assert.deepEqual(
      layouts({ cpus: { cpus: 8, source: '' }, session: { interOpThreads: 1, graphOptimizationLevel: 'all', executionProviders: ['cuda', 'cpu'] } }),
      ['1x1'],
    );
  });

  test('a model whose batch costs what one row costs gets a large batch; every point measured is reported', async () => {
    const { session, plan } = await loadPlanned(request(fixedCost, { batchCap: 16 }));
    try {
      // 16, where a batch of 16 measures twice the rows/s of one of 8; 8 where a busy machine's time slices
      // (a few ms, against a run of about one) made 16 look no better (seen with two busy loops on 2 cores).
      assert.ok(plan.maxBatchSize === 16 || plan.maxBatchSize === 8, plan.reason);
      assert.deepEqual(
        plan.measured.map((p) => p.batch),
        [1, 2, 4, 8, 16],
      );
      assert.equal(plan.sources.maxBatchSize, 'measured');
      assert.match(plan.reason, /1 slot × 1 thread, batches of up to (16|8): .* rows\/s measured here; batches of \1 gave \d+ % more rows\/s than single rows/);
      assert.equal(session.instances, 1);
      assert.equal((await session.run({ x: { type: 'float32', dims: [2, 4], data: new Float32Array(8).fill(1) } })).outputs.y!.dims.join(), '2,4');
    } finally {
      await session.dispose();
    }
  });

  test('a time for measuring too short to try batches and confirm them: single rows, and the reason says so (not that batching was measured)', async () => {
    const { session, plan } = await loadPlanned(request(fixedCost, { budgetMs: 1 }));
    try {
      assert.deepEqual(
        plan.measured.map((p) => p.batch),
        [1],
      );
      assert.equal(plan.maxBatchSize, 1);
      assert.match(
        plan.reason,
        /no batching: .*; a row takes [\d.]+ ms here, so measuring batches and confirming them would not fit the time for measuring \(PLAN_MEASURE_MS\)/,
      );
    } finally {
      await session.dispose();
    }
  });

  test('with two cores both layouts are measured and the session kept is the chosen one', async () => {
    const { session, plan } = await loadPlanned(request(fixedCost, { cpus: { cpus: 2, source: 'test' }, batchCap: 4 }));
    try {
      const layouts = new Set(plan.measured.map((p) => `${p.instances}x${p.intraOpThreads}`));
      assert.deepEqual([...layouts].sort(), ['1x2', '2x1']);
      assert.equal(session.instances, plan.instances);
      assert.ok(['1x2', '2x1'].includes(`${plan.instances}x${plan.intraOpThreads}`));
      assert.match(plan.reason, /best of 1 slot × 2 threads \/ 2 slots × 1 thread/);
    } finally {
      await session.dispose();
    }
  });

  test('what settings fix is kept and nothing is measured when nothing is left to choose', async () => {
    const fixed = {
      instances: { value: 2, source: 'model config' as const },
      intraOpThreads: { value: 1, source: 'worker setting' as const },
      maxBatchSize: { value: 4, source: 'model config' as const },
    };
    const { session, plan } = await loadPlanned(request(IRIS, { cpus: { cpus: 8, source: 'test' }, fixed }));
    try {
      assert.deepEqual([plan.instances, plan.intraOpThreads, plan.maxBatchSize, session.instances], [2, 1, 4, 2]);
      assert.deepEqual(plan.sources, { instances: 'model config', intraOpThreads: 'worker setting', maxBatchSize: 'model config' });
      assert.deepEqual(plan.measured, []);
      assert.equal(plan.reason, '2 slots × 1 thread, batches of up to 4 (as set)');
    } finally {
      await session.dispose();
    }
  });

  test('a model whose single row is cheaper than cheapMs gets one single-threaded slot and batches up to the cap, from one measurement', async () => {
    // iris runs in well under a millisecond; 50 ms leaves room for a loaded machine.
    const { session, plan } = await loadPlanned(request(IRIS, { cpus: { cpus: 4, source: 'test' }, batchCap: 16, cheapMs: 50 }));
    try {
      assert.deepEqual([plan.instances, plan.intraOpThreads, plan.maxBatchSize, session.instances], [1, 1, 16, 1]);
      assert.deepEqual(
        plan.measured.map((p) => [p.instances, p.intraOpThreads, p.batch]),
        [[1, 4, 1]],
        'only single rows, on the first layout (one slot with every core)',
      );
      assert.match(
        plan.reason,
        /^1 slot × 1 thread, batches of up to 16: a single row runs in [\d.]+ ms here( \([\d.]+ ms with the hand-off to its runtime thread\))?, under 50 ms, so per-run overhead is most of its cost/,
      );
      assert.equal(plan.sources.instances, 'measured');
      const [probe] = plan.measured;
      assert.ok(probe!.computeMs! > 0 && probe!.computeMs! <= probe!.msPerBatch, JSON.stringify(probe));
    } finally {
      await session.dispose();
    }
    // The same model with cheapMs 0 is measured on every layout.
    const full = await loadPlanned(request(IRIS, { cpus: { cpus: 2, source: 'test' }, batchCap: 4, cheapMs: 0 }));
    await full.session.dispose();
    assert.deepEqual([...new Set(full.plan.measured.map((p) => `${p.instances}x${p.intraOpThreads}`))].sort(), ['1x2', '2x1']);
  });

  test('cheap is what a row takes to run, not its hand-off to a runtime thread (which waits for a core when every core is busy)', async () => {
    // A threshold between iris's run and its round trip to a runtime thread: the run alone decides.
    const probe = await loadPlanned(request(IRIS, { cpus: { cpus: 4, source: 'test' }, batchCap: 16, cheapMs: 50 }));
    await probe.session.dispose();
    const { computeMs, msPerBatch } = probe.plan.measured[0]!;
    assert.ok(computeMs !== undefined && computeMs < msPerBatch, JSON.stringify(probe.plan.measured[0]));
    // Twice the run: under what the round trip took here (several times the run), over the run's own noise.
    const cheapMs = Math.min(2 * computeMs, msPerBatch);
    const { session, plan } = await loadPlanned(request(IRIS, { cpus: { cpus: 4, source: 'test' }, batchCap: 16, cheapMs }));
    await session.dispose();
    assert.match(
      plan.reason,
      /^1 slot × 1 thread, batches of up to 16: a single row runs in [\d.]+ ms here( \([\d.]+ ms with the hand-off to its runtime thread\))?, under/,
    );
    assert.equal(plan.measured.length, 1, 'nothing more measured');
  });

  test("a cheap model whose row, measured on the worker's own thread, runs within inline.maxRunMs runs there, unless refused", async () => {
    const held = inlineRuntime.held;
    const input = { input: { type: 'float32' as const, dims: [2, 4], data: new Float32Array([5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]) } };
    const threaded = await loadPlanned(request(IRIS, { cheapMs: 50 }));
    const expected = await threaded.session.run(structuredClone(input));
    await threaded.session.dispose();
    assert.equal(threaded.plan.inline, false, 'no inline option: a runtime thread');

    const { session, plan } = await loadPlanned(request(IRIS, { cheapMs: 50, inline: { maxRunMs: 50, refusal: async () => undefined } }));
    try {
      assert.equal(plan.inline, true);
      assert.equal(inlineRuntime.held, held + 1, 'the session is on the inline runtime');
      assert.deepEqual(
        plan.measured.map((p) => [p.batch, p.inline === true]),
        [
          [1, false],
          [1, true],
        ],
      );
      assert.match(plan.reason, /; on the worker's own thread a row runs in [\d.]+ ms, at most 50 ms \(INLINE_RUN_MS\), so it runs there/);
      const got = await session.run(structuredClone(input));
      assert.deepEqual(Array.from(got.outputs.label!.data as BigInt64Array), Array.from(expected.outputs.label!.data as BigInt64Array));
      assert.deepEqual(Array.from(got.outputs.probabilities!.data as Float32Array), Array.from(expected.outputs.probabilities!.data as Float32Array));
      // Loaded again from this plan: inline again, unless this file is refused.
      const again = await loadPlanned(request(IRIS, { earlier: plan, inline: { maxRunMs: 50, refusal: async () => undefined } }));
      assert.equal(again.plan.inline, true);
      await again.session.dispose();
      const refused = await loadPlanned(request(IRIS, { earlier: plan, inline: { maxRunMs: 50, refusal: async () => 'a test says so' } }));
      assert.equal(refused.plan.inline, false);
      assert.match(refused.plan.reason, /this file runs on a runtime thread, not the worker's own, because a test says so$/);
      assert.equal(inlineRuntime.held, held + 1);
      await refused.session.dispose();
    } finally {
      await session.dispose();
    }
    assert.equal(inlineRuntime.held, held, 'disposed: released from the inline runtime');

    const refused = await loadPlanned(request(IRIS, { cheapMs: 50, inline: { maxRunMs: 50, refusal: async () => 'a test says so' } }));
    await refused.session.dispose();
    assert.equal(refused.plan.inline, false);
    assert.match(refused.plan.reason, /; it runs on a runtime thread, not the worker's own, because a test says so$/);

    const slow = await loadPlanned(request(IRIS, { cheapMs: 50, inline: { maxRunMs: 0.0001, refusal: async () => undefined } }));
    await slow.session.dispose();
    assert.equal(slow.plan.inline, false);
    assert.match(slow.plan.reason, /; on the worker's own thread a row runs in [\d.]+ ms, over 0.0001 ms \(INLINE_RUN_MS\), so it runs on a runtime thread$/);
    assert.equal(inlineRuntime.held, held);
  });

  test('a plan from an earlier load is used again without measuring', async () => {
    const earlier = {
      instances: 2,
      intraOpThreads: 1,
      maxBatchSize: 3,
      sources: { instances: 'measured' as const, intraOpThreads: 'measured' as const, maxBatchSize: 'measured' as const },
      cpus: 2,
      cpuSource: 'test',
      measured: [m(2, 1, 1, 100), m(2, 1, 2, 150)],
      measureMs: 1234,
      reason: 'earlier',
      inline: false,
    };
    // One core: measuring would only ever try 1 slot × 1 thread.
    const { session, plan } = await loadPlanned(request(IRIS, { earlier }));
    try {
      assert.equal(session.instances, 2);
      assert.deepEqual([plan.instances, plan.intraOpThreads, plan.maxBatchSize], [2, 1, 3]);
      assert.deepEqual(plan.measured, earlier.measured);
      assert.equal(plan.reason, 'earlier (measured at an earlier load here)');
      assert.notEqual(plan.measureMs, 1234);
    } finally {
      await session.dispose();
    }
  });

  test('an input with a dynamic dimension besides the batch, or measuring off: the defaults, saying why', async () => {
    const dyn = await loadPlanned(request(dynamic));
    await dyn.session.dispose();
    assert.deepEqual([dyn.plan.instances, dyn.plan.intraOpThreads, dyn.plan.maxBatchSize], [1, 1, 32]);
    assert.match(dyn.plan.reason, /not measured: an input has a dynamic dimension other than the batch axis/);
    assert.equal(dyn.plan.sources.instances, 'default');
    const off = await loadPlanned(request(IRIS, { budgetMs: 0, cpus: { cpus: 4, source: 'test' } }));
    await off.session.dispose();
    assert.deepEqual([off.plan.instances, off.plan.intraOpThreads, off.plan.maxBatchSize], [1, 1, 32]);
    assert.match(off.plan.reason, /not measured: measuring at load is off/);
  });

  test('cores: CPUS, else the cores this process may run on capped by a cgroup v2 or v1 CPU quota', async () => {
    assert.deepEqual(cpuBudget(3), { cpus: 3, source: 'CPUS' });
    const root = await mkdtemp(path.join(os.tmpdir(), 'cgroup-'));
    try {
      assert.equal(cgroupCpuQuota(root), undefined);
      await writeFile(path.join(root, 'cpu.max'), 'max 100000\n');
      assert.equal(cgroupCpuQuota(root), undefined);
      await writeFile(path.join(root, 'cpu.max'), '150000 100000\n');
      assert.equal(cgroupCpuQuota(root), 2);
      await writeFile(path.join(root, 'cpu.max'), '100000 100000\n');
      assert.equal(cgroupCpuQuota(root), 1);
      const b = cpuBudget(undefined, root);
      assert.equal(b.cpus, Math.min(1, os.availableParallelism()));
      const v1 = await mkdtemp(path.join(os.tmpdir(), 'cgroup-v1-'));
      await mkdir(path.join(v1, 'cpu'));
      await writeFile(path.join(v1, 'cpu', 'cpu.cfs_quota_us'), '250000\n');
      await writeFile(path.join(v1, 'cpu', 'cpu.cfs_period_us'), '100000\n');
      assert.equal(cgroupCpuQuota(v1), 3);
      await writeFile(path.join(v1, 'cpu', 'cpu.cfs_quota_us'), '-1\n');
      assert.equal(cgroupCpuQuota(v1), undefined);
      await rm(v1, { recursive: true, force: true });
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
