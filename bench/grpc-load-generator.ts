/**
 * The gRPC load generator, the counterpart of load-generator.ts (autocannon speaks HTTP/1.1 only): run as
 * its own child process (bench/lib/grpc.ts forks it), it receives one GrpcLoadSpec over IPC and keeps
 * `connections` ModelInfer calls in flight (closed loop, one per simulated client) for warm-up + window
 * seconds, then sends back one LoadResult measured exactly as the HTTP generator measures: only answers
 * completing inside the window count, latencies per call (grpc-status 0 only), errors over the whole run.
 *
 * As autocannon sends one prepared HTTP request and reads only the status, this sends one prepared gRPC
 * message (the ModelInferRequest serialised once with the service's .proto, length-prefixed) on node's
 * own HTTP/2 client, 16 calls per connection, and reads only the grpc-status trailer: the generator's
 * cost stays small next to the server's. (@grpc/grpc-js as a client costs about three times as much CPU
 * per call, which on a small machine takes it from the server being measured; the e2e tests use it.)
 */
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { GrpcLoadSpec } from './lib/grpc.ts';
import type { LoadResult } from './lib/load.ts';

const CALLS_PER_CONNECTION = 16;

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** The request as it goes on the wire: a 5-byte gRPC message prefix (not compressed, length), then the message. */
function prepared(spec: GrpcLoadSpec): { path: string; frame: Buffer } {
  const def = protoLoader.loadSync(spec.proto, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  const method = (grpc.loadPackageDefinition(def) as any).inference.GRPCInferenceService.service.ModelInfer as grpc.MethodDefinition<unknown, unknown>;
  const message = method.requestSerialize({ ...spec.request, raw_input_contents: spec.request.raw_input_contents.map((b) => Buffer.from(b, 'base64')) });
  const frame = Buffer.allocUnsafe(5 + message.length);
  frame.writeUInt8(0, 0);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  return { path: method.path, frame };
}

async function measure(spec: GrpcLoadSpec): Promise<LoadResult> {
  const { path, frame } = prepared(spec);
  const sessions = Array.from({ length: Math.max(1, Math.ceil(spec.connections / CALLS_PER_CONNECTION)) }, () => http2.connect(`http://${spec.address}`));
  await Promise.all(sessions.map((s) => new Promise<void>((resolve, reject) => s.once('connect', () => resolve()).once('error', reject))));
  const headers = { ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' };

  const latencies: number[] = [];
  const statusCodes: Record<string, number> = {};
  let failed = 0;
  let timeouts = 0;
  let windowStart = Number.POSITIVE_INFINITY;
  let windowEnd = Number.POSITIVE_INFINITY;
  let cpu: NodeJS.CpuUsage | undefined;
  let cpuUsed: NodeJS.CpuUsage | undefined;
  const runEnd = performance.now() + (spec.warmupS + spec.durationS + 0.5) * 1000;

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

  const one = (session: http2.ClientHttp2Session): Promise<void> =>
    new Promise((resolve) => {
      const t0 = performance.now();
      let status: string | undefined;
      const req = session.request(headers);
      req.setTimeout(spec.timeoutS * 1000, () => req.close(http2.constants.NGHTTP2_CANCEL));
      req.on('response', (h) => {
        // A call refused at once has its grpc-status in the headers (trailers-only answer).
        if (h['grpc-status'] !== undefined) status = String(h['grpc-status']);
      });
      req.on('trailers', (t) => {
        status = String(t['grpc-status']);
      });
      req.on('data', () => undefined);
      req.once('close', () => {
        const now = performance.now();
        const code = status === undefined ? 'CANCELLED' : (grpc.status[Number(status)] ?? status);
        statusCodes[code] = (statusCodes[code] ?? 0) + 1;
        if (status === '0') {
          if (now >= windowStart && now <= windowEnd) latencies.push(now - t0);
        } else if (status === undefined || status === String(grpc.status.DEADLINE_EXCEEDED)) timeouts++;
        else failed++;
        resolve();
      });
      req.on('error', () => undefined);
      req.end(frame);
    });
  await Promise.all(
    Array.from({ length: spec.connections }, async (_, i) => {
      const session = sessions[i % sessions.length]!;
      while (performance.now() < runEnd) await one(session);
    }),
  );
  for (const s of sessions) s.close();
  const sorted = Float64Array.from(latencies).sort();
  const ok = sorted.length;
  const used = cpuUsed ?? process.cpuUsage(cpu);
  return {
    connections: spec.connections,
    seconds: spec.durationS,
    ok,
    rps: ok / spec.durationS,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: ok ? sorted[ok - 1]! : Number.NaN,
    mean: ok ? sorted.reduce((a, b) => a + b, 0) / ok : Number.NaN,
    non2xx: failed,
    socketErrors: 0,
    timeouts,
    errors: failed + timeouts,
    statusCodes,
    generatorCpuS: (used.user + used.system) / 1e6,
  };
}

process.on('disconnect', () => process.exit(1));

process.once('message', (spec: GrpcLoadSpec) => {
  measure(spec).then(
    (result) => process.send!({ type: 'result', result }, () => process.exit(0)),
    (err: unknown) => process.send!({ type: 'error', error: String((err as Error)?.stack ?? err) }, () => process.exit(1)),
  );
});
