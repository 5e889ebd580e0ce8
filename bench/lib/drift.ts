/**
 * `pnpm bench -- --only drift`: what live drift statistics cost on the hot path.
 *
 *   1. in-process: µs per request to count inputs and outputs (DriftTracker) for an iris row, a batch of
 *      32 iris rows, and a 3×224×224 image (3 channel features over at most 4096 sampled pixels each);
 *   2. cluster: iris at 32 clients through the whole cluster with a reference profile attached, once with
 *      DRIFT_ENABLED=true and once with false (two clusters, one after the other), requests/s, p50, p99
 *      and the servers' CPU per request.
 */
import type { NamedTensors } from '@inferrer/core';
import { ModelStore, type StoredProfile } from '@inferrer/model-store';
import { DriftTracker, featureProfile, profileFromRows } from '@inferrer/drift';
import { clusterPids, startBenchCluster } from './cluster.ts';
import { IRIS_BODY } from './iris.ts';
import type { LoadResult } from './load.ts';
import { measure } from './measure.ts';
import type { BenchOptions } from './options.ts';
import { fmt, fmtMs, table } from './table.ts';

export interface DriftMicro {
  case: string;
  usPerRequest: number;
}

export interface DriftRun {
  drift: boolean;
  load: LoadResult;
  serverUsPerRequest: number | null;
}

export interface DriftResult {
  micro: DriftMicro[];
  runs: DriftRun[];
  /** drift on ÷ drift off requests/s. */
  ratio: number;
}

function irisRows(n: number, seed = 1): number[][] {
  let a = seed;
  const u = (): number => (a = (a * 1103515245 + 12345) % 2147483648) / 2147483648;
  return Array.from({ length: n }, () => [4.3 + 3.6 * u(), 2 + 2.4 * u(), 1 + 5.9 * u(), 0.1 + 2.4 * u()]);
}

function timeIt(fn: () => void, minMs = 400): number {
  for (let i = 0; i < 200; i++) fn();
  let n = 0;
  const start = performance.now();
  while (performance.now() - start < minMs) {
    for (let i = 0; i < 100; i++) fn();
    n += 100;
  }
  return ((performance.now() - start) * 1000) / n;
}

export function microDrift(): DriftMicro[] {
  const profile = profileFromRows(irisRows(2000), ['input[0]', 'input[1]', 'input[2]', 'input[3]']);
  profile.outputs = [
    featureProfile('label', [0, 1, 2, 0, 1, 2]),
    featureProfile('probabilities:class', [0, 1, 2]),
    featureProfile(
      'probabilities:score',
      irisRows(500).map((r) => r[0]! / 8),
    ),
  ];
  const tracker = new DriftTracker(profile);
  const batch = (rows: number): [NamedTensors, NamedTensors] => [
    { input: { type: 'float32', dims: [rows, 4], data: Float32Array.from(irisRows(rows).flat()) } },
    {
      label: { type: 'int64', dims: [rows], data: new BigInt64Array(rows) },
      probabilities: { type: 'float32', dims: [rows, 3], data: new Float32Array(rows * 3).fill(0.3) },
    },
  ];
  const [one, oneOut] = batch(1);
  const [b32, b32Out] = batch(32);
  const img: NamedTensors = {
    input: { type: 'float32', dims: [1, 3, 224, 224], data: Float32Array.from({ length: 3 * 224 * 224 }, (_, i) => (i % 255) / 255) },
  };
  const imgProfile: StoredProfile = {
    source: 'upload',
    created_at: '',
    samples: 1,
    inputs: [0, 1, 2].map((c) =>
      featureProfile(
        `input[channel ${c}]`,
        Array.from({ length: 1000 }, (_, i) => i / 1000),
      ),
    ),
    outputs: [],
  };
  const imgTracker = new DriftTracker(imgProfile);
  const logits: NamedTensors = { logits: { type: 'float32', dims: [1, 1000], data: new Float32Array(1000) } };
  return [
    { case: 'iris, 1 row (4 inputs + 3 outputs)', usPerRequest: timeIt(() => tracker.observe(one, ['input'], oneOut, ['label', 'probabilities'], 1)) },
    { case: 'iris, 32 rows', usPerRequest: timeIt(() => tracker.observe(b32, ['input'], b32Out, ['label', 'probabilities'], 32)) },
    { case: 'image 3×224×224 (3 channels, 4096 px each)', usPerRequest: timeIt(() => imgTracker.observe(img, ['input'], logits, ['logits'], 1)) },
  ];
}

export async function runDrift(opts: BenchOptions, log: (line: string) => void): Promise<DriftResult> {
  const micro = microDrift();
  for (const m of micro) log(`  in-process ${m.case}: ${m.usPerRequest.toFixed(2)} µs/request`);
  const runs: DriftRun[] = [];
  for (const drift of [true, false]) {
    log(`starting a cluster with ${opts.modelhosts} modelhosts, DRIFT_ENABLED=${drift} …`);
    const bc = await startBenchCluster({ modelhosts: opts.modelhosts, models: [], modelhostEnv: { DRIFT_ENABLED: String(drift) } });
    try {
      const store = new ModelStore(bc.cluster.modelDir);
      await store.setProfile('iris', 1, profileFromRows(irisRows(2000), ['input[0]', 'input[1]', 'input[2]', 'input[3]']) as StoredProfile);
      await new Promise((r) => setTimeout(r, 1500));
      const o = opts.iris;
      const m = await measure(
        {
          url: `${bc.url}/api/v1/models/iris/prediction`,
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: IRIS_BODY,
          connections: 32,
          warmupS: o.warmupS,
          durationS: o.durationS,
          timeoutS: 10,
        },
        clusterPids(bc),
      );
      runs.push({ drift, load: m.load, serverUsPerRequest: m.cpu ? m.cpu.serverUsPerRequest : null });
      log(
        `  drift ${drift ? 'on ' : 'off'}: ${Math.round(m.load.rps)} req/s, p50 ${fmtMs(m.load.p50)} ms, p99 ${fmtMs(m.load.p99)} ms, errors ${m.load.errors}${m.cpu ? `, CPU ${Math.round(m.cpu.serverUsPerRequest)} µs/req` : ''}`,
      );
      if (drift) {
        const rows = (await (await fetch(`${bc.cluster.modelhosts[0]!.url}/v1/drift`)).json()) as { trackers: { rows: number }[] };
        if (!(rows.trackers[0]?.rows > 0)) throw new Error('drift on, but the modelhost counted no rows: the profile was not picked up');
      }
    } finally {
      await bc.stop();
    }
  }
  return { micro, runs, ratio: runs[0]!.load.rps / runs[1]!.load.rps };
}

export function driftTable(r: DriftResult): string {
  const micro = table(
    ['in-process (DriftTracker)', 'µs/request'],
    r.micro.map((m) => [m.case, m.usPerRequest.toFixed(2)]),
  );
  const cluster = table(
    ['iris, 32 clients', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'server CPU µs/req'],
    r.runs.map((x) => [
      `drift ${x.drift ? 'on' : 'off'}`,
      fmt(x.load.rps, 0),
      fmtMs(x.load.p50),
      fmtMs(x.load.p99),
      String(x.load.errors),
      x.serverUsPerRequest === null ? '-' : String(Math.round(x.serverUsPerRequest)),
    ]),
  );
  return `${micro}\n\n${cluster}\ndrift on ÷ off: ${r.ratio.toFixed(3)} × requests/s`;
}
