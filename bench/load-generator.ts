/**
 * The load generator, run as its own child process (bench/lib/load.ts forks it) so that its CPU cost is
 * the same whichever server it drives. It receives one LoadSpec over IPC, runs autocannon for the warm-up
 * (discarded) and then for the measured window, and sends back one LoadResult.
 *
 * Latencies are taken from autocannon's `response` events (sub-millisecond, 2xx only); autocannon's own
 * histogram rounds to whole milliseconds, too coarse for a 0.3 ms iris request.
 */
import autocannon from 'autocannon';
import type { LoadResult, LoadSpec } from './lib/load.ts';

function run(spec: LoadSpec, seconds: number, latencies: { push(ms: number): void } | undefined): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: spec.url,
        method: spec.method,
        headers: spec.headers,
        ...(spec.body !== undefined ? { body: spec.body } : {}),
        connections: spec.connections,
        pipelining: 1,
        duration: seconds,
        timeout: spec.timeoutS,
      },
      (err, result) => (err ? reject(err) : resolve(result)),
    );
    if (latencies) {
      instance.on('response', (_client, status, _bytes, ms) => {
        if (status >= 200 && status < 300) latencies.push(ms);
      });
    }
  });
}

class Samples {
  data = new Float64Array(1 << 16);
  length = 0;
  push(ms: number): void {
    if (this.length === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length++] = ms;
  }
  sorted(): Float64Array {
    return this.data.subarray(0, this.length).sort();
  }
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

// The bench went away: stop rather than keep loading a server nobody measures.
process.on('disconnect', () => process.exit(1));

process.once('message', (spec: LoadSpec) => {
  void (async () => {
    if (spec.warmupS > 0) await run(spec, spec.warmupS, undefined);
    const samples = new Samples();
    await new Promise<void>((resolve) => process.send!({ type: 'start' }, () => resolve()));
    const cpu = process.cpuUsage();
    const started = performance.now();
    const r = await run(spec, spec.durationS, samples);
    const used = process.cpuUsage(cpu);
    const seconds = r.duration || (performance.now() - started) / 1000;
    const sorted = samples.sorted();
    const ok = sorted.length;
    let sum = 0;
    for (const v of sorted) sum += v;
    const statusCodes: Record<string, number> = {};
    for (const [code, s] of Object.entries(r.statusCodeStats ?? {})) statusCodes[code] = (s as { count: number }).count;
    const result: LoadResult = {
      connections: spec.connections,
      seconds,
      ok,
      rps: ok / seconds,
      p50: percentile(sorted, 50),
      p90: percentile(sorted, 90),
      p99: percentile(sorted, 99),
      max: ok ? sorted[ok - 1]! : NaN,
      mean: ok ? sum / ok : NaN,
      non2xx: r.non2xx,
      socketErrors: r.errors - r.timeouts,
      timeouts: r.timeouts,
      errors: r.non2xx + r.errors,
      statusCodes,
      generatorCpuS: (used.user + used.system) / 1e6,
    };
    process.send!({ type: 'result', result }, () => process.exit(0));
  })().catch((err: unknown) => {
    process.send!({ type: 'error', error: String((err as Error)?.stack ?? err) }, () => process.exit(1));
  });
});
