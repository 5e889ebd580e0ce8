/**
 * The gRPC port's own listener, so that its connections count against MAX_CONNECTIONS_PER_CLIENT with the
 * HTTP port's (http/connection-guard.ts): grpc-js's bindAsync gives no say over the connections it
 * accepts, so the port is listened on here and each connection admitted is handed to grpc-js
 * (Server.createConnectionInjector, its public API for connections it did not accept).
 *
 * A connection over the cap is never given to grpc-js. It goes to a bare HTTP/2 server that answers its
 * first call RESOURCE_EXHAUSTED (TOO_MANY_CONNECTIONS, with the message and a retry-after, as a gRPC client
 * shows it) and closes it (GOAWAY); one that sends no call is closed after REFUSE_GRACE_MS. At most
 * MAX_REFUSING of them wait at once; beyond that a refused connection is closed at once, unanswered.
 */
import http2 from 'node:http2';
import net, { type Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '@inferrer/telemetry';
import { type ClientConnections, tooManyConnections } from '../../http/connection-guard.ts';
import { grpcStatusOf } from '../errors.ts';

const REFUSE_GRACE_MS = 1000;
const MAX_REFUSING = 64;

export interface GrpcListener {
  port: number;
  /** Stops accepting connections; those open are grpc-js's to close (net's close callback would wait for them). */
  close(): void;
}

/** Listens on host:port and hands grpc-js the connections `connections` admits. */
export function listenGrpc(server: grpc.Server, host: string, port: number, connections: ClientConnections, logger: Logger): Promise<GrpcListener> {
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const log = logger.child({ module: 'connections' });
  const refusals = new Refusals(connections.limit, log);
  const listener = net.createServer((socket) => {
    if (connections.admit(socket)) injector.injectConnection(socket);
    else refusals.refuse(socket);
  });
  return new Promise((resolve, reject) => {
    listener.once('error', reject);
    listener.listen({ host, port }, () => {
      listener.off('error', reject);
      // An accept that fails (out of descriptors) is that connection's loss, not the process's.
      listener.on('error', (err: NodeJS.ErrnoException) => log.warn('gRPC accept failed', { err: { code: err.code, message: err.message } }));
      resolve({
        port: (listener.address() as net.AddressInfo).port,
        close: () => {
          listener.close();
        },
      });
    });
  });
}

class Refusals {
  readonly #h2 = http2.createServer({ settings: { maxConcurrentStreams: 1 } });
  readonly #limit: number;
  readonly #log: Logger;
  #waiting = 0;

  constructor(limit: number, log: Logger) {
    this.#limit = limit;
    this.#log = log;
    const err = tooManyConnections(limit);
    const answer = {
      ':status': 200,
      'content-type': 'application/grpc',
      'grpc-status': String(grpcStatusOf(err)),
      'grpc-message': encodeURIComponent(err.message),
      'inferrer-error-code': err.code,
      'retry-after': String(err.retryAfter ?? 1),
    };
    this.#h2.on('session', (session) => {
      session.on('error', () => undefined);
      setTimeout(() => session.destroy(), REFUSE_GRACE_MS).unref();
    });
    this.#h2.on('stream', (stream) => {
      stream.on('error', () => undefined);
      stream.respond(answer, { endStream: true });
      stream.session?.close();
    });
  }

  refuse(socket: Socket): void {
    socket.on('error', () => undefined);
    this.#log.info('gRPC connection refused', {
      client: socket.remoteAddress,
      err: { code: 'TOO_MANY_CONNECTIONS', message: `the address already has ${this.#limit} connections open (MAX_CONNECTIONS_PER_CLIENT)` },
    });
    if (this.#waiting >= MAX_REFUSING) {
      socket.destroy();
      return;
    }
    this.#waiting++;
    socket.once('close', () => this.#waiting--);
    this.#h2.emit('connection', socket);
  }
}
