import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { KeyHomes, Placement, type PlacementOptions, computePerRequest } from '../src/placement.ts';

const OPTS: PlacementOptions = { enabled: true, maxReplicas: 8, ratePerReplica: 100, inflightPerReplica: 4, coolMs: 30_000 };

/** A Placement on a clock the test moves. */
function clocked(opts: Partial<PlacementOptions> = {}): { p: Placement; at: (ms: number) => void } {
  let now = 0;
  return { p: new Placement({ ...OPTS, ...opts }, () => now), at: (ms) => void (now = ms) };
}

/** `n` requests one after another (each answered before the next), `gapMs` apart, from time `from`. */
function sequential(p: Placement, at: (ms: number) => void, model: string, n: number, gapMs: number, from: number): string[] {
  const keys: string[] = [];
  for (let i = 0; i < n; i++) {
    at(from + i * gapMs);
    p.begin(model);
    keys.push(p.key(model)!);
    p.end(model);
  }
  return keys;
}

describe('Placement', () => {
  test('a quiet model keeps one key, so its requests go to one worker', () => {
    const { p, at } = clocked();
    const keys = sequential(p, at, 'iris', 50, 100, 0);
    assert.deepEqual(new Set(keys), new Set(['iris#0']));
    const v = p.view('iris')!;
    assert.equal(v.replicas, 1);
    assert.equal(v.in_flight, 0);
    // 10 per second for 5 s, smoothed over 5 s: on its way up to 10.
    assert.ok(v.requests_per_second > 5 && v.requests_per_second <= 10, String(v.requests_per_second));
  });

  test('a model gets a key per PLACEMENT_RATE_PER_REPLICA requests per second, used round-robin', () => {
    const { p, at } = clocked();
    // 400 requests per second for 10 s.
    const keys = sequential(p, at, 'hot', 4000, 2.5, 0);
    assert.equal(p.view('hot')!.replicas, 4);
    assert.deepEqual(
      keys
        .slice(-8)
        .map((k) => Number(k.slice(4)))
        .sort(),
      [0, 0, 1, 1, 2, 2, 3, 3],
      'each key in turn',
    );
    assert.deepEqual(new Set(keys.slice(-100)), new Set(['hot#0', 'hot#1', 'hot#2', 'hot#3']));
  });

  test('or per PLACEMENT_INFLIGHT_PER_REPLICA requests in flight, and never more than PLACEMENT_MAX_REPLICAS', () => {
    const { p, at } = clocked({ maxReplicas: 5 });
    // 40 requests held at once for 20 s (a slow model: only 10 answers per second).
    for (let i = 0; i < 40; i++) {
      at(i * 10);
      p.begin('slow');
    }
    for (let t = 400; t < 20_000; t += 100) {
      at(t);
      p.end('slow');
      p.begin('slow');
    }
    assert.ok(p.view('slow')!.requests_per_second < 50);
    assert.equal(p.view('slow')!.replicas, 5, 'forty in flight ask for ten keys; five is the most');
    assert.equal(p.view('slow')!.in_flight, 40);
  });

  test('keys go one at a time once the traffic has stayed low for PLACEMENT_COOL_S, all at once after a quiet spell that long', () => {
    const { p, at } = clocked();
    sequential(p, at, 'm', 4000, 2.5, 0);
    assert.equal(p.view('m')!.replicas, 4);
    // Then 10 requests per second: one key is enough.
    sequential(p, at, 'm', 250, 100, 10_000);
    assert.equal(p.view('m')!.replicas, 4, 'not before PLACEMENT_COOL_S of low traffic');
    sequential(p, at, 'm', 300, 100, 35_000);
    assert.ok(p.view('m')!.replicas < 4 && p.view('m')!.replicas >= 2, `one key less per 30 s: ${p.view('m')!.replicas}`);
    const quiet = clocked();
    sequential(quiet.p, quiet.at, 'q', 4000, 2.5, 0);
    sequential(quiet.p, quiet.at, 'q', 1, 0, 60_000);
    assert.equal(quiet.p.view('q')!.replicas, 1);
  });

  test('a key learned to land where an earlier key of the model does is passed over, so k keys cover k workers', () => {
    let now = 0;
    const homes = new KeyHomes(() => now);
    const p = new Placement({ ...OPTS, maxReplicas: 2, inflightPerReplica: 1 }, () => now, homes);
    for (let i = 0; i < 40; i++) p.begin('m');
    assert.equal(p.view('m')?.replicas, 2);
    const next = (n: number): string[] => Array.from({ length: n }, () => p.key('m')!);
    assert.deepEqual(next(4), ['m#0', 'm#1', 'm#0', 'm#1'], 'nothing learned: the first two keys');
    homes.learn('m#0', 'w1');
    homes.learn('m#1', 'w1');
    assert.deepEqual(new Set(next(4)), new Set(['m#0', 'm#1']), 'the keys in use are kept for 250 ms');
    now = 300;
    assert.deepEqual(new Set(next(4)), new Set(['m#0', 'm#2']), 'm#1 lands on w1 as m#0 does: m#2 instead, not learned yet');
    homes.learn('m#2', 'w2');
    now = 600;
    assert.deepEqual(new Set(next(4)), new Set(['m#0', 'm#2']), 'two keys on two workers');
    // One worker left: every key lands on it.
    for (let i = 0; i < 8; i++) homes.learn(`m#${i}`, 'w1');
    now = 900;
    assert.deepEqual(new Set(next(4)), new Set(['m#0']), 'as many workers as there are: one key');
    now = 11_000;
    assert.deepEqual(new Set(next(4)), new Set(['m#0', 'm#1']), 'what was learned is trusted for 10 s only');
  });

  test("a model spreads its predictions that arrive together once a request costs 1 ms of compute, from its answers' headers", () => {
    const { p } = clocked();
    const answer = (computeMs: number, requests: number) => ({
      'server-timing': `preprocess;dur=0.02, queue;dur=3.10, compute;dur=${computeMs.toFixed(2)}`,
      'x-inferrer-batch': `requests=${requests};rows=${requests}`,
    });
    p.begin('m');
    p.end('m');
    assert.equal(p.spreads('m'), false, 'no answer yet');
    p.begin('m');
    p.end('m', answer(4, 8));
    assert.equal(p.spreads('m'), false, '4 ms over a batch of 8: 0.5 ms each');
    for (let i = 0; i < 30; i++) {
      p.begin('m');
      p.end('m', answer(150, 1));
    }
    assert.equal(p.spreads('m'), true, '150 ms each');
    for (let i = 0; i < 30; i++) {
      p.begin('m');
      p.end('m', { 'x-inferrer-cache': 'hit', 'server-timing': 'preprocess;dur=0.01, queue;dur=0.00, compute;dur=0.00' });
    }
    assert.equal(p.spreads('m'), true, 'cache hits ran in no batch: they say nothing of the cost');
    assert.equal(p.spreads('other'), false);
    assert.equal(computePerRequest(answer(12.5, 5)), 2.5);
    assert.equal(computePerRequest({ 'server-timing': 'load;dur=900.00, compute;dur=3.00', 'x-inferrer-batch': 'requests=0;rows=0' }), undefined);
  });

  test('off: no key, no view', () => {
    const { p } = clocked({ enabled: false });
    p.begin('x');
    assert.equal(p.key('x'), undefined);
    assert.equal(p.view('x'), undefined);
  });
});

describe('KeyHomes', () => {
  test('a key is trusted to land where it was last answered for 10 s after it was last seen, then it is unknown', () => {
    let now = 0;
    const homes = new KeyHomes(() => now);
    homes.learn('m#0', 'w1');
    now = 9_000;
    assert.equal(homes.get('m#0')?.worker, 'w1');
    homes.learn('m#0', 'w1');
    now = 18_000;
    assert.equal(homes.get('m#0')?.worker, 'w1', 'seen again at 9 s: trusted until 19 s');
    now = 19_001;
    assert.equal(homes.get('m#0'), undefined);
    assert.equal(homes.size, 0);
  });

  test('an answer from another worker than expected forgets every key of the expected one; no worker id, nothing learned', () => {
    const homes = new KeyHomes(() => 0);
    for (const k of ['a#0', 'b#0', 'c#0']) homes.learn(k, 'w1');
    homes.learn('d#0', 'w2');
    homes.learn('a#0', 'w3', 'w1');
    assert.deepEqual(
      ['a#0', 'b#0', 'c#0', 'd#0'].map((k) => homes.get(k)?.worker),
      ['w3', undefined, undefined, 'w2'],
    );
    homes.learn('e#0', undefined);
    homes.learn('f#0', ['w1', 'w2']);
    assert.equal(homes.size, 2);
  });

  test('at most 20,000 keys are kept, the longest unseen going first', () => {
    const homes = new KeyHomes(() => 0);
    for (let i = 0; i <= 20_000; i++) homes.learn(`m${i}#0`, `w${i % 4}`);
    assert.equal(homes.size, 20_000);
    assert.equal(homes.get('m0#0'), undefined);
    assert.equal(homes.get('m20000#0')?.worker, 'w0');
    homes.forget('w0');
    assert.equal(homes.size, 15_000);
  });
});
