import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InferrerError, type NamedTensors } from '@inferrer/core';
import { AdaptiveBatcher, type BatchObserver, type BatcherOptions, type InferResult, OnnxSession, ServiceTimes } from '@inferrer/runtime';
import { FIXED_BATCH, IRIS, IRIS_ROWS, MULTI_IO, SLOW, close, f32 } from './fixtures.ts';

/**
 * A deadline `ms` from now: long enough for runs of slow.onnx on a loaded machine (a result after its
 * deadline is refused; the batcher's timers stop once its queue is empty).
 */
const soon = (ms = 30_000): number => performance.now() + ms;

const BATCHING: BatcherOptions = { maxBatchSize: 8, maxQueueDelayMs: 0, maxQueueSize: 100, batchable: true };

/** An observer that records what the batcher reports. */
function recorder(): BatchObserver & { batches: [requests: number, rows: number][]; timeouts: number; rejected: string[]; queued: number[] } {
  const r = {
    batches: [] as [number, number][],
    timeouts: 0,
    rejected: [] as string[],
    queued: [] as number[],
    onBatch(requests: number, rows: number) {
      r.batches.push([requests, rows]);
    },
    onQueued(ms: number) {
      r.queued.push(ms);
    },
    onTimeout() {
      r.timeouts++;
    },
    onRejected(code: string) {
      r.rejected.push(code);
    },
  };
  return r;
}

/** Twenty different iris rows: the three dataset rows, nudged. */
const ROWS: number[][] = Array.from({ length: 20 }, (_, i) => IRIS_ROWS[i % 3]!.map((v, j) => Number((v + ((i * (j + 1)) % 7) * 0.1).toFixed(2))));

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    return err instanceof InferrerError ? err.code : String(err);
  }
}

describe('AdaptiveBatcher with iris', () => {
  let iris: OnnxSession;
  /** What each row of ROWS gives when run alone. */
  let alone: NamedTensors[];

  before(async () => {
    iris = await OnnxSession.load(IRIS);
    alone = [];
    for (const row of ROWS) alone.push((await iris.run({ input: f32(1, row) })).outputs);
  });
  after(async () => {
    await iris.dispose();
  });

  function assertSameAsAlone(result: InferResult, i: number): void {
    assert.deepEqual(result.outputs.label!.dims, [1]);
    assert.deepEqual(Array.from(result.outputs.label!.data as BigInt64Array), Array.from(alone[i]!.label!.data as BigInt64Array), `label of row ${i}`);
    assert.deepEqual(result.outputs.probabilities!.dims, [1, 3]);
    close(result.outputs.probabilities!.data as Float32Array, alone[i]!.probabilities!.data as Float32Array, 1e-6, `probabilities of row ${i}`);
  }

  test('20 requests that arrive together share runs from the first one on, and each gets its own answer', async () => {
    const obs = recorder();
    const batcher = new AdaptiveBatcher(iris, BATCHING, obs);
    const results = await Promise.all(ROWS.map((row) => batcher.infer({ input: f32(1, row) }, 1, soon())));
    // The batch is cut after the whole burst is in: batches of at most 8, the first one included.
    assert.deepEqual(obs.batches, [
      [8, 8],
      [8, 8],
      [4, 4],
    ]);
    assert.deepEqual(
      results.map((r) => r.batchRequests),
      [...Array(8).fill(8), ...Array(8).fill(8), 4, 4, 4, 4],
    );
    assert.ok(results.every((r) => r.batchRows === r.batchRequests));
    results.forEach((r, i) => assertSameAsAlone(r, i));
    assert.ok(results.every((r) => r.queueMs >= 0 && r.computeMs >= 0));
    assert.equal(obs.queued.length, 20);
    assert.equal(batcher.depth, 0);
    assert.equal(batcher.inflight, 0);
  });

  test('requests of several rows are stacked and split back, never past maxBatchSize', async () => {
    const obs = recorder();
    const batcher = new AdaptiveBatcher(iris, { ...BATCHING, maxBatchSize: 4 }, obs);
    // Rows per request, all arriving together.
    const sizes = [1, 3, 2, 1, 2, 2, 1, 3, 1];
    let next = 0;
    const requests = sizes.map((n) => {
      const idx = Array.from({ length: n }, () => next++ % ROWS.length);
      return {
        idx,
        p: batcher.infer(
          {
            input: f32(
              n,
              idx.flatMap((i) => ROWS[i]!),
            ),
          },
          n,
          soon(),
        ),
      };
    });
    const results = await Promise.all(requests.map((r) => r.p));
    assert.ok(obs.batches.length < sizes.length, `${obs.batches.length} runs for ${sizes.length} requests`);
    for (const [, rows] of obs.batches) assert.ok(rows <= 4, `a batch of ${rows} rows`);
    assert.equal(
      obs.batches.reduce((n, [, rows]) => n + rows, 0),
      sizes.reduce((a, b) => a + b, 0),
    );
    results.forEach((r, k) => {
      const { idx } = requests[k]!;
      assert.ok(r.batchRows <= 4);
      assert.deepEqual(r.outputs.label!.dims, [idx.length]);
      assert.deepEqual(r.outputs.probabilities!.dims, [idx.length, 3]);
      assert.deepEqual(
        Array.from(r.outputs.label!.data as BigInt64Array),
        idx.map((i) => (alone[i]!.label!.data as BigInt64Array)[0]),
      );
      idx.forEach((i, j) =>
        close((r.outputs.probabilities!.data as Float32Array).subarray(j * 3, j * 3 + 3), alone[i]!.probabilities!.data as Float32Array, 1e-6),
      );
    });
  });

  test('one request larger than maxBatchSize still runs, alone', async () => {
    const obs = recorder();
    const batcher = new AdaptiveBatcher(iris, { ...BATCHING, maxBatchSize: 2 }, obs);
    const r = await batcher.infer({ input: f32(3, IRIS_ROWS.flat()) }, 3, soon());
    assert.deepEqual(Array.from(r.outputs.label!.data as BigInt64Array), [2n, 0n, 1n]);
    assert.deepEqual(obs.batches, [[1, 3]]);
  });

  test('a request of more than SLICE_ELEMENTS runs in slices; a request that arrives meanwhile runs between them', async () => {
    const rows = 25_000;
    const values = Array.from({ length: rows }, (_, i) => ROWS[i % ROWS.length]!).flat();
    const whole = (await iris.run({ input: f32(rows, values) })).outputs;
    const obs = recorder();
    const batcher = new AdaptiveBatcher(iris, BATCHING, obs);
    const order: string[] = [];
    const big = batcher.infer({ input: f32(rows, values) }, rows, soon(20_000)).then((r) => (order.push('big'), r));
    const small = batcher.infer({ input: f32(1, ROWS[3]!) }, 1, soon(20_000)).then((r) => (order.push('small'), r));
    const [r, one] = await Promise.all([big, small]);
    // SLICE_ELEMENTS / 4 elements a row = 16,384 rows a slice; the small request went between the two.
    assert.deepEqual(obs.batches, [
      [1, 16_384],
      [1, 1],
      [1, rows - 16_384],
    ]);
    assert.deepEqual(order, ['small', 'big']);
    assertSameAsAlone(one, 3);
    assert.deepEqual(r.outputs.label!.dims, [rows]);
    assert.deepEqual(r.outputs.probabilities!.dims, [rows, 3]);
    assert.deepEqual(Array.from(r.outputs.label!.data as BigInt64Array), Array.from(whole.label!.data as BigInt64Array));
    close(r.outputs.probabilities!.data as Float32Array, whole.probabilities!.data as Float32Array, 1e-6, 'probabilities');
    assert.equal(r.batchRows, rows);
  });

  test("sliceByBatch (a model on the worker's own thread): a request of more rows than a batch runs a batch at a time, however few its elements", async () => {
    const rows = 20;
    const values = Array.from({ length: rows }, (_, i) => ROWS[i % ROWS.length]!).flat();
    const whole = (await iris.run({ input: f32(rows, values) })).outputs;
    const obs = recorder();
    const batcher = new AdaptiveBatcher(iris, { ...BATCHING, sliceByBatch: true }, obs);
    const r = await batcher.infer({ input: f32(rows, values) }, rows, soon());
    assert.deepEqual(obs.batches, [
      [1, 8],
      [1, 8],
      [1, 4],
    ]);
    assert.deepEqual(Array.from(r.outputs.label!.data as BigInt64Array), Array.from(whole.label!.data as BigInt64Array));
    close(r.outputs.probabilities!.data as Float32Array, whole.probabilities!.data as Float32Array, 1e-6, 'probabilities');
    // Without it, 20 rows of 4 elements are far under SLICE_ELEMENTS: one run.
    const obs2 = recorder();
    await new AdaptiveBatcher(iris, BATCHING, obs2).infer({ input: f32(rows, values) }, rows, soon());
    assert.deepEqual(obs2.batches, [[1, rows]]);
  });

  test('a full queue refuses with QUEUE_FULL and a Retry-After', async () => {
    const obs = recorder();
    const batcher = new AdaptiveBatcher(iris, { ...BATCHING, maxQueueSize: 2 }, obs);
    // The first takes the slot; two wait behind it; the fourth finds the queue full.
    const ps = [batcher.infer({ input: f32(1, ROWS[0]!) }, 1, soon())];
    // The batch is cut in a microtask: after it, the first is running (iris finishes within a turn, so no setImmediate).
    await Promise.resolve();
    assert.equal(batcher.inflight, 1);
    ps.push(...ROWS.slice(1, 4).map((row) => batcher.infer({ input: f32(1, row) }, 1, soon())));
    assert.equal(batcher.depth, 2);
    await assert.rejects(ps[3]!, (err: unknown) => {
      assert.ok(err instanceof InferrerError);
      assert.equal(err.code, 'QUEUE_FULL');
      assert.equal(err.message, 'the queue for this model is full (2 requests waiting)');
      assert.deepEqual(err.details, { limit: 2 });
      assert.equal(err.retryAfter, 1);
      return true;
    });
    const ok = await Promise.all(ps.slice(0, 3));
    ok.forEach((r, i) => assertSameAsAlone(r, i));
    assert.deepEqual(obs.rejected, ['QUEUE_FULL']);
    // Once the queue drains, requests are taken again.
    assertSameAsAlone(await batcher.infer({ input: f32(1, ROWS[5]!) }, 1, soon()), 5);
  });

  test('requests an idle slot takes at once do not count against the queue', async () => {
    const obs = recorder();
    const batcher = new AdaptiveBatcher(iris, { ...BATCHING, maxQueueSize: 2 }, obs);
    // Eight start in the idle slot's first batch, two wait: all ten are taken; the eleventh is refused.
    const ps = ROWS.slice(0, 11).map((row) =>
      batcher.infer({ input: f32(1, row) }, 1, soon()).then(
        () => 'ok',
        (e: InferrerError) => e.code,
      ),
    );
    assert.deepEqual(await Promise.all(ps), [...Array(10).fill('ok'), 'QUEUE_FULL']);
    assert.deepEqual(obs.batches, [
      [8, 8],
      [2, 2],
    ]);
  });

  test('a deadline already past is DEADLINE_EXCEEDED without running', async () => {
    const obs = recorder();
    const batcher = new AdaptiveBatcher(iris, BATCHING, obs);
    await assert.rejects(batcher.infer({ input: f32(1, ROWS[0]!) }, 1, performance.now() - 1), {
      code: 'DEADLINE_EXCEEDED',
      message: /^the request waited \d+ ms in the queue, past its deadline$/,
    });
    assert.equal(obs.timeouts, 1);
    assert.deepEqual(obs.batches, []);
    assert.equal(batcher.depth, 0);
  });

  test('requests leave in arrival order (FIFO) with one slot', async () => {
    for (const maxBatchSize of [1, 4]) {
      const batcher = new AdaptiveBatcher(iris, { ...BATCHING, maxBatchSize });
      const order: number[] = [];
      await Promise.all(ROWS.slice(0, 10).map((row, i) => batcher.infer({ input: f32(1, row) }, 1, soon()).then(() => order.push(i))));
      assert.deepEqual(order, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], `maxBatchSize ${maxBatchSize}`);
    }
  });

  test('requests whose rows differ in shape are never stacked together, and none runs before one that came earlier', async () => {
    const obs = recorder();
    // A queue delay lets all five gather before anything runs.
    const batcher = new AdaptiveBatcher(iris, { ...BATCHING, maxQueueDelayMs: 100 }, obs);
    const started: string[] = [];
    const good = (i: number): Promise<InferResult> => batcher.infer({ input: f32(1, ROWS[i]!) }, 1, soon()).finally(() => started.push(`good${i}`));
    const narrow = (k: number): Promise<InferResult> => batcher.infer({ input: f32(1, [1, 2, 3]) }, 1, soon()).finally(() => started.push(`narrow${k}`));
    const ps = [good(0), narrow(1), good(1), good(2), narrow(2)];
    assert.equal(batcher.depth, 5);
    const codes = await Promise.all(ps.map(codeOf));
    assert.deepEqual(codes, ['resolved', 'INVALID_INPUT', 'resolved', 'resolved', 'INVALID_INPUT']);
    // In arrival order: the first good row alone (the narrow one behind it ends its batch), the narrow one
    // (refused), the next two good rows together, the last narrow one.
    assert.deepEqual(started, ['good0', 'narrow1', 'good1', 'good2', 'narrow2']);
    assert.deepEqual(obs.batches, [
      [1, 1],
      [2, 2],
    ]);
    const results = await Promise.all([ps[0]!, ps[2]!, ps[3]!]);
    assert.deepEqual(
      results.map((r) => r.batchRequests),
      [1, 2, 2],
    );
    results.forEach((r, k) => assertSameAsAlone(r, k));
  });

  test('a request too large for the room left in a batch ends it: a smaller later one does not jump ahead', async () => {
    const obs = recorder();
    const batcher = new AdaptiveBatcher(iris, { ...BATCHING, maxBatchSize: 4, maxQueueDelayMs: 100 }, obs);
    const one = (i: number): Promise<InferResult> => batcher.infer({ input: f32(1, ROWS[i]!) }, 1, soon());
    const ps = [one(0), one(1), batcher.infer({ input: f32(3, [...ROWS[3]!, ...ROWS[4]!, ...ROWS[5]!]) }, 3, soon()), one(2)];
    const results = await Promise.all(ps);
    // [0, 1] then [three, 2]: row 2 never joins 0 and 1 ahead of the three-row request that came before it.
    assert.deepEqual(
      results.map((r) => r.batchRows),
      [2, 2, 4, 4],
    );
    assert.deepEqual(obs.batches, [
      [2, 2],
      [2, 4],
    ]);
  });

  test('a lone request waits maxQueueDelayMs for company; a full batch leaves at once', async () => {
    const obs = recorder();
    const batcher = new AdaptiveBatcher(iris, { ...BATCHING, maxBatchSize: 4, maxQueueDelayMs: 250 }, obs);
    let started = performance.now();
    const lone = await batcher.infer({ input: f32(1, ROWS[0]!) }, 1, soon());
    const waited = performance.now() - started;
    assert.ok(waited >= 240, `waited ${waited.toFixed(0)} ms`);
    assert.ok(lone.queueMs >= 240, `queueMs ${lone.queueMs.toFixed(0)}`);
    assertSameAsAlone(lone, 0);

    started = performance.now();
    const four = await Promise.all(ROWS.slice(0, 4).map((row) => batcher.infer({ input: f32(1, row) }, 1, soon())));
    const elapsed = performance.now() - started;
    assert.ok(elapsed < 200, `a full batch waited ${elapsed.toFixed(0)} ms`);
    assert.deepEqual(
      four.map((r) => r.batchRequests),
      [4, 4, 4, 4],
    );
    assert.deepEqual(obs.batches, [
      [1, 1],
      [4, 4],
    ]);
  });

  test('drained resolves once nothing is queued or running', async () => {
    const batcher = new AdaptiveBatcher(iris, BATCHING);
    await batcher.drained();
    let settled = 0;
    const ps = ROWS.slice(0, 5).map((row) => batcher.infer({ input: f32(1, row) }, 1, soon()).then(() => settled++));
    await batcher.drained();
    assert.equal(settled, 5);
    assert.equal(batcher.depth, 0);
    assert.equal(batcher.inflight, 0);
    await Promise.all(ps);
  });
});

describe('ServiceTimes', () => {
  test('fits a batch time of a + b·rows from the batches seen', () => {
    const t = new ServiceTimes();
    assert.equal(t.known, false);
    assert.equal(t.estimate(8), 0);
    for (const rows of [1, 4, 8, 2, 16, 1, 8]) t.observe(rows, 10 + 2 * rows);
    assert.equal(t.known, true);
    assert.ok(Math.abs(t.estimate(32) - 74) < 1e-6, String(t.estimate(32)));
    assert.ok(Math.abs(t.estimate(1) - 12) < 1e-6, String(t.estimate(1)));
  });

  test('with one batch size seen, its mean for any size; recent batches weigh more', () => {
    const t = new ServiceTimes();
    for (let i = 0; i < 5; i++) t.observe(1, 100);
    assert.ok(Math.abs(t.estimate(1) - 100) < 1e-9);
    assert.ok(Math.abs(t.estimate(8) - 100) < 1e-9);
    for (let i = 0; i < 30; i++) t.observe(1, 200);
    assert.ok(t.estimate(1) > 190 && t.estimate(1) <= 200, String(t.estimate(1)));
  });

  test('never negative: a cost that falls with rows is read as a fixed cost', () => {
    const t = new ServiceTimes();
    t.observe(1, 100);
    t.observe(10, 50);
    assert.ok(t.estimate(1) >= 0 && t.estimate(100) >= 0);
    assert.equal(t.estimate(1), t.estimate(100));
  });
});

describe('AdaptiveBatcher deadlines with slow.onnx', () => {
  /** Outcome of a request: what it got and when (ms after it was made). */
  async function outcome(p: Promise<unknown>, made: number): Promise<{ what: string; ms: number; retryAfter?: number | undefined }> {
    try {
      await p;
      return { what: 'ok', ms: performance.now() - made };
    } catch (err) {
      const e = err as InferrerError;
      return { what: e.code, ms: performance.now() - made, retryAfter: e.retryAfter };
    }
  }

  test('a request that would wait past its deadline is refused at once with QUEUE_FULL and Retry-After; none is answered late', async () => {
    const slow = await OnnxSession.load(SLOW);
    try {
      const obs = recorder();
      const batcher = new AdaptiveBatcher(slow, { ...BATCHING, maxBatchSize: 1 }, obs);
      // Two runs timed: the batcher knows what a run costs here.
      for (let i = 0; i < 2; i++) await batcher.infer({ x: f32(1, [1, 2, 3, 4]) }, 1, soon());
      const run = batcher.times.estimate(1);
      assert.ok(run > 0);
      // Room for about three runs before the deadline; twelve requests arrive at once.
      const budget = 3.5 * run;
      const made = performance.now();
      const results = await Promise.all(Array.from({ length: 12 }, () => outcome(batcher.infer({ x: f32(1, [1, 2, 3, 4]) }, 1, made + budget), made)));
      const ok = results.filter((r) => r.what === 'ok');
      const refused = results.filter((r) => r.what === 'QUEUE_FULL');
      const late = results.filter((r) => r.what === 'DEADLINE_EXCEEDED');
      assert.ok(ok.length >= 1, JSON.stringify(results));
      assert.ok(refused.length >= 6, `most were refused on arrival: ${JSON.stringify(results)}`);
      assert.equal(ok.length + refused.length + late.length, 12, JSON.stringify(results));
      // Refusals come at once, with a Retry-After; results never after the deadline.
      for (const r of refused) {
        assert.ok(r.ms < run, `refused after ${r.ms.toFixed(0)} ms (a run takes ${run.toFixed(0)} ms)`);
        assert.ok(r.retryAfter !== undefined && r.retryAfter >= 1);
      }
      for (const r of ok) assert.ok(r.ms <= budget + 5, `a result after ${r.ms.toFixed(0)} ms, deadline ${budget.toFixed(0)} ms`);
      assert.deepEqual(obs.rejected.filter((c) => c === 'QUEUE_FULL').length, refused.length);
    } finally {
      await slow.dispose();
    }
  });

  test('a request still running at its deadline is answered DEADLINE_EXCEEDED then, not when the run ends', async () => {
    const slow = await OnnxSession.load(SLOW);
    try {
      const obs = recorder();
      const batcher = new AdaptiveBatcher(slow, BATCHING, obs);
      const made = performance.now();
      // A free slot takes it at once (nothing is timed yet: no refusal), and the run outlasts 40 ms.
      const r = await outcome(batcher.infer({ x: f32(1, [1, 2, 3, 4]) }, 1, made + 40), made);
      assert.equal(r.what, 'DEADLINE_EXCEEDED');
      assert.ok(r.ms >= 39, `answered after ${r.ms.toFixed(1)} ms`);
      assert.equal(batcher.inflight, 1, 'answered while its run still went on');
      assert.equal(obs.timeouts, 1);
      await batcher.drained();
      assert.ok(batcher.times.estimate(1) > r.ms, 'the run took longer than the deadline allowed');
      // The slot serves the next request normally.
      const next = await batcher.infer({ x: f32(1, [9, 9, 9, 9]) }, 1, soon());
      assert.deepEqual(Array.from(next.outputs.y!.data as Float32Array), [9, 9, 9, 9]);
    } finally {
      await slow.dispose();
    }
  });

  test('a queued request whose deadline comes before its batch could finish leaves with DEADLINE_EXCEEDED without running', async () => {
    const slow = await OnnxSession.load(SLOW);
    try {
      const obs = recorder();
      const batcher = new AdaptiveBatcher(slow, { ...BATCHING, maxBatchSize: 1 }, obs);
      await batcher.infer({ x: f32(1, [1, 2, 3, 4]) }, 1, soon());
      const made = performance.now();
      // The first takes the slot; the second is admitted: its deadline leaves room for a wait and a run.
      const budget = Math.max(3000, 4 * batcher.times.estimate(1));
      const first = outcome(batcher.infer({ x: f32(1, [1, 2, 3, 4]) }, 1, soon()), made);
      const second = outcome(batcher.infer({ x: f32(1, [1, 2, 3, 4]) }, 1, made + budget), made);
      // Then runs turn out to take 10 s here (as if the machine had slowed down): when the slot frees, the
      // second cannot finish by its deadline and leaves without taking it.
      for (let i = 0; i < 30; i++) batcher.times.observe(1, 10_000);
      const [a, b] = await Promise.all([first, second]);
      assert.equal(a.what, 'ok');
      assert.equal(b.what, 'DEADLINE_EXCEEDED');
      assert.ok(b.ms < budget, `left at ${b.ms.toFixed(0)} ms, before its deadline`);
      assert.deepEqual(obs.batches, [
        [1, 1],
        [1, 1],
      ]);
      assert.equal(obs.timeouts, 1);
    } finally {
      await slow.dispose();
    }
  });
});

describe('AdaptiveBatcher with slow.onnx', () => {
  test('a short deadline while the slot is busy is DEADLINE_EXCEEDED before the slot frees', async () => {
    const slow = await OnnxSession.load(SLOW);
    try {
      const obs = recorder();
      const batcher = new AdaptiveBatcher(slow, BATCHING, obs);
      const started = performance.now();
      let firstDone = 0;
      const first = batcher.infer({ x: f32(1, [1, 2, 3, 4]) }, 1, soon()).then((r) => ((firstDone = performance.now()), r));
      await new Promise(setImmediate);
      const late = batcher.infer({ x: f32(1, [5, 6, 7, 8]) }, 1, performance.now() + 40);
      await assert.rejects(late, (err: unknown) => {
        assert.ok(err instanceof InferrerError);
        assert.equal(err.code, 'DEADLINE_EXCEEDED');
        assert.equal(err.kind, 'timeout');
        assert.ok((err.details.queueMs as number) >= 35, `queueMs ${String(err.details.queueMs)}`);
        return true;
      });
      assert.equal(firstDone, 0, `the late request gave up after ${(performance.now() - started).toFixed(0)} ms, while the first was still running`);
      assert.equal(obs.timeouts, 1);
      const r = await first;
      assert.deepEqual(Array.from(r.outputs.y!.data as Float32Array), [1, 2, 3, 4]);
      assert.deepEqual(obs.batches, [[1, 1]]);
      // The batcher keeps serving.
      const next = await batcher.infer({ x: f32(1, [9, 9, 9, 9]) }, 1, soon());
      assert.deepEqual(Array.from(next.outputs.y!.data as Float32Array), [9, 9, 9, 9]);
    } finally {
      await slow.dispose();
    }
  });

  test('a queued request whose client goes away leaves the queue unrun; a running one finishes', async () => {
    const slow = await OnnxSession.load(SLOW);
    try {
      let cancelled = 0;
      const obs = { ...recorder(), onCancelled: () => void cancelled++ };
      const batcher = new AdaptiveBatcher(slow, { ...BATCHING, maxBatchSize: 1 }, obs);
      const running = new AbortController();
      const first = batcher.infer({ x: f32(1, [1, 2, 3, 4]) }, 1, soon(20_000), 'online', running.signal);
      await new Promise(setImmediate);
      assert.equal(batcher.inflight, 1);
      const quitters = [new AbortController(), new AbortController(), new AbortController()];
      const queued = quitters.map((c, i) => batcher.infer({ x: f32(1, [i, i, i, i]) }, 1, soon(20_000), 'online', c.signal));
      const stays = batcher.infer({ x: f32(1, [7, 7, 7, 7]) }, 1, soon(20_000));
      await new Promise(setImmediate);
      assert.equal(batcher.depth, 4);
      for (const c of quitters) c.abort();
      running.abort();
      for (const q of queued) {
        await assert.rejects(q, (err: unknown) => {
          assert.ok(err instanceof InferrerError, 'an InferrerError');
          assert.equal(err.code, 'REQUEST_CANCELLED');
          assert.equal(err.details.stage, 'queued');
          return true;
        });
      }
      assert.equal(batcher.depth, 1, 'only the request still wanted waits');
      assert.equal(cancelled, 3);
      assert.equal(obs.batches.length, 0, 'the slot is still busy with the first');
      // The running request finishes (its caller drops the answer); the one still wanted runs next.
      assert.deepEqual(Array.from((await first).outputs.y!.data as Float32Array), [1, 2, 3, 4]);
      assert.deepEqual(Array.from((await stays).outputs.y!.data as Float32Array), [7, 7, 7, 7]);
      assert.deepEqual(obs.batches, [
        [1, 1],
        [1, 1],
      ]);
      // A request whose client is already gone never enters the queue.
      assert.equal(await codeOf(batcher.infer({ x: f32(1, [1, 1, 1, 1]) }, 1, soon(), 'online', AbortSignal.abort())), 'REQUEST_CANCELLED');
      assert.equal(cancelled, 4);
      await batcher.drained();
    } finally {
      await slow.dispose();
    }
  });

  test('batch-job requests wait behind online ones and fill the room online ones leave in a batch', async () => {
    const slow = await OnnxSession.load(SLOW);
    try {
      // Promotion is tested below; here it must not happen even if a run takes seconds on a loaded machine.
      const batcher = new AdaptiveBatcher(slow, { ...BATCHING, maxBatchSize: 3, batchPromotionMs: 60_000 });
      const order: string[] = [];
      const run = (tag: string, priority: 'online' | 'batch'): Promise<number> =>
        batcher.infer({ x: f32(1, [1, 2, 3, 4]) }, 1, soon(10_000), priority).then((r) => order.push(`${tag}/${r.batchRequests}`));
      const first = run('first', 'online');
      await Promise.resolve();
      assert.equal(batcher.inflight, 1);
      await Promise.all([first, run('b1', 'batch'), run('b2', 'batch'), run('o1', 'online'), run('b3', 'batch'), run('o2', 'online')]);
      // o1 and o2 arrived after b1 and b2 but leave first; b1 takes the one row they leave; b2 and b3 follow.
      assert.deepEqual(order, ['first/1', 'o1/3', 'o2/3', 'b1/3', 'b2/2', 'b3/2']);
    } finally {
      await slow.dispose();
    }
  });

  test('a batch-job request that has waited batchPromotionMs goes ahead of later online ones (none starves)', async () => {
    const slow = await OnnxSession.load(SLOW);
    try {
      for (const [promotionMs, expected] of [
        [60_000, ['first', 'o1', 'o2', 'o3', 'b1']],
        [20, ['first', 'b1', 'o1', 'o2', 'o3']],
      ] as const) {
        const batcher = new AdaptiveBatcher(slow, { ...BATCHING, maxBatchSize: 1, batchPromotionMs: promotionMs });
        const order: string[] = [];
        const run = (tag: string, priority: 'online' | 'batch'): Promise<number> =>
          batcher.infer({ x: f32(1, [1, 2, 3, 4]) }, 1, soon(20_000), priority).then(() => order.push(tag));
        const first = run('first', 'online');
        await Promise.resolve();
        await Promise.all([first, run('b1', 'batch'), run('o1', 'online'), run('o2', 'online'), run('o3', 'online')]);
        assert.deepEqual(order, expected, `batchPromotionMs ${promotionMs}`);
      }
    } finally {
      await slow.dispose();
    }
  });

  test('with two slots free, the requests waiting are shared out evenly between them (no slot takes a much longer batch)', async () => {
    const two = await OnnxSession.load(IRIS, { instances: 2 });
    try {
      const obs = recorder();
      const batcher = new AdaptiveBatcher(two, BATCHING, obs);
      // Ten requests arrive together while both slots are free: 5 + 5, not 8 + 2.
      const results = await Promise.all(ROWS.slice(0, 10).map((row) => batcher.infer({ input: f32(1, row) }, 1, soon())));
      assert.deepEqual(
        results.map((r) => r.batchRows),
        [5, 5, 5, 5, 5, 5, 5, 5, 5, 5],
      );
      results.forEach((r) => assert.deepEqual(r.outputs.probabilities!.dims, [1, 3]));
    } finally {
      await two.dispose();
    }
  });

  test('with two slots, two batches run at once', async () => {
    const slow = await OnnxSession.load(SLOW, { instances: 2 });
    try {
      const obs = recorder();
      const batcher = new AdaptiveBatcher(slow, { ...BATCHING, maxBatchSize: 2 }, obs);
      const ps = [1, 2, 3, 4, 5, 6].map((v) => batcher.infer({ x: f32(1, [v, v, v, v]) }, 1, soon()));
      await new Promise(setImmediate);
      assert.equal(batcher.inflight, 2);
      assert.equal(batcher.depth, 2);
      const results = await Promise.all(ps);
      results.forEach((r, i) => assert.deepEqual(Array.from(r.outputs.y!.data as Float32Array), [i + 1, i + 1, i + 1, i + 1]));
      assert.deepEqual(
        results.map((r) => r.batchRequests),
        [2, 2, 2, 2, 2, 2],
      );
    } finally {
      await slow.dispose();
    }
  });
});

describe('AdaptiveBatcher with other models', () => {
  test('non-batchable (fixed_batch.onnx) runs one request per run', async () => {
    const session = await OnnxSession.load(FIXED_BATCH);
    try {
      const inputs = [1, 2, 3, 4].map((k) => [k, 2 * k, 3 * k, 4 * k]);
      const expected: Float32Array[] = [];
      for (const x of inputs) expected.push((await session.run({ x: f32(1, x) })).outputs.y!.data as Float32Array);
      const obs = recorder();
      const batcher = new AdaptiveBatcher(session, { ...BATCHING, batchable: false }, obs);
      assert.equal(batcher.options.maxBatchSize, 1);
      const results = await Promise.all(inputs.map((x) => batcher.infer({ x: f32(1, x) }, 1, soon())));
      assert.deepEqual(obs.batches, [
        [1, 1],
        [1, 1],
        [1, 1],
        [1, 1],
      ]);
      results.forEach((r, i) => {
        assert.equal(r.batchRequests, 1);
        assert.equal(r.batchRows, 1);
        assert.deepEqual(r.outputs.y!.dims, [1, 2]);
        assert.deepEqual(Array.from(r.outputs.y!.data as Float32Array), Array.from(expected[i]!));
      });
      close(results[0]!.outputs.y!.data as Float32Array, [2.85, 4.8], 1e-5);
    } finally {
      await session.dispose();
    }
  });

  test('multi_io: both inputs are stacked and both outputs split back', async () => {
    const session = await OnnxSession.load(MULTI_IO);
    try {
      const obs = recorder();
      const batcher = new AdaptiveBatcher(session, BATCHING, obs);
      const reqs = [0, 1, 2, 3, 4].map((i) => ({
        a: f32(1, [i, i + 0.5]),
        b: { type: 'int64' as const, dims: [1, 1], data: new BigInt64Array([BigInt(i * 100)]) },
      }));
      const results = await Promise.all(reqs.map((r) => batcher.infer(r, 1, soon())));
      assert.deepEqual(obs.batches, [[5, 5]]);
      results.forEach((r, i) => {
        assert.deepEqual(r.outputs.sum!.dims, [1, 1]);
        assert.deepEqual(Array.from(r.outputs.sum!.data as Float32Array), [i + i + 0.5 + i * 100]);
        assert.deepEqual(Array.from(r.outputs.doubled!.data as BigInt64Array), [BigInt(i * 200)]);
      });
    } finally {
      await session.dispose();
    }
  });
});
