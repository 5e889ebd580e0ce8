/**
 * Listening through several descriptors of one socket, so that a busy server still takes new connections
 * from the kernel promptly.
 *
 * Node 20's libuv accepts one connection per turn of the event loop and listening descriptor (libuv
 * #3696). A turn reads everything its readable sockets hold, up to 2 MB each, so while hundreds of clients
 * send large bodies a turn lasts tens to hundreds of milliseconds and new connections queue in the
 * kernel, where no deadline can see them: with 512 clients opening at once with 600 KB bodies, a plain
 * Node server took 4 s to accept them all and the Inferrer up to 9 s (bench part `deadline`), so
 * requests answered by the Inferrer's deadline reached their clients seconds after theirs. The kernel
 * reports the socket readable on every descriptor that refers to it, and each is accepted from once per
 * turn: N descriptors accept N connections per turn.
 *
 * Node 20 cannot duplicate a descriptor, but handing a listening server to another process over IPC
 * does (SCM_RIGHTS). A short-lived helper process binds the address and hands the server back N times,
 * then stops listening and exits. The first copy is the server's own listening handle (address(),
 * 'listening', close() work as usual); the others pass their connections to it.
 */
import { spawn } from 'node:child_process';
import type { Server } from 'node:http';
import type { Server as NetServer, Socket } from 'node:net';

export interface ListenOptions {
  port: number;
  host: string;
  /** Descriptors to accept from; 1 listens plainly. */
  acceptors: number;
  /** The kernel's queue of connections not yet accepted (capped by net.core.somaxconn). */
  backlog?: number;
  /**
   * How long the helper has to bind and hand the socket over, ms (default 30 s): past it the listen fails,
   * so a stuck helper ends in an error the process exits on, not a server that never listens.
   */
  handoverTimeoutMs?: number;
}

export interface Listening {
  /** The port listened on (the one chosen when `port` was 0). */
  port: number;
  /** Stops accepting on every descriptor; resolves when the connections each accepted are closed. */
  close(): Promise<void>;
}

/**
 * The helper: binds, hands its server to the parent `n` times, stops listening, and exits when the parent
 * lets go. While its own copy listens it may itself accept a connection (the kernel wakes every copy): such
 * a connection is handed to the parent unread, never dropped. 'done' comes after every handle (IPC keeps
 * the order of messages that carry handles).
 */
const HELPER = `
const net = require('node:net');
const { port, host, n, backlog } = JSON.parse(process.env.INFERRER_ACCEPTORS);
const server = net.createServer({ pauseOnConnect: true }, (socket) => process.send({ socket: true }, socket));
process.on('disconnect', () => process.exit(0));
server.once('error', (e) => process.send({ error: { code: e.code, message: e.message, address: e.address, port: e.port } }));
server.listen({ port, host, backlog }, () => {
  let sent = 0;
  for (let i = 0; i < n; i++)
    process.send({ port: server.address().port }, server, () => {
      if (++sent < n) return;
      server.close();
      process.send({ done: true });
    });
});
`;

/** Default for ListenOptions.handoverTimeoutMs: the helper starts Node and binds, well under a second when idle. */
const HANDOVER_TIMEOUT_MS = 30_000;

interface HelperMessage {
  port?: number;
  socket?: boolean;
  done?: boolean;
  error?: { code?: string; message: string; address?: string; port?: number };
}

/**
 * Listens as `server.listen(port, host)` does, through `acceptors` descriptors. A failure to bind is
 * emitted on `server` as 'error' with the usual code, address and port (EADDRINUSE, EACCES, …), as a
 * plain listen would, and rejects.
 */
export function listenWithAcceptors(server: Server, opts: ListenOptions): Promise<Listening> {
  const backlog = opts.backlog ?? 511;
  if (opts.acceptors <= 1) {
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: opts.port, host: opts.host, backlog }, () => {
        server.off('error', reject);
        resolve({ port: portOf(server, opts.port), close: () => closed(server) });
      });
    });
  }
  return new Promise((resolve, reject) => {
    const helper = spawn(process.execPath, ['-e', HELPER], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      env: { PATH: process.env.PATH ?? '', INFERRER_ACCEPTORS: JSON.stringify({ port: opts.port, host: opts.host, n: opts.acceptors, backlog }) },
    });
    const extra: NetServer[] = [];
    let got = 0;
    let settled = false;
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      helper.kill('SIGKILL');
      for (const s of extra) s.close();
      if (server.listening) server.close();
      if (server.listenerCount('error') > 0) server.emit('error', err);
      reject(err);
    };
    const handover = opts.handoverTimeoutMs ?? HANDOVER_TIMEOUT_MS;
    const timer = setTimeout(
      () => fail(new Error(`the process that binds ${opts.host}:${opts.port} did not hand over the socket within ${handover} ms`)),
      handover,
    );
    helper.once('error', fail);
    helper.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (!settled) fail(new Error(`the process that binds ${opts.host}:${opts.port} exited (${signal ?? code}) before handing over the socket`));
    });
    helper.on('message', (msg: HelperMessage, handle?: NetServer | Socket) => {
      if (msg.error) {
        fail(Object.assign(new Error(msg.error.message), { code: msg.error.code, address: msg.error.address, port: msg.error.port }));
        return;
      }
      if (settled) {
        // A copy or a connection that came after the listen failed (a late hand-over): nobody serves it.
        if (msg.socket) (handle as Socket | undefined)?.destroy();
        else (handle as NetServer | undefined)?.close();
        return;
      }
      if (msg.socket && handle) {
        // A connection the helper took: served here like any other.
        server.emit('connection', handle as Socket);
        return;
      }
      if (msg.port !== undefined && handle) {
        const copy = handle as NetServer;
        if (++got === 1) server.listen(copy);
        else {
          copy.on('connection', (socket) => server.emit('connection', socket));
          extra.push(copy);
        }
        return;
      }
      if (!msg.done) return;
      settled = true;
      clearTimeout(timer);
      helper.disconnect();
      const ready = (): void =>
        resolve({
          port: portOf(server, opts.port),
          close: () => Promise.all([closed(server), ...extra.map(closed)]).then(() => undefined),
        });
      if (server.listening) ready();
      else server.once('listening', ready);
    });
  });
}

function portOf(server: Server, fallback: number): number {
  const addr = server.address();
  return typeof addr === 'object' && addr ? addr.port : fallback;
}

/** Stops accepting and resolves once the server's own connections are closed (already closed: at once). */
function closed(server: Server | NetServer): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
