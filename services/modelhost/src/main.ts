/** Modelhost entry point: config → store, registry, watcher → HTTP → SIGTERM drains. */
import http from 'node:http';
import { ModelStore } from '@inferrer/model-store';
import { createLogger, exitOnConfigError, exitOnListenError, stopWithLauncher } from '@inferrer/telemetry';
import { createApp } from './app.ts';
import { loadConfig, type ModelhostConfig } from './config.ts';
import { DataPlane } from './dataplane.ts';
import { DriftMonitor } from './drift.ts';
import { ModelhostMetrics } from './metrics.ts';
import { ModelRegistry } from './registry.ts';
import { StoreWatcher } from './watcher.ts';

let config: ModelhostConfig;
try {
  config = loadConfig();
} catch (err) {
  exitOnConfigError(err);
}

const logger = createLogger({ service: 'modelhost', level: config.logLevel, format: config.logFormat }).child({ modelhost: config.id });
const log = logger.child({ module: 'main' });
const store = new ModelStore(config.modelDir);
let registry: ModelRegistry | undefined;
const metrics = new ModelhostMetrics(() => registry);
registry = new ModelRegistry(store, config, logger, metrics.hooks());
const watcher = new StoreWatcher(store, registry, logger, config.watchIntervalMs);
const drift = config.driftEnabled ? new DriftMonitor(registry, config.id, logger) : undefined;
if (drift) drift.onRows = (model, version, rows) => metrics.driftRows.inc({ model, version: String(version) }, rows);
const dataplane = new DataPlane(registry, metrics, { maxPixels: config.maxImagePixels }, drift);

let ready = false;
let draining = false;
const server = http.createServer(
  { keepAliveTimeout: 65_000, headersTimeout: 66_000, requestTimeout: Math.max(config.requestTimeoutMs + 5_000, 66_000) },
  createApp({ config, logger, dataplane, registry, metrics, drift, ready: () => ready && !draining, draining: () => draining }),
);

exitOnListenError(server, 'modelhost');
server.listen(config.port, config.host, () => {
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.port;
  log.info('modelhost listening', { host: config.host, port, modelDir: config.modelDir, instances: config.instances, maxBatchSize: config.maxBatchSize, maxQueueDelayMs: config.maxQueueDelayMs });
});

await watcher.start();
if (config.preload) await registry.preload();
ready = true;
log.info('modelhost ready', { loaded: registry.entries().map((e) => `${e.name}@${e.version}`) });

async function shutdown(signal: string): Promise<void> {
  if (draining) return;
  draining = true;
  log.info('draining', { signal, timeoutMs: config.drainTimeoutMs });
  watcher.stop();
  const deadline = Date.now() + config.drainTimeoutMs;
  // No new connections; requests on open ones are still served (with Connection: close) until each closes.
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const idle = setInterval(() => server.closeIdleConnections(), 100);
  await Promise.race([closed, new Promise((r) => setTimeout(r, config.drainTimeoutMs))]);
  clearInterval(idle);
  await registry!.close(Math.max(0, deadline - Date.now()));
  await dataplane.close();
  log.info('stopped');
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
stopWithLauncher((reason) => void shutdown(reason));
