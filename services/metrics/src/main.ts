/** Metrics service entry point: config → collectors → HTTP; SIGTERM stops. */
import http from 'node:http';
import { createLogger, exitOnConfigError, exitOnListenError, stopWithLauncher } from '@inferrer/telemetry';
import { createApp } from './app.ts';
import { type MetricsConfig, loadConfig } from './config.ts';
import { createExporter } from './exporter.ts';
import { Monitor } from './monitor.ts';

let config: MetricsConfig;
try {
  config = loadConfig();
} catch (err) {
  exitOnConfigError(err);
}

const logger = createLogger({ service: 'metrics', level: config.logLevel, format: config.logFormat });
const log = logger.child({ module: 'main' });
const monitor = new Monitor(config, logger);
const registry = createExporter(monitor);
const server = http.createServer({ keepAliveTimeout: 65_000 }, createApp({ logger, monitor, registry }));

exitOnListenError(server, 'metrics');
server.listen(config.port, config.host, () => {
  log.info('metrics listening', {
    host: config.host,
    port: config.port,
    modelhosts: config.modelhosts,
    modelhostDns: config.modelhostDns.map((d) => `${d.name}:${d.port}`),
    nginxStatus: config.nginxStatusUrl ?? null,
    scrapeIntervalMs: config.scrapeIntervalMs,
    statsWindowS: config.statsWindowS,
  });
});
monitor.start();

let stopping = false;
function shutdown(signal: string): void {
  if (stopping) return;
  stopping = true;
  log.info('stopping', { signal });
  monitor.stop();
  const stopped = (): never => {
    log.info('stopped');
    process.exit(0);
  };
  server.close(stopped);
  server.closeAllConnections();
  setTimeout(stopped, 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
stopWithLauncher(shutdown);
