/**
 * The load generator of the many-models part, run as its own child process (bench/lib/many-models.ts forks
 * it). Closed-loop clients each send a v2 infer request for a model drawn from a Zipf distribution over
 * the ranks, wait for the answer, and send the next. Every answer is classed by its Server-Timing: with
 * `load;dur=…` the request waited for its model to load on the worker (a load), without it the model was
 * loaded (a hit). A hit's queue and compute durations there are the time it spent in the worker's batcher
 * and runtime; the rest of its latency was spent getting there and back (HTTP, the Inferrer, the balancer,
 * the worker's event loop and its runtime thread waking up). Only answers that complete inside the measured
 * window count; errors count over the whole run.
 *
 *   parent → child   ManyModelsLoad
 *   child → parent   {type: 'start'} when the window opens, {type: 'end'} when it closes,
 *                    {type: 'result', result: ManyModelsLoadResult} | {type: 'error', error}
 */
import http from 'node:http';

export interface ManyModelsLoad {
  url: string;
  /** Model names by rank (rank 0 is the most popular) and the input width of each. */
  models: { name: string; inputs: number }[];
  /** Zipf exponent; 0: every request for models[0] (the single-model run). */
  zipf: number;
  clients: number;
  warmupS: number;
  durationS: number;
  timeoutS: number;
}

export interface Latencies {
  count: number;
  p50: number;
  p99: number;
}

export interface ManyModelsLoadResult {
  seconds: number;
  ok: number;
  rps: number;
  hits: Latencies;
  /** Of the hits: the time each spent in the worker's batcher queue and run (Server-Timing queue + compute). */
  hitsInWorker: Latencies;
  loads: Latencies;
  /** Answers by modelhost (from X-Modelhost-Id). */
  perModelhost: Record<string, number>;
  /** Distinct models requested in the window. */
  distinctModels: number;
  /** By rank: the modelhost that answered the model most often in the window ('' if never asked). */
  home: string[];
  errors: number;
  /** Error answers by status and code (first few kinds). */
  errorKinds: Record<string, number>;
  /** CPU seconds this generator used in the window. */
  cpuS: number;
}

/** Ranks drawn with probability ∝ 1 / (rank + 1)^s, by inverting the cumulative distribution. */
function zipfSampler(n: number, s: number): () => number {
  if (s === 0) return () => 0;
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    sum += 1 / (i + 1) ** s;
    cdf[i] = sum;
  }
  return () => {
    const u = Math.random() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

function summary(samples: number[]): Latencies {
  const sorted = Float64Array.from(samples).sort();
  const at = (p: number): number => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]! : Number.NaN);
  return { count: sorted.length, p50: at(0.5), p99: at(0.99) };
}

/** A duration of a Server-Timing header (`name;dur=ms`), 0 when absent. */
function timing(header: string, name: string): number {
  const at = header.indexOf(`${name};dur=`);
  return at < 0 ? 0 : Number.parseFloat(header.slice(at + name.length + 5));
}

/** One POST on a keep-alive connection: status, the headers that matter, the body as text. */
function post(
  agent: http.Agent,
  url: URL,
  path: string,
  body: string,
  timeoutMs: number,
): Promise<{ status: number; timing: string; modelhost: string; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        method: 'POST',
        path,
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            timing: String(res.headers['server-timing'] ?? ''),
            modelhost: String(res.headers['x-modelhost-id'] ?? '?'),
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'TIMEOUT' })));
    req.on('error', reject);
    req.end(body);
  });
}

async function run(spec: ManyModelsLoad): Promise<ManyModelsLoadResult> {
  const base = new URL(spec.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: spec.clients });
  const draw = zipfSampler(spec.models.length, spec.zipf);
  const bodies = new Map<number, string>();
  const body = (inputs: number): string => {
    let b = bodies.get(inputs);
    if (!b) {
      b = JSON.stringify({ inputs: [{ name: 'x', shape: [1, inputs], datatype: 'FP32', data: Array.from({ length: inputs }, (_, i) => (i % 7) / 7) }] });
      bodies.set(inputs, b);
    }
    return b;
  };
  const started = performance.now();
  const windowStart = started + spec.warmupS * 1000;
  const windowEnd = windowStart + spec.durationS * 1000;
  const hits: number[] = [];
  const hitsInWorker: number[] = [];
  const loads: number[] = [];
  const perModelhost: Record<string, number> = {};
  const errorKinds: Record<string, number> = {};
  const seen = new Set<number>();
  const byModel = new Map<number, Map<string, number>>();
  let errors = 0;
  let cpu: NodeJS.CpuUsage | undefined;
  let cpuUsed: NodeJS.CpuUsage | undefined;
  setTimeout(() => {
    cpu = process.cpuUsage();
    process.send!({ type: 'start' });
  }, spec.warmupS * 1000);
  setTimeout(
    () => {
      cpuUsed = process.cpuUsage(cpu);
      process.send!({ type: 'end' });
    },
    (spec.warmupS + spec.durationS) * 1000,
  );
  await Promise.all(
    Array.from({ length: spec.clients }, async () => {
      while (performance.now() < windowEnd) {
        const rank = draw();
        const m = spec.models[rank]!;
        const t = performance.now();
        try {
          const res = await post(agent, base, `/v2/models/${m.name}/infer`, body(m.inputs), spec.timeoutS * 1000);
          const text = res.text;
          const done = performance.now();
          if (res.status !== 200) {
            errors++;
            let code = '';
            try {
              code = String((JSON.parse(text) as { code?: string }).code ?? '');
            } catch {
              // not JSON
            }
            const kind = `${res.status} ${code}`;
            if (Object.keys(errorKinds).length < 12 || kind in errorKinds) errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
            continue;
          }
          if (done < windowStart || done > windowEnd) continue;
          if (res.timing.includes('load;dur=')) loads.push(done - t);
          else {
            hits.push(done - t);
            hitsInWorker.push(timing(res.timing, 'queue') + timing(res.timing, 'compute'));
          }
          const w = res.modelhost;
          perModelhost[w] = (perModelhost[w] ?? 0) + 1;
          seen.add(rank);
          const counts = byModel.get(rank) ?? new Map<string, number>();
          counts.set(w, (counts.get(w) ?? 0) + 1);
          byModel.set(rank, counts);
        } catch (err) {
          errors++;
          const kind = (err as { code?: string }).code ?? (err as Error).message.slice(0, 60);
          errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
        }
      }
    }),
  );
  agent.destroy();
  const ok = hits.length + loads.length;
  const home = spec.models.map((_, rank) => {
    let best = '';
    let most = 0;
    for (const [w, n] of byModel.get(rank) ?? []) if (n > most) [best, most] = [w, n];
    return best;
  });
  return {
    seconds: spec.durationS,
    ok,
    rps: ok / spec.durationS,
    hits: summary(hits),
    hitsInWorker: summary(hitsInWorker),
    loads: summary(loads),
    perModelhost,
    distinctModels: seen.size,
    home,
    errors,
    errorKinds,
    cpuS: cpuUsed ? (cpuUsed.user + cpuUsed.system) / 1e6 : Number.NaN,
  };
}

process.once('message', (spec: ManyModelsLoad) => {
  run(spec).then(
    (result) => process.send!({ type: 'result', result }, () => process.exit(0)),
    (err: unknown) => process.send!({ type: 'error', error: String((err as Error)?.stack ?? err) }, () => process.exit(1)),
  );
});
