/**
 * Clients that give up (bench/lib/cancel.ts forks this): each of `clients` connections posts the body, and
 * if no answer has come `giveUpMs` later it closes its connection (as a browser tab closed, or a client
 * timeout) and at once sends the next request on a new one. Runs for `seconds`, then sends back what
 * happened: requests sent, answered in time, given up.
 */
import http from 'node:http';
import type { QuitterResult, QuitterSpec } from './lib/cancel.ts';

function run(spec: QuitterSpec): Promise<QuitterResult> {
  const u = new URL(spec.url);
  const body = Buffer.from(spec.body, 'base64');
  const r: QuitterResult = { sent: 0, answered: 0, gaveUp: 0, errors: 0 };
  const end = performance.now() + spec.seconds * 1000;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      r.sent++;
      let quit = false;
      const req = http.request({
        host: u.hostname,
        port: u.port,
        method: 'POST',
        path: u.pathname + u.search,
        agent: false,
        headers: { ...spec.headers, 'content-length': body.length },
      });
      const timer = setTimeout(() => {
        quit = true;
        r.gaveUp++;
        req.destroy();
        resolve();
      }, spec.giveUpMs);
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => {
          if (quit) return;
          clearTimeout(timer);
          if (res.statusCode !== undefined && res.statusCode < 300) r.answered++;
          else r.errors++;
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => {
        if (quit) return;
        clearTimeout(timer);
        r.errors++;
        resolve();
      });
      req.end(body);
    });
  return Promise.all(
    Array.from({ length: spec.clients }, async () => {
      while (performance.now() < end) await one();
    }),
  ).then(() => r);
}

// The bench went away: stop rather than keep loading a server nobody measures.
process.on('disconnect', () => process.exit(1));

process.once('message', (spec: QuitterSpec) => {
  run(spec).then(
    (result) => process.send!({ type: 'result', result }, () => process.exit(0)),
    (err: unknown) => process.send!({ type: 'error', error: String((err as Error)?.stack ?? err) }, () => process.exit(1)),
  );
});
