/**
 * How a service ends when it cannot run as configured: it says why on standard error and exits with
 * EXIT_CONFIG (78, sysexits' EX_CONFIG). A supervisor (the launcher) does not restart such a process: a
 * restart cannot help until a setting changes.
 */
import type { Server } from 'node:net';

export const EXIT_CONFIG = 78;

/**
 * A server that cannot listen (its port taken by another program, a port it may not use, an address
 * this machine does not have) prints which port and which setting moves it, and exits EXIT_CONFIG, in
 * place of an unhandled 'error' with a stack trace.
 */
export function exitOnListenError(server: Server, service: string, setting = 'PORT'): void {
  server.once('error', (err: NodeJS.ErrnoException & { address?: string; port?: number }) => {
    const where = `${err.address ?? '?'}:${err.port ?? '?'}`;
    const why: Record<string, string> = {
      EADDRINUSE: `port ${err.port} on ${err.address} is taken by another program`,
      EACCES: `this user may not listen on ${where}`,
      EADDRNOTAVAIL: `${err.address} is not an address of this machine`,
    };
    const reason = err.code === undefined ? undefined : why[err.code];
    if (reason === undefined) throw err;
    process.stderr.write(`${service} cannot listen on ${where}: ${reason} (${err.code}); set ${setting} to move it\n`);
    process.exit(EXIT_CONFIG);
  });
}
