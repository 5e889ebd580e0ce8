/**
 * A cap on the connections one client address holds open (MAX_CONNECTIONS_PER_CLIENT). Without it, one
 * address could hold every descriptor the Inferrer may open: connections that send their headers a byte at a
 * time live until Node's headersTimeout (66 s), idle keep-alive ones for keepAliveTimeout (65 s), and
 * neither is a request the rate limits or the body guard ever see. At the process's limit of open files
 * every other client's connection is refused, and so is every connection to the load balancer.
 *
 * The gRPC port's connections count against the same cap (protocol/grpc/server.ts refuses its own).
 *
 * A connection over the cap is answered 429 TOO_MANY_CONNECTIONS (best effort: the client may not have
 * sent its request yet, and one that has may see the close first) and closed at once, before the HTTP
 * server reads anything from it, so no request on it runs.
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { InferrerError } from '@inferrer/core';
import { errorReply } from '@inferrer/http';
import type { Logger } from '@inferrer/telemetry';
import { ERROR_BODY } from '../protocol/errors.ts';
import type { ClientAddresses } from './client-address.ts';

/**
 * The connections each client (an address, or an IPv6 prefix: client-address.ts) holds open, HTTP and gRPC
 * together, against one cap (0: none).
 */
export class ClientConnections {
  readonly limit: number;
  readonly #clients: ClientAddresses;
  readonly #open = new Map<string, number>();

  constructor(limit: number, clients: ClientAddresses) {
    this.limit = limit;
    this.#clients = clients;
  }

  /** Counts `socket` against its address until it closes; false (not counted) when the address is at the cap. */
  admit(socket: Socket): boolean {
    if (this.limit === 0) return true;
    const client = this.#clients.of(socket.remoteAddress);
    const n = this.#open.get(client) ?? 0;
    if (n >= this.limit) return false;
    this.#open.set(client, n + 1);
    socket.once('close', () => {
      const left = (this.#open.get(client) ?? 1) - 1;
      if (left === 0) this.#open.delete(client);
      else this.#open.set(client, left);
    });
    return true;
  }
}

/** The error a connection over the cap is refused with (HTTP and gRPC). */
export function tooManyConnections(limit: number): InferrerError {
  return new InferrerError(
    'TOO_MANY_CONNECTIONS',
    `this address already has ${limit} connections open (MAX_CONNECTIONS_PER_CLIENT); reuse them or close some`,
    { limit },
    { retryAfter: 1 },
  );
}

/** Caps each client address at `connections.limit` open connections (0: no cap). */
export function capConnectionsPerClient(server: Server, connections: ClientConnections, logger: Logger): void {
  if (connections.limit === 0) return;
  const log = logger.child({ module: 'connections' });
  // Before the HTTP server's own listener: a refused socket is destroyed before a parser is given it.
  server.prependListener('connection', (socket: Socket) => {
    if (!connections.admit(socket)) refuse(socket, connections.limit, log);
  });
}

function refuse(socket: Socket, limit: number, log: Logger): void {
  const reply = errorReply(tooManyConnections(limit), ERROR_BODY.plain, log, { reqId: '-' });
  const head = [`HTTP/1.1 ${reply.status} Too Many Requests`, 'connection: close', `content-length: ${Buffer.byteLength(reply.body)}`];
  for (const [k, v] of Object.entries(reply.headers)) if (k !== 'x-request-id') head.push(`${k}: ${v}`);
  socket.on('error', () => undefined);
  // Written at once on a fresh socket (the kernel takes it whole), then closed before anything is read.
  socket.write(`${head.join('\r\n')}\r\n\r\n${reply.body}`);
  socket.destroy();
}
