/** Modelhost entry point: config → store, registry, watcher → HTTP → SIGTERM drains. */
import http from 'node:http';
import { listenWithAcceptors } from '@inferrer/http';
import { ModelStore } from '@inferrer/model-store';
import { SessionThreads, longestRunMs } from '@inferrer/runtime';
import { createLogger, exitOnConfigError, exitOnListenError, stopWithLauncher } from '@inferrer/telemetry';
import { createApp } from './app.ts';
import { loadConfig, type ModelhostConfig } from './config.ts';
import { DataPlane } from './dataplane.ts';
import { DriftMonitor } from './drift.ts';
import { defaultBudget, memoryLimit } from './memory-budget.ts';
import { defaultProcessMemory, limitProcessMemory, memoryRoom } from './process-memory.ts';
import { ModelhostMetrics } from './metrics.ts';
import { ModelRegistry } from './registry.ts';
import { ResponseCache } from './response-cache.ts';
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
const limit = memoryLimit();
// Before any runtime thread starts: a run that would take more than this fails instead of the worker.
const processMemoryBytes = config.processMemoryBytes ?? defaultProcessMemory(limit.bytes);
const unlimited = processMemoryBytes > 0 ? limitProcessMemory(processMemoryBytes) : undefined;
if (unlimited) log.warn('memory ceiling not set: a run that needs more than the machine has can end this worker', { processMemoryBytes, reason: unlimited });
// The shared runtime threads start (and pay the runtime's one-time costs) before anything is measured.
const threads = config.sessionThreads > 0 ? new SessionThreads(config.sessionThreads) : undefined;
if (threads) {
  const warming = performance.now();
  await threads.warm();
  log.info('runtime threads started', { threads: threads.size, ms: Math.round(performance.now() - warming) });
}
const baselineBytes = process.memoryUsage.rss();
const budgetBytes = config.modelMemoryBytes ?? defaultBudget(limit.bytes, baselineBytes);
let registry: ModelRegistry | undefined;
const metrics = new ModelhostMetrics(() => registry);
const cache = config.responseCacheBytes > 0 ? new ResponseCache(config.responseCacheBytes) : undefined;
if (cache) metrics.watchCache(cache);
const hooks = metrics.hooks();
const onUnload: typeof hooks.onUnload = (model, version, reason) => {
  hooks.onUnload?.(model, version, reason);
  // A deleted version's answers can never be asked for again (its number may come back as another file).
  if (reason === 'deleted') cache?.purge(model, version);
};
// A run whose outputs would not fit twice under the ceiling is refused before it runs (the copy of an
// output into JavaScript that does not fit ends the process, not the run).
const room = processMemoryBytes > 0 && !unlimited ? memoryRoom(processMemoryBytes) : undefined;
registry = new ModelRegistry(store, config, logger, { ...hooks, onUnload }, { budgetBytes, threads, memoryRoom: room });
const watcher = new StoreWatcher(store, registry, logger, config.watchIntervalMs, config.watchFsEvents);
const drift = config.driftEnabled ? new DriftMonitor(registry, config.id, logger) : undefined;
if (drift) drift.onRows = (model, version, rows) => metrics.driftRows.inc({ model, version: String(version) }, rows);
const dataplane = new DataPlane(registry, metrics, { maxPixels: config.maxImagePixels }, drift, undefined, cache);

let ready = false;
let draining = false;
const server = http.createServer(
  { keepAliveTimeout: 65_000, headersTimeout: 66_000, requestTimeout: Math.max(config.requestTimeoutMs + 5_000, 66_000) },
  createApp({
    config,
    logger,
    dataplane,
    registry,
    metrics,
    drift,
    ready: () => ready && !draining,
    draining: () => draining,
    catchUp: (generation) => watcher.catchUp(generation),
  }),
);

exitOnListenError(server, 'modelhost');
const listening = await listenWithAcceptors(server, { port: config.port, host: config.host, acceptors: config.acceptors });
log.info('modelhost listening', {
  host: config.host,
  port: listening.port,
  acceptors: config.acceptors,
  modelDir: config.modelDir,
  instances: config.instances,
  maxBatchSize: config.maxBatchSize,
  maxQueueDelayMs: config.maxQueueDelayMs,
  sessionThreads: config.sessionThreads,
  modelMemoryMb: Math.round(budgetBytes / 2 ** 20),
  processMemoryMb: unlimited || processMemoryBytes === 0 ? 'none' : Math.round(processMemoryBytes / 2 ** 20),
  budgetFrom:
    config.modelMemoryBytes !== undefined
      ? 'MODEL_MEMORY_BYTES'
      : `70% of the ${limit.source} memory limit (${Math.round(limit.bytes / 2 ** 20)} MB) less this worker's ${Math.round(baselineBytes / 2 ** 20)} MB`,
});

await watcher.start();
if (config.preload) await registry.preload();
ready = true;
log.info('modelhost ready', { loaded: registry.entries().map((e) => `${e.name}@${e.version}`) });

async function shutdown(signal: string, exitCode = 0): Promise<void> {
  if (draining) return;
  draining = true;
  log.info('draining', { signal, timeoutMs: config.drainTimeoutMs });
  watcher.stop();
  const deadline = Date.now() + config.drainTimeoutMs;
  // No new connections; requests on open ones are still served (with Connection: close) until each closes.
  const closed = listening.close();
  server.closeIdleConnections();
  const idle = setInterval(() => server.closeIdleConnections(), 100);
  await Promise.race([closed, new Promise((r) => setTimeout(r, config.drainTimeoutMs))]);
  clearInterval(idle);
  await registry!.close(Math.max(0, deadline - Date.now()));
  await dataplane.close();
  log.info('stopped');
  // A run still in native code holds its runtime thread, and process.exit waits for every thread to stop.
  if (longestRunMs() > 0) setTimeout(() => process.kill(process.pid, 'SIGKILL'), 100);
  else process.exit(exitCode);
}
// A run that never ends cannot be stopped, only its process: drain, then exit non-zero to be started again.
if (config.runTimeoutMs > 0) {
  setInterval(() => {
    const ms = longestRunMs();
    if (ms <= config.runTimeoutMs || draining) return;
    log.error('a run has not returned: ONNX Runtime cannot stop it, so this worker restarts', {
      runMs: Math.round(ms),
      limit: 'RUN_TIMEOUT_MS',
      limitMs: config.runTimeoutMs,
    });
    void shutdown('RUN_TIMEOUT_MS', 1);
  }, 1000).unref();
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
stopWithLauncher((reason) => void shutdown(reason));
