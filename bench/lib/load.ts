/** Runs one load point in a fresh child process (bench/load-generator.ts) and returns what it measured. */
import { fork } from 'node:child_process';
import path from 'node:path';
import { BENCH_DIR } from './paths.ts';

export interface LoadSpec {
  url: string;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: string;
  /** base64: `body` holds binary bytes (multipart images) as base64, decoded in the load generator. */
  bodyEncoding?: 'base64';
  connections: number;
  /**
   * Every second request of each connection carries a body never sent before: `body` with a counter written
   * as a float32 at this byte offset (the response cache bench: the other half repeat `body`, 50 % hits).
   */
  alternateUniqueAt?: number;
  warmupS: number;
  durationS: number;
  timeoutS: number;
  /** Also count answers of any status slower than this, ms (over the warm-up and the window). */
  lateAfterMs?: number;
}

export interface LoadResult {
  connections: number;
  /** Length of the measured window. */
  seconds: number;
  /** 2xx answers in the window. */
  ok: number;
  /** 2xx answers per second. */
  rps: number;
  /** Latency percentiles of 2xx answers, ms. */
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
  non2xx: number;
  socketErrors: number;
  timeouts: number;
  /** non-2xx answers + socket errors + timeouts, over the warm-up and the window. */
  errors: number;
  statusCodes: Record<string, number>;
  /** Slowest answer of each status, ms (over the warm-up and the window; autocannon's generator). */
  maxByStatus?: Record<string, number>;
  /** Answers of any status slower than spec.lateAfterMs (autocannon's generator; 0 when it is not set). */
  late?: number;
  /** Responses that came on a new connection of an autocannon client (it reconnected after the server closed one). */
  reconnected?: number;
  /** Of the late answers, those to a connection's first request (the connect burst at the start). */
  lateFirst?: number;
  /**
   * The longest a connection's first request waited inside the load generator for its connection to open
   * (autocannon builds every client before any connects), ms; not part of that request's latency.
   */
  openWaitMax?: number;
  /** The load generator's own event-loop delay over the run, p99 and max, ms: how late it may have timed an answer. */
  loopDelayP99?: number;
  loopDelayMax?: number;
  /** CPU seconds the load generator itself used in the window. */
  generatorCpuS: number;
}

type ChildMessage = { type: 'start' } | { type: 'end' } | { type: 'result'; result: LoadResult } | { type: 'error'; error: string };

/** The parts of a load spec every generator reads (HTTP: LoadSpec; gRPC: lib/grpc.ts GrpcLoadSpec). */
export interface AnyLoadSpec {
  warmupS: number;
  durationS: number;
  timeoutS: number;
}

/**
 * `onStart` runs when the warm-up is over and the measured window begins, `onEnd` when the window is over.
 * `generator`: the script in bench/ that generates the load (autocannon's HTTP one by default).
 */
export function runLoad<S extends AnyLoadSpec>(spec: S, onStart?: () => void, onEnd?: () => void, generator = 'load-generator.ts'): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = fork(path.join(BENCH_DIR, generator), [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let answered = false;
    const limit = setTimeout(() => child.kill('SIGKILL'), (spec.warmupS + spec.durationS + spec.timeoutS + 60) * 1000);
    child.on('message', (msg: ChildMessage) => {
      if (msg.type === 'start') {
        onStart?.();
        return;
      }
      if (msg.type === 'end') {
        onEnd?.();
        return;
      }
      answered = true;
      clearTimeout(limit);
      if (msg.type === 'error') reject(new Error(`load generator failed: ${msg.error}`));
      else resolve(msg.result);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(limit);
      if (!answered) reject(new Error(`load generator exited (${signal ?? code}) without a result`));
    });
    child.send(spec);
  });
}
