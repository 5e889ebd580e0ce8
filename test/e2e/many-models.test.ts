/**
 * Many models on a few workers (issue 18): each modelhost loads within its memory budget
 * (MODEL_MEMORY_BYTES), unloading idle models (the least asked for per byte first) to make room, refuses a model that
 * alone needs more than the budget, keeps pinned models, and a worker killed under load costs no request.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { whileHeld } from '../helpers/held.ts';
import { identityChainModel } from '../helpers/costly-models.ts';
import { type MlpShape, mlpModel } from '../helpers/mlp-models.ts';
import { type TestCluster, api, startTestCluster, steadyLoad } from '../helpers/cluster.ts';

const MiB = 1024 * 1024;
/**
 * Holds several of the models below (1.2 MB of weights; creating a session peaks at 3 to 4 MB and holds
 * about 1.3 MB, which is what a load counts at least), never all fourteen and the pinned one (about 20 MB):
 * the budget is large against the noise a process's memory figures carry.
 */
const BUDGET = 16 * MiB;
const SMALL: MlpShape = { inputs: 64, hidden: 512, layers: 3, outputs: 8 };
/** About 19 MB of weights: more than the whole budget. */
const HUGE: MlpShape = { inputs: 256, hidden: 2048, layers: 3, outputs: 8 };
const MODELS = Array.from({ length: 14 }, (_, i) => `mlp-${i}`);

function put(c: TestCluster, name: string, bytes: Buffer, metadata?: unknown): ReturnType<typeof api> {
  const form = new FormData();
  form.append('path', new Blob([new Uint8Array(bytes)]), 'model.onnx');
  if (metadata !== undefined) form.append('metadata', JSON.stringify(metadata));
  return api(c.url, `/api/v1/models/${name}`, { method: 'PUT', body: form });
}

const input = (k: number): number[] => Array.from({ length: SMALL.inputs }, (_, i) => ((i * 7 + k) % 11) / 11);

function infer(c: TestCluster, name: string, k = 0): ReturnType<typeof api> {
  return api(c.url, `/v2/models/${name}/infer`, { json: { inputs: [{ name: 'x', shape: [1, SMALL.inputs], datatype: 'FP32', data: input(k) }] } });
}

interface WorkerModels {
  modelhost: string;
  memory: { budget_bytes: number; used_bytes: number; resident_bytes: number; process_resident_bytes: number; process_heap_bytes: number };
  models: { name: string; version: number; state: string; resident_bytes: number; pinned?: boolean }[];
}

async function loadedOn(c: TestCluster): Promise<WorkerModels[]> {
  return Promise.all(c.modelhosts.map(async (m) => (await (await fetch(`${m.url}/v1/models`)).json()) as WorkerModels));
}

/** Sum of a modelhost counter over every worker (optionally only series whose labels include `match`). */
async function counter(c: TestCluster, name: string, match = ''): Promise<number> {
  let sum = 0;
  for (const m of c.modelhosts) {
    const text = await (await fetch(`${m.url}/metrics`)).text();
    for (const line of text.split('\n')) if (line.startsWith(`${name}{`) && line.includes(match)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

describe('many models within a memory budget', () => {
  let c: TestCluster;
  /** What each model answers for input(0) when nothing else is going on. */
  const expected = new Map<string, number[]>();

  before(async () => {
    c = await startTestCluster({ modelhostEnv: { MODEL_MEMORY_BYTES: String(BUDGET) } });
    for (const [i, name] of MODELS.entries()) {
      const r = await put(c, name, mlpModel(SMALL, 1000 + i));
      assert.equal(r.status, 201, JSON.stringify(r.body));
      // Several fit in the budget, not all fourteen: the peak of creating a session (room is made for it before
      // a load) is read from a child's resident memory, and one CI run read 6.8 MB where others read ~1.
      assert.ok(r.body.model.version_details[0].validation.memory_bytes < BUDGET / 2, JSON.stringify(r.body.model.version_details[0].validation));
    }
    const pinned = await put(c, 'kept', mlpModel(SMALL, 2000), { config: { pinned: true } });
    assert.equal(pinned.status, 201, JSON.stringify(pinned.body));
    for (const name of MODELS) {
      const r = await infer(c, name);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      expected.set(name, r.body.outputs[0].data);
    }
  });
  after(() => c?.close());

  test('models come and go under load from 12 clients, every answer right, every worker within its budget, the pinned model kept', async (t) => {
    const evictedBefore = await counter(c, 'modelhost_sessions_evicted_total');
    const stopAt = Date.now() + 8000;
    let n = 0;
    const outcomes = await steadyLoad(
      12,
      async () => {
        const name = MODELS[n++ % MODELS.length]!;
        const r = await infer(c, name);
        if (r.status !== 200) return `${r.status} ${r.body?.code ?? ''} ${r.body?.error ?? ''}`;
        return JSON.stringify(r.body.outputs[0].data) === JSON.stringify(expected.get(name)) ? 'ok' : `wrong answer from ${name}`;
      },
      () => Date.now() > stopAt,
    );
    assert.deepEqual(Object.keys(outcomes), ['ok'], JSON.stringify(outcomes));
    assert.ok(outcomes.ok! > 50, JSON.stringify(outcomes));
    const evicted = (await counter(c, 'modelhost_sessions_evicted_total')) - evictedBefore;
    t.diagnostic(`${outcomes.ok} answers, ${evicted} models unloaded to make room`);
    const loads = c.jsonLogs('modelhost-1').filter((l) => l.msg === 'model loaded');
    t.diagnostic(
      `modelhost-1's first loads (cost, grew MB): ${loads
        .slice(0, 20)
        .map((l) => `${l.costMb}/${l.grewMb}`)
        .join(' ')}`,
    );
    assert.ok(evicted > 0, 'fifteen models do not fit the budget: some were unloaded to make room');
    assert.ok((await counter(c, 'modelhost_model_lookups_total', 'result="load"')) > 0);
    assert.ok((await counter(c, 'modelhost_model_lookups_total', 'result="hit"')) > 0);
    for (const w of await loadedOn(c)) {
      assert.equal(w.memory.budget_bytes, BUDGET);
      assert.ok(w.memory.used_bytes <= BUDGET, `${w.modelhost}: ${w.memory.used_bytes} bytes counted against a budget of ${BUDGET}`);
      // What the budget's watch sees the models hold in real memory, and the worker's memory with V8's heap apart.
      assert.ok(w.memory.resident_bytes > 0 && w.memory.resident_bytes < 4 * BUDGET, JSON.stringify(w.memory));
      assert.ok(w.memory.process_heap_bytes > 0 && w.memory.process_heap_bytes < w.memory.process_resident_bytes, JSON.stringify(w.memory));
      assert.ok(w.models.length < MODELS.length, `${w.modelhost} holds ${w.models.length} models`);
      const kept = w.models.find((m) => m.name === 'kept');
      assert.ok(kept?.pinned, `${w.modelhost} still holds the pinned model: ${JSON.stringify(w.models)}`);
      for (const m of w.models) assert.ok(m.resident_bytes > 0, JSON.stringify(m));
    }
    assert.equal(await counter(c, 'modelhost_sessions_evicted_total', 'model="kept"'), 0);
    assert.deepEqual(
      c.modelhosts.map((m) => m.process.restarts),
      [0, 0],
    );
  });

  test('a model that alone needs more than the budget is refused with 503 MODEL_LOAD_FAILED naming MODEL_MEMORY_BYTES; the workers stay up and serve the rest', async () => {
    const up = await put(c, 'huge', mlpModel(HUGE, 7));
    assert.equal(up.status, 201, JSON.stringify(up.body));
    assert.ok(up.body.model.version_details[0].validation.memory_bytes > BUDGET, JSON.stringify(up.body.model.version_details[0].validation));
    const r = await api(c.url, '/v2/models/huge/infer', {
      json: { inputs: [{ name: 'x', shape: [1, HUGE.inputs], datatype: 'FP32', data: new Array(HUGE.inputs).fill(0.5) }] },
    });
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.equal(r.body.code, 'MODEL_LOAD_FAILED');
    assert.match(
      r.body.error,
      /^model huge version 1 needs about \d+ MB \(1 instance\), more than this worker's whole memory budget for models, 16 MB \(MODEL_MEMORY_BYTES\)/,
    );
    const v1 = await api(c.url, '/api/v1/models/huge/prediction', { json: { values: [new Array(HUGE.inputs).fill(0.5)] } });
    assert.equal(v1.status, 503, JSON.stringify(v1.body));
    assert.match(JSON.stringify(v1.body), /MODEL_MEMORY_BYTES/);
    for (const w of await loadedOn(c)) assert.ok(!w.models.some((m) => m.name === 'huge'), `${w.modelhost} did not load it`);
    assert.equal((await infer(c, MODELS[0]!)).status, 200);
    assert.deepEqual(
      c.modelhosts.map((m) => m.process.restarts),
      [0, 0],
    );
  });

  test('a worker killed under load costs no request: its models load again on the others', async () => {
    const stopAt = Date.now() + 8000;
    let n = 0;
    let killed = false;
    const victim = c.modelhosts[0]!;
    const killer = setTimeout(() => {
      killed = true;
      process.kill(victim.process.pid!, 'SIGKILL');
    }, 2500);
    const outcomes = await steadyLoad(
      12,
      async () => {
        const name = MODELS[n++ % 4]!;
        const r = await infer(c, name);
        if (r.status !== 200) return `${r.status} ${r.body?.code ?? ''} ${r.body?.error ?? ''}`;
        return JSON.stringify(r.body.outputs[0].data) === JSON.stringify(expected.get(name)) ? 'ok' : `wrong answer from ${name}`;
      },
      () => Date.now() > stopAt,
    );
    clearTimeout(killer);
    assert.ok(killed);
    assert.deepEqual(Object.keys(outcomes), ['ok'], JSON.stringify(outcomes));
  });
});

describe('model-aware placement (BALANCE=placement)', () => {
  let c: TestCluster;
  // The balancer hashes replica keys over the workers' addresses, which are new ports each run: with twelve
  // models, all on one of three workers is about one run in 180,000 (with six it was one in 243).
  const NAMES = Array.from({ length: 12 }, (_, i) => `placed-${i}`);
  const whoAnswers = async (name: string): Promise<string> => {
    const r = await infer(c, name);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return String(r.headers.get('x-modelhost-id'));
  };

  before(async () => {
    // A small model is cheap: a worker serves one at hundreds of requests per second without a queue. A
    // low PLACEMENT_RATE_PER_REPLICA makes the load this test can make from one process count as hot.
    c = await startTestCluster({ modelhosts: 3, balance: 'placement', seedDemo: false, inferrerEnv: { PLACEMENT_RATE_PER_REPLICA: '5' } });
    for (const [i, name] of NAMES.entries()) {
      const r = await put(c, name, mlpModel(SMALL, 3000 + i));
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
  });
  after(() => c?.close());

  test("a model's requests go to one worker, which alone loads it; the models spread over the workers; requests without a key take turns", async () => {
    const home = new Map<string, string>();
    for (const name of NAMES) {
      const seen = new Set<string>();
      for (let i = 0; i < 8; i++) seen.add(await whoAnswers(name));
      assert.equal(seen.size, 1, `${name} answered by ${[...seen]}`);
      home.set(name, [...seen][0]!);
    }
    assert.ok(new Set(home.values()).size >= 2, `twelve models on ${[...new Set(home.values())]}`);
    for (const w of await loadedOn(c)) {
      const here = w.models.map((m) => m.name).sort();
      assert.deepEqual(here, NAMES.filter((n) => home.get(n) === w.modelhost).sort(), `${w.modelhost} loaded only its own models`);
    }
    const r = await api(c.url, '/api/test/sendtomodelhost', { json: { data: ['a', 'b', 'c', 'd', 'e', 'f'] } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.ok(new Set(r.body.results.map((x: { modelhost: string }) => x.modelhost)).size >= 2, JSON.stringify(r.body.results));
  });

  test('predictions for different models that arrive together and are bound for one worker travel to it as one request; each model stays on its worker', async () => {
    const home = new Map<string, string>();
    for (const name of NAMES) home.set(name, await whoAnswers(name));
    const groups = async (): Promise<{ sum: number; count: number }> => {
      const text = await (await fetch(`${c.url}/metrics`)).text();
      const value = (k: string): number => Number(new RegExp(`^inferrer_upstream_group_size_${k}(?:\\{[^}]*\\})? (\\S+)`, 'm').exec(text)?.[1]);
      return { sum: value('sum'), count: value('count') };
    };
    const before = await groups();
    for (let round = 0; round < 6; round++) {
      // One prediction per model, all at once: no two for the same model, so only grouping by worker can put
      // them together. They reach the Inferrer in one turn (held while they are written: on a loaded machine
      // it once woke for each, and 72 predictions took 69 requests).
      const sending = await whileHeld(
        c.inferrer.pid!,
        () => NAMES.map((name) => infer(c, name, round).then((r) => [name, r] as const)),
        () => new Promise((r) => setTimeout(r, 200)),
      );
      const answers = await Promise.all(
        sending.map(async (p) => {
          const [name, r] = await p;
          assert.equal(r.status, 200, JSON.stringify(r.body));
          return [name, String(r.headers.get('x-modelhost-id'))] as const;
        }),
      );
      for (const [name, worker] of answers) assert.equal(worker, home.get(name), `${name} answered by its own worker`);
    }
    const after = await groups();
    const predictions = after.sum - before.sum;
    const requests = after.count - before.count;
    assert.equal(predictions, 6 * NAMES.length);
    // Grouped by model only, every one of these goes alone (72 requests); by worker, one per worker per round
    // (18; 19 measured with two busy loops taking the cores, 23 and 28 before the rounds were held).
    assert.ok(requests <= predictions * 0.6, `${predictions} predictions took ${requests} requests to the balancer`);
    console.log(`grouped: ${predictions} predictions in ${requests} requests`);
  });

  test('a hot model spreads over more workers, and its metadata says where it is loaded', async () => {
    const stopAt = Date.now() + 5000;
    const by = new Map<string, number>();
    const outcomes = await steadyLoad(
      24,
      async () => {
        const r = await infer(c, NAMES[0]!);
        if (r.status !== 200) return `${r.status} ${r.body?.code ?? ''}`;
        const w = String(r.headers.get('x-modelhost-id'));
        by.set(w, (by.get(w) ?? 0) + 1);
        return 'ok';
      },
      () => Date.now() > stopAt,
    );
    assert.deepEqual(Object.keys(outcomes), ['ok'], JSON.stringify(outcomes));
    assert.ok(by.size >= 2, `24 clients on one model were all served by ${[...by.keys()]}: ${JSON.stringify(Object.fromEntries(by))}`);
    // Evenly, whatever the ring: keys that land on a worker an earlier key covers are passed over. On three
    // workers, before that, the least served took 24, 22 and 14 % in three runs; since, 29 to 33 % (the
    // groups a worker gets differ in size from turn to turn).
    const served = [...by.values()];
    const total = served.reduce((a, b) => a + b, 0);
    console.log(`hot model: ${JSON.stringify(Object.fromEntries(by))}`);
    assert.ok(Math.min(...served) >= 0.2 * total, `a worker served under 20 %: ${JSON.stringify(Object.fromEntries(by))}`);
    const r = await api(c.url, `/api/v1/models/${NAMES[0]}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const { loaded_on, placement } = r.body.model;
    assert.ok(placement.replicas >= 2 && placement.requests_per_second > 5, JSON.stringify(placement));
    assert.deepEqual(
      loaded_on.map((l: { modelhost: string }) => l.modelhost),
      [...by.keys()].sort(),
      JSON.stringify(loaded_on),
    );
    for (const l of loaded_on) {
      assert.equal(l.version, 1);
      assert.equal(l.state, 'READY');
      assert.ok(l.resident_bytes > 0 && l.idle_seconds < 5, JSON.stringify(l));
    }
  });

  test('requests that find their model unloaded share one load and wait for it; one whose deadline passes first gets 504 DEADLINE_EXCEEDED, never a 500', async () => {
    // 20 000 Identity nodes: a few hundred ms to parse and optimise, so every request below arrives during the load.
    const up = await put(c, 'slow-load', identityChainModel(20_000));
    assert.equal(up.status, 201, JSON.stringify(up.body));
    const w = c.modelhosts[0]!;
    const metric = async (name: string, match: string): Promise<number> => {
      const text = await (await fetch(`${w.url}/metrics`)).text();
      return text
        .split('\n')
        .filter((l) => l.startsWith(`${name}{`) && l.includes(match))
        .reduce((a, l) => a + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    };
    const waitedBefore = await metric('modelhost_model_lookups_total', 'result="load"');
    const send = (timeoutMs: number): Promise<Response> =>
      fetch(`${w.url}/v2/models/slow-load/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-timeout-ms': String(timeoutMs) },
        body: JSON.stringify({ inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] }),
      });
    const [short, ...rest] = await Promise.all([send(50), ...Array.from({ length: 8 }, () => send(30_000))]);
    // The modelhost's wire form of an error (the Inferrer answers clients with its own shape of it).
    const shortBody = (await short.json()) as { error: { code: string; message: string } };
    assert.equal(short.status, 504, JSON.stringify(shortBody));
    assert.equal(shortBody.error.code, 'DEADLINE_EXCEEDED');
    assert.match(shortBody.error.message, /still loading/);
    for (const r of rest) {
      const body = (await r.json()) as { outputs: { data: number[] }[] };
      assert.equal(r.status, 200, JSON.stringify(body));
      assert.deepEqual(body.outputs[0]!.data, [1, 2, 3, 4]);
      assert.match(String(r.headers.get('server-timing')), /load;dur=\d/, 'it waited for the load');
    }
    assert.equal(await metric('modelhost_model_load_duration_seconds_count', 'model="slow-load"'), 1, 'one load on this worker for nine requests');
    assert.ok((await metric('modelhost_model_lookups_total', 'result="load"')) - waitedBefore >= 8);
    const again = await send(30_000);
    assert.equal(again.status, 200);
    assert.doesNotMatch(String(again.headers.get('server-timing')), /load;dur/, 'loaded now: a hit');
  });

  test('a worker that dies costs only its own models a load elsewhere; the others stay where they are', async () => {
    const home = new Map<string, string>();
    for (const name of NAMES.slice(1)) home.set(name, await whoAnswers(name));
    const victimId = home.get(NAMES[1]!)!;
    const victim = c.modelhosts.find((m) => m.id === victimId)!;
    process.kill(victim.process.pid!, 'SIGKILL');
    for (const name of NAMES.slice(1)) {
      const now = await whoAnswers(name);
      if (home.get(name) === victimId) assert.notEqual(now, victimId, `${name} moved`);
      else assert.equal(now, home.get(name), `${name} stayed on ${home.get(name)}`);
    }
  });
});
