/** The built-in balancer as its own process (the launcher starts it when nginx is not on the PATH). */
import { EXIT_CONFIG, exitOnListenError, stopWithLauncher } from '@inferrer/telemetry';
import { type Balance, createBalancer } from './balancer.ts';

const upstreams = (process.env.UPSTREAMS ?? '').split(',').filter(Boolean);
const port = Number(process.env.PORT ?? 9100);
const balance = (process.env.BALANCE ?? 'least_conn') as Balance;
if (!['least_conn', 'placement', 'hash'].includes(balance)) {
  process.stderr.write(`BALANCE must be least_conn, placement or hash (got '${balance}')\n`);
  process.exit(EXIT_CONFIG);
}
const say = (msg: string, fields: Record<string, unknown> = {}): void =>
  void process.stdout.write(`${JSON.stringify({ level: 'info', time: new Date().toISOString(), service: 'balancer', msg, ...fields })}\n`);
if (upstreams.length === 0) {
  process.stderr.write('UPSTREAMS must list the modelhosts (host:port,host:port)\n');
  process.exit(EXIT_CONFIG);
}
const server = createBalancer({
  upstreams,
  maxBodyBytes: Number(process.env.MAX_BODY_BYTES ?? 64 * 1024 * 1024),
  timeoutMs: Number(process.env.REQUEST_TIMEOUT_MS ?? 30_000),
  balance,
});
exitOnListenError(server, 'balancer');
server.listen(port, process.env.HOST ?? '127.0.0.1', () => say('built-in balancer listening', { port, upstreams, balance }));

let stopping = false;
function stop(reason: string): void {
  if (stopping) return;
  stopping = true;
  say('stopping', { signal: reason });
  server.close(() => {
    say('stopped');
    process.exit(0);
  });
  server.closeAllConnections();
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
stopWithLauncher(stop);
