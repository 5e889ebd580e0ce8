/**
 * The built-in load balancer, for machines without nginx: least connections over the modelhosts with
 * keep-alive, and a retry on the next worker when one refuses the connection or answers 502/503
 * (inference is side-effect free). Bodies are buffered up to a limit so they can be replayed, as nginx does.
 *
 * With `balance: 'placement'` (or `'hash'`), a request is placed as nginx's `hash … consistent` would:
 * by its X-Inferrer-Placement header (the model's replica key the Inferrer chose; `hash`: the model name
 * in the path) on a consistent-hash ring, a retry going to the next worker on the ring; requests without
 * a key go by least connections.
 */
import http from 'node:http';
import { PassThrough } from 'node:stream';
import httpProxy from 'http-proxy';
import { HashRing } from './hash-ring.ts';

export type Balance = 'least_conn' | 'hash' | 'placement';

export interface BalancerOptions {
  upstreams: string[];
  maxBodyBytes: number;
  timeoutMs: number;
  /** least_conn (default), placement (X-Inferrer-Placement) or hash (the model name). */
  balance?: Balance;
}

/** The model name in a modelhost path, for `hash` (as nginx's map $uri $inferrer_model). */
const MODEL_IN_PATH = /^\/v[12]\/models\/([^/?]+)/;

interface Target {
  url: string;
  active: number;
  failedUntil: number;
}

const MAX_TRIES = 3;

export function createBalancer(opts: BalancerOptions): http.Server {
  const targets: Target[] = opts.upstreams.map((u) => ({ url: u.startsWith('http') ? u : `http://${u}`, active: 0, failedUntil: 0 }));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 512, maxFreeSockets: 128 });
  const proxy = httpProxy.createProxyServer({ agent, xfwd: false, proxyTimeout: opts.timeoutMs, selfHandleResponse: true });
  /** What to do with the answer of the attempt in flight for each client request. */
  const onAnswer = new WeakMap<http.IncomingMessage, (res: http.IncomingMessage) => void>();
  proxy.on('proxyRes', (proxyRes, req) => onAnswer.get(req)?.(proxyRes));
  // A client that goes away before the answer takes the upstream request with it (as nginx does with
  // proxy_ignore_client_abort off): the modelhost then drops the request if it is still queued.
  proxy.on('proxyReq', (proxyReq, _req, res) => {
    res.once('close', () => {
      if (!res.writableFinished) proxyReq.destroy();
    });
  });

  const ring = opts.balance === 'placement' || opts.balance === 'hash' ? new HashRing(targets, (t) => t.url) : undefined;
  const keyOf = (req: http.IncomingMessage): string | undefined => {
    if (opts.balance === 'placement') {
      const h = req.headers['x-inferrer-placement'];
      return typeof h === 'string' && h !== '' ? h : undefined;
    }
    return opts.balance === 'hash' ? MODEL_IN_PATH.exec(req.url ?? '')?.[1] : undefined;
  };

  let turn = 0;
  function pick(exclude: Set<Target>, key: string | undefined): Target | undefined {
    const now = Date.now();
    if (ring && key !== undefined) {
      const placed = ring.pick(key, (t) => !exclude.has(t) && t.failedUntil <= now) ?? ring.pick(key, (t) => !exclude.has(t));
      if (placed) return placed;
    }
    let best: Target | undefined;
    // Least connections; ties go round-robin (start the scan one further each time), as nginx does.
    turn = (turn + 1) % targets.length;
    for (let k = 0; k < targets.length; k++) {
      const t = targets[(turn + k) % targets.length]!;
      if (exclude.has(t) || t.failedUntil > now) continue;
      if (!best || t.active < best.active) best = t;
    }
    // Every worker marked failed: try one anyway rather than refuse.
    if (!best) for (const t of targets) if (!exclude.has(t) && (!best || t.active < best.active)) best = t;
    return best;
  }

  return http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= opts.maxBodyBytes) chunks.push(c);
    });
    req.on('end', () => {
      if (size > opts.maxBodyBytes) {
        res.writeHead(413, { 'content-type': 'text/plain' }).end('body too large');
        return;
      }
      attempt(Buffer.concat(chunks, size), new Set());
    });

    const key = keyOf(req);
    function attempt(body: Buffer, tried: Set<Target>): void {
      const target = tried.size < MAX_TRIES ? pick(tried, key) : undefined;
      if (!target) {
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' }).end('no modelhost available');
        return;
      }
      tried.add(target);
      target.active++;
      let released = false;
      const release = (): void => {
        if (!released) {
          released = true;
          target.active--;
        }
      };
      onAnswer.set(req, (proxyRes) => {
        const retryable = proxyRes.statusCode === 502 || proxyRes.statusCode === 503;
        if (retryable && tried.size < Math.min(targets.length, MAX_TRIES)) {
          proxyRes.resume();
          release();
          attempt(body, tried);
          return;
        }
        res.writeHead(proxyRes.statusCode ?? 502, proxyRes.headers);
        proxyRes.pipe(res);
        proxyRes.on('end', release);
        proxyRes.on('error', release);
        res.on('close', release);
      });
      const buffer = new PassThrough();
      buffer.end(body);
      proxy.web(req, res, { target: target.url, buffer }, (err) => {
        release();
        target.failedUntil = Date.now() + 2000;
        if (!res.headersSent) attempt(body, tried);
        else res.destroy(err);
      });
    }
  });
}
