/**
 * The body gate (body-gate.ts): large requests wait in arrival order while their model has its limit
 * upstream; the limit is learned from the modelhosts' Server-Timing; a request that leaves, passes its
 * deadline or is refused holds nothing; a request let through gives its place back when its body is slow.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { InferrerError } from '@inferrer/core';
import { BodyGate, type GatePass } from '../src/body-gate.ts';

const FAR = () => performance.now() + 60_000;
/** An answer that waited in no queue. */
const QUICK = 'queue;dur=0.50, compute;dur=40.00';
/** An answer that waited three runs. */
const SLOW = 'preprocess;dur=0.10, queue;dur=120.00, compute;dur=40.00';

function gate(maxWaiting = 100): BodyGate {
  return new BodyGate({ minBytes: 256 * 1024, maxWaiting });
}

/** Whether the promise has settled after the microtasks now queued have run. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  await sleep(0);
  return done;
}

async function fill(g: BodyGate, model: string, n: number): Promise<GatePass[]> {
  const passes: GatePass[] = [];
  for (let i = 0; i < n; i++) {
    const p = await g.enter(model, FAR(), undefined);
    p.bodyRead();
    passes.push(p);
  }
  return passes;
}

describe('body gate', () => {
  test('only bodies declared at least BODY_GATE_BYTES wait; 0 turns the gate off', () => {
    assert.equal(gate().applies(256 * 1024), true);
    assert.equal(gate().applies(256 * 1024 - 1), false);
    assert.equal(gate().applies(undefined), false);
    assert.equal(new BodyGate({ minBytes: 0, maxWaiting: 1 }).applies(1e9), false);
  });

  test('eight go through at once; the ninth waits until one is answered, and they go in arrival order', async () => {
    const g = gate();
    const passes = await fill(g, 'm', 8);
    const order: number[] = [];
    const waiting = [1, 2, 3].map((i) => g.enter('m', FAR(), undefined).then((p) => (order.push(i), p)));
    assert.equal(await settled(waiting[0]!), false);
    assert.equal(g.waiting, 3);
    // Another model is not held back.
    (await g.enter('other', FAR(), undefined)).done();
    passes[0]!.done(QUICK);
    passes[1]!.done(QUICK);
    await sleep(0);
    assert.deepEqual(order, [1, 2]);
    assert.equal(g.waiting, 1);
    passes[2]!.done();
    const third = await waiting[2]!;
    assert.deepEqual(order, [1, 2, 3]);
    for (const p of [...passes.slice(3), await waiting[0]!, await waiting[1]!, third]) p.done();
    // Nothing in flight or waiting: the model is forgotten.
    assert.equal(g.limitOf('m'), undefined);
  });

  test('answers that waited in no queue raise the limit by 1/limit; ones that waited beyond two runs lower it by a fifth, once per limit of answers, never below 2', async () => {
    const g = gate();
    const passes = await fill(g, 'm', 8);
    for (const p of passes.slice(0, 7)) p.done(QUICK);
    let expected = 8;
    for (let i = 0; i < 7; i++) expected += 1 / expected;
    assert.equal(g.limitOf('m'), expected);
    const answer = async (timing: string) => {
      const p = await g.enter('m', FAR(), undefined);
      p.bodyRead();
      p.done(timing);
    };
    // The first slow answer comes 8 answers after the last change: not yet a limit's worth (8.8).
    await answer(SLOW);
    assert.equal(g.limitOf('m'), expected);
    await answer(SLOW);
    assert.equal(g.limitOf('m'), expected * 0.8);
    for (let i = 0; i < 200; i++) await answer(SLOW);
    assert.equal(g.limitOf('m'), 2);
    // Answers without Server-Timing (errors, the response cache) teach nothing.
    await answer('');
    assert.equal(g.limitOf('m'), 2);
    passes[7]!.done();
  });

  test('a request whose client leaves while it waits, or whose deadline passes, holds no place', async () => {
    const g = gate();
    const passes = await fill(g, 'm', 8);
    const gone = new AbortController();
    const leaving = g.enter('m', FAR(), gone.signal);
    const late = g.enter('m', performance.now() + 30, undefined);
    const patient = g.enter('m', FAR(), undefined);
    gone.abort(new InferrerError('REQUEST_CANCELLED', 'gone'));
    await assert.rejects(leaving, (err: InferrerError) => err.code === 'REQUEST_CANCELLED');
    await assert.rejects(late, (err: InferrerError) => err.code === 'DEADLINE_EXCEEDED' && /waited for room upstream/.test(err.message));
    assert.equal(g.waiting, 1);
    // The one place that frees goes to the request still waiting.
    passes[0]!.done();
    (await patient).done();
    for (const p of passes.slice(1)) p.done();
    assert.equal(g.limitOf('m'), undefined);
  });

  test('beyond maxWaiting a request is refused at once with QUEUE_FULL and Retry-After', async () => {
    const g = gate(2);
    const passes = await fill(g, 'm', 8);
    const waiting = [g.enter('m', FAR(), undefined), g.enter('m', FAR(), undefined)];
    await assert.rejects(g.enter('m', FAR(), undefined), (err: InferrerError) => err.code === 'QUEUE_FULL' && err.retryAfter === 1);
    for (const p of passes) p.done();
    for (const w of waiting) (await w).done();
  });

  test('a request whose turn would come after its deadline, at the pace places free, is refused at once', async () => {
    const g = gate();
    const passes = await fill(g, 'm', 8);
    const queued = Array.from({ length: 6 }, () => g.enter('m', FAR(), undefined));
    // Three places free 20 ms apart while requests wait: one every 20 ms or so.
    for (const p of passes.slice(0, 3)) {
      await sleep(20);
      p.done();
    }
    // Three still wait: a fourth would be let through in about 80 ms.
    const started = performance.now();
    const err = await g.enter('m', performance.now() + 40, undefined).then(
      () => assert.fail('let in'),
      (e: InferrerError) => e,
    );
    assert.ok(performance.now() - started < 20, 'refused at once');
    assert.equal(err.code, 'QUEUE_FULL');
    assert.match(err.message, /would wait about \d+ ms, past its deadline/);
    const expected = (err.details as { expectedWaitMs: number }).expectedWaitMs;
    assert.ok(expected >= 60 && expected <= 1000, `expected wait ${expected}`);
    // One with time enough waits its turn.
    const patient = g.enter('m', FAR(), undefined);
    for (const p of passes.slice(3)) p.done();
    for (const q of [...queued, patient]) (await q).done();
    assert.equal(g.limitOf('m'), undefined);
  });

  test('a request let through that has not received its body within 250 ms gives its place back', async () => {
    const g = gate();
    const passes: GatePass[] = [];
    // Seven read their bodies; one does not.
    for (let i = 0; i < 8; i++) {
      const p = await g.enter('m', FAR(), undefined);
      if (i < 7) p.bodyRead();
      passes.push(p);
    }
    const next = g.enter('m', FAR(), undefined);
    assert.equal(await settled(next), false);
    await sleep(300);
    assert.equal(await settled(next), true);
    // Its answer later frees nothing twice.
    passes[7]!.done(QUICK);
    const extra = g.enter('m', FAR(), undefined);
    assert.equal(await settled(extra), false);
    passes[0]!.done();
    for (const p of [...passes.slice(1, 7), await next, await extra]) p.done();
    assert.equal(g.limitOf('m'), undefined);
  });
});
