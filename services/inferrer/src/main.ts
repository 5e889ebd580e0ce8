/** Inferrer entry point: config → store, upstream, management, dataplane → HTTP and gRPC → SIGTERM drains. */
import { stat } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { listenWithAcceptors } from '@inferrer/http';
import { ModelStore } from '@inferrer/model-store';
import { EXIT_CONFIG, createLogger, exitOnConfigError, exitOnListenError, stopWithLauncher } from '@inferrer/telemetry';
import { createApp } from './app.ts';
import { Auth } from './auth.ts';
import { type InferrerConfig, loadConfig } from './config.ts';
import { DataPlane } from './dataplane.ts';
import { noteConnection } from './deadline.ts';
import { createJobService } from './jobs/index.ts';
import { Management } from './management.ts';
import { MetricsClient } from './metrics-client.ts';
import { importModelFolder } from './model-folder.ts';
import { InferrerMetrics } from './metrics.ts';
import { ClientAddresses } from './http/client-address.ts';
import { ClientConnections, capConnectionsPerClient } from './http/connection-guard.ts';
import { GrpcServer } from './protocol/grpc/server.ts';
import { OipService } from './protocol/oip-v2/service.ts';
import { Upstream } from './upstream.ts';
import { createProcessInspector } from './validation/validation-process.ts';

let config: InferrerConfig;
try {
  config = loadConfig();
} catch (err) {
  exitOnConfigError(err);
}

const logger = createLogger({ service: 'inferrer', level: config.logLevel, format: config.logFormat }).child({ inferrer: config.id });
const log = logger.child({ module: 'main' });
const store = new ModelStore(config.modelDir, { inspect: createProcessInspector(config.validation, logger) });
const reclaimed = await store.init();
if (reclaimed.length) log.info('store leftovers reclaimed', { removed: reclaimed });
// Leftovers of writers that died (.staging, .trash) go at start and, from any that die later, within a lease.
const sweeper = setInterval(() => {
  store.sweep().then(
    (removed) => removed.length && log.info('store leftovers reclaimed', { removed }),
    (err: unknown) => log.warn('store sweep failed', { err: { message: (err as Error).message } }),
  );
}, 10_000);
sweeper.unref();
// Every request to the modelhosts carries the store generation this Inferrer last wrote (read-your-writes).
const upstream = new Upstream(config.loadBalancerUrl, config.upstreamConnections, () => store.written);
const metrics = new InferrerMetrics();
const dataplane = new DataPlane(upstream, config, (size) => metrics.groupSize.observe(size));
metrics.watchGate(dataplane.gate);
const management = new Management(store);
let auth: Auth;
try {
  auth = new Auth(config);
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(EXIT_CONFIG);
}
if (config.importModelsFrom) {
  const dir = path.resolve(config.importModelsFrom);
  if (
    !(await stat(dir).then(
      (st) => st.isDirectory(),
      () => false,
    ))
  ) {
    process.stderr.write(`IMPORT_MODELS_FROM: ${dir} is not a folder\n`);
    process.exit(EXIT_CONFIG);
  }
  const r = await importModelFolder(dir, management, logger);
  log.info('model folder imported', { folder: dir, imported: r.imported.length, unchanged: r.unchanged, failed: r.failed.length });
}
if (auth.mode === 'disabled') log.warn('AUTHENTICATION IS OFF (AUTH_DISABLED=true): anyone who reaches this port can upload and delete models');
else if (auth.mode === 'closed-management') log.warn('no API_KEYS_FILE: predictions are open, the management API is closed');
const jobs = createJobService(config, { dataplane, management, logger });
await jobs.start();
let draining = false;

async function ready(): Promise<boolean> {
  if (draining) return false;
  try {
    const res = await upstream.request({ method: 'GET', path: '/health/ready', headers: {}, timeoutMs: 2000 });
    await res.body.dump();
    return true;
  } catch {
    return false;
  }
}

const oip = new OipService({ config, management, dataplane, metrics: new MetricsClient(config.metricsUrl), ready });
const app = createApp({ config, logger, management, dataplane, metrics, ready, auth, jobs, oip });
const server = http.createServer({ keepAliveTimeout: 65_000, headersTimeout: 66_000, requestTimeout: Math.max(config.requestTimeoutMs + 5_000, 66_000) }, app);
// Requests with Expect: 100-continue go to the same listener, which says continue when it wants the body.
server.on('checkContinue', app);
// Both ports' connections count against MAX_CONNECTIONS_PER_CLIENT.
const connections = new ClientConnections(config.maxConnectionsPerClient, new ClientAddresses(config.clientIpv6PrefixBits));
// The same service over gRPC, on its own port (GRPC_PORT=0: none).
const grpc = config.grpcPort === 0 ? undefined : new GrpcServer({ config, logger, auth, oip, dataplane, metrics, connections });
if (grpc) {
  try {
    const port = await grpc.listen(config.host, config.grpcPort);
    log.info('gRPC listening', { host: config.host, port, service: 'inference.GRPCInferenceService' });
  } catch (err) {
    process.stderr.write(
      `inferrer cannot listen for gRPC on ${config.host}:${config.grpcPort}: ${(err as Error).message}; set GRPC_PORT to move it (0 turns gRPC off)\n`,
    );
    process.exit(EXIT_CONFIG);
  }
}
exitOnListenError(server, 'inferrer');
// A connection's first request is dated from its accept when it was read right after it (deadline.ts).
server.on('connection', noteConnection);
capConnectionsPerClient(server, connections, logger);
const listening = await listenWithAcceptors(server, { port: config.port, host: config.host, acceptors: config.acceptors });
log.info('inferrer listening', {
  host: config.host,
  port: listening.port,
  acceptors: config.acceptors,
  modelDir: config.modelDir,
  loadBalancer: config.loadBalancerUrl,
});

async function shutdown(signal: string): Promise<void> {
  if (draining) return;
  draining = true;
  log.info('draining', { signal, timeoutMs: config.drainTimeoutMs });
  const timer = setTimeout(() => {
    log.warn('stopped with requests still open (DRAIN_TIMEOUT_MS)');
    process.exit(0);
  }, config.drainTimeoutMs);
  timer.unref();
  // No new connections; open ones close as soon as they are idle (keep-alive clients are not waited for).
  const closed = listening.close();
  server.closeIdleConnections();
  const idle = setInterval(() => server.closeIdleConnections(), 100);
  await jobs.stop();
  await Promise.all([closed, grpc?.close(config.drainTimeoutMs)]);
  clearInterval(idle);
  await upstream.close();
  log.info('stopped');
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
stopWithLauncher((reason) => void shutdown(reason));
