/** The built-in balancer as its own process (the launcher starts it when nginx is not on the PATH). */
import { stopWithLauncher } from '@inferrer/telemetry';
import { createBalancer } from './balancer.ts';

const upstreams = (process.env.UPSTREAMS ?? '').split(',').filter(Boolean);
const port = Number(process.env.PORT ?? 9100);
if (upstreams.length === 0) {
  process.stderr.write('UPSTREAMS must list the modelhosts (host:port,host:port)\n');
  process.exit(2);
}
const server = createBalancer({
  upstreams,
  maxBodyBytes: Number(process.env.MAX_BODY_BYTES ?? 64 * 1024 * 1024),
  timeoutMs: Number(process.env.REQUEST_TIMEOUT_MS ?? 30_000),
});
server.listen(port, process.env.HOST ?? '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ level: 'info', service: 'balancer', msg: 'built-in least-connections balancer listening', port, upstreams })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
stopWithLauncher(() => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
