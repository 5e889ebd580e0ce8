/**
 * The load generator, run as its own child process (bench/lib/load.ts forks it) so that its CPU cost is
 * the same whichever server it drives. It receives one LoadSpec over IPC, runs ONE autocannon run of
 * warm-up + window seconds, and sends back one LoadResult.
 *
 * Only answers that complete inside the window [warm-up end, warm-up end + duration] are counted, so
 * requests still queued from the warm-up are not lost (as they would be with two separate runs, whose
 * abandoned requests keep the server busy at the start of the second one) and requests cut off when
 * autocannon stops do not count against the window. Errors (non-2xx, socket errors, timeouts) are
 * counted over the whole run, warm-up included.
 *
 * Latencies are taken from autocannon's `response` events (sub-millisecond, 2xx only); autocannon's own
 * histogram rounds to whole milliseconds, too coarse for a 0.3 ms iris request.
 *
 * A connection's first request is timed from the moment its connection opened. autocannon starts that
 * request's clock when it builds the client, before the connection exists, and it builds all its clients
 * in one synchronous loop: with 512 clients and a 600 KB body that loop takes 0.45 s on a quiet machine and
 * seconds on a loaded one, time in which nothing has been sent. The longest such wait is reported.
 */
import type { Socket } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import autocannon from 'autocannon';
import type { LoadResult, LoadSpec } from './lib/load.ts';

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

function measure(spec: LoadSpec): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const samples = new Samples();
    const statusCodes: Record<string, number> = {};
    const maxByStatus: Record<string, number> = {};
    let late = 0;
    let reconnected = 0;
    let lateFirst = 0;
    let openWaitMax = 0;
    // This process's own event-loop delay: how late it may have seen an answer that had already arrived.
    const loopDelay = monitorEventLoopDelay({ resolution: 10 });
    loopDelay.enable();
    let non2xx = 0;
    let socketErrors = 0;
    let timeouts = 0;
    let windowStart = Infinity;
    let windowEnd = Infinity;
    let cpu: NodeJS.CpuUsage | undefined;
    let cpuUsed: NodeJS.CpuUsage | undefined;

    const body = spec.body === undefined ? undefined : spec.bodyEncoding === 'base64' ? Buffer.from(spec.body, 'base64') : Buffer.from(spec.body);
    let unique = 0;
    // Every second request of each connection: the body with a counter in it, never sent before.
    const alternate = (req: autocannon.Request): autocannon.Request => {
      const b = Buffer.from(body!);
      b.writeFloatLE(++unique, spec.alternateUniqueAt!);
      return { ...req, body: b };
    };
    const instance = autocannon(
      {
        url: spec.url,
        method: spec.method,
        headers: spec.headers,
        ...(body !== undefined ? { body } : {}),
        ...(spec.alternateUniqueAt !== undefined && body !== undefined ? { requests: [{}, { setupRequest: alternate }] } : {}),
        connections: spec.connections,
        pipelining: 1,
        setupClient: (client) => {
          // Called as the client is built, just before its first request's clock starts; its connection
          // exists once the constructor returns.
          const made = performance.now();
          queueMicrotask(() =>
            (client as unknown as { conn: Socket }).conn.once('connect', () => {
              const wait = performance.now() - made;
              openWait.set(client, wait);
              if (wait > openWaitMax) openWaitMax = wait;
            }),
          );
        },
        // One extra second so the window is over before autocannon starts tearing connections down.
        duration: spec.warmupS + spec.durationS + 1,
        timeout: spec.timeoutS,
      },
      (err) => {
        if (err) return reject(err);
        const sorted = samples.sorted();
        const ok = sorted.length;
        let sum = 0;
        for (const v of sorted) sum += v;
        const used = cpuUsed ?? process.cpuUsage(cpu);
        resolve({
          connections: spec.connections,
          seconds: spec.durationS,
          ok,
          rps: ok / spec.durationS,
          p50: percentile(sorted, 50),
          p90: percentile(sorted, 90),
          p99: percentile(sorted, 99),
          max: ok ? sorted[ok - 1]! : NaN,
          mean: ok ? sum / ok : NaN,
          non2xx,
          socketErrors,
          timeouts,
          errors: non2xx + socketErrors + timeouts,
          statusCodes,
          maxByStatus,
          late,
          reconnected,
          lateFirst,
          openWaitMax,
          loopDelayP99: loopDelay.percentile(99) / 1e6,
          loopDelayMax: loopDelay.max / 1e6,
          generatorCpuS: (used.user + used.system) / 1e6,
        });
      },
    );

    const startWindow = (): void => {
      windowStart = performance.now();
      windowEnd = windowStart + spec.durationS * 1000;
      cpu = process.cpuUsage();
      process.send!({ type: 'start' });
      setTimeout(() => {
        cpuUsed = process.cpuUsage(cpu);
        process.send!({ type: 'end' });
      }, spec.durationS * 1000);
    };
    if (spec.warmupS > 0) setTimeout(startWindow, spec.warmupS * 1000);
    else startWindow();

    /** Each client's connection at its last answer; a client not in it has had no answer yet. */
    const lastConn = new WeakMap<object, unknown>();
    /** How long each client's first request waited in this process for its connection to open, ms. */
    const openWait = new WeakMap<object, number>();
    instance.on('response', (client, status, _bytes, clockMs) => {
      const conn = (client as unknown as { conn: unknown }).conn;
      const first = !lastConn.has(client);
      const ms = first ? clockMs - (openWait.get(client) ?? 0) : clockMs;
      if (!first && lastConn.get(client) !== conn) reconnected++;
      lastConn.set(client, conn);
      statusCodes[status] = (statusCodes[status] ?? 0) + 1;
      if (!(ms <= (maxByStatus[status] ?? 0))) maxByStatus[status] = ms;
      if (spec.lateAfterMs !== undefined && ms > spec.lateAfterMs) {
        late++;
        if (first) lateFirst++;
      }
      if (status < 200 || status >= 300) {
        non2xx++;
        return;
      }
      const now = performance.now();
      if (now >= windowStart && now <= windowEnd) samples.push(ms);
    });
    instance.on('reqError', (err: Error) => {
      if (/timed out/.test(err.message)) timeouts++;
      else socketErrors++;
    });
  });
}

// The bench went away: stop rather than keep loading a server nobody measures.
process.on('disconnect', () => process.exit(1));

process.once('message', (spec: LoadSpec) => {
  measure(spec).then(
    (result) => process.send!({ type: 'result', result }, () => process.exit(0)),
    (err: unknown) => process.send!({ type: 'error', error: String((err as Error)?.stack ?? err) }, () => process.exit(1)),
  );
});
