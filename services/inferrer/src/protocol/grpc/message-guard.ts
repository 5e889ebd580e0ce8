/**
 * Slow request messages can only hurt their sender, as slow HTTP bodies (http/body-guard.ts): grpc-js keeps
 * a call's request message until it has arrived in full and the client has ended its stream, so a call
 * that never ends (or trickles its message) would otherwise hold its bytes, up to MAX_BODY_BYTES, for ever.
 * HTTP/2 does not say which call the bytes read from a connection belong to, and the calls of one
 * connection share it, so the HTTP rules are counted on the connection: a call's request must be complete
 * within BODY_TIMEOUT_MS plus one second per BODY_MIN_BYTES_PER_S bytes its connection received since the
 * call began, or the call is cut with DEADLINE_EXCEEDED (BODY_TOO_SLOW). A request still arriving after a
 * second while its connection has brought nothing for a second (not counting the time the Inferrer's own
 * event loop was too busy to read it) is stalled; a client address may have MAX_PENDING_BODIES_PER_CLIENT
 * stalled calls, and the next one is cut with RESOURCE_EXHAUSTED (TOO_MANY_BODIES). A burst of calls on a
 * busy connection is not stalled, only queued behind its own bytes. Calls whose request has arrived are not
 * watched.
 *
 * A call that ends while its request is still arriving (cut here, past its gRPC deadline, or refused by
 * grpc-js) has its stream reset (RST_STREAM NO_ERROR, which RFC 9113 §8.1 lets a server send once its
 * response is complete): grpc-js answers such a call but keeps the stream, and what it had buffered of the
 * message, until the client ends its side, which a client that never ends it never does.
 */
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { InferrerError } from '@inferrer/core';
import type { Logger } from '@inferrer/telemetry';
import type { ClientAddresses } from '../../http/client-address.ts';
import { type Arrival, ArrivalWatch, type BodyLimits, PENDING_AFTER_MS } from '../../http/arrival-watch.ts';
import { grpcStatusOf } from '../errors.ts';
import type { AnswerGuard, AnswerStream } from './answer-guard.ts';

/** The part of a call's connection watched here. */
interface Connection {
  bytesRead: number;
}

/** A call whose request is still arriving. */
interface Arriving extends Arrival {
  call: grpc.ServerInterceptingCallInterface;
  method: string;
  connection: Connection | undefined;
  /** The connection's bytes read when the call began, when last seen, and when that last changed. */
  baseline: number;
  seen: number;
  progressed: number;
}

export class MessageGuard {
  readonly #log: Logger;
  readonly #watch: ArrivalWatch<Arriving>;
  readonly #answers: AnswerGuard;

  /** `answers` watches each call's answer once written (the interceptor is the one that sees a call's stream). */
  readonly #clients: ClientAddresses;

  constructor(limits: BodyLimits, clients: ClientAddresses, logger: Logger, answers: AnswerGuard) {
    this.#clients = clients;
    this.#log = logger.child({ module: 'bodies' });
    this.#answers = answers;
    this.#watch = new ArrivalWatch(limits, (a, now, lag) => this.#check(a, now, lag));
  }

  /** The server interceptor: watches each call from its headers until its request has arrived or it ends. */
  readonly interceptor: grpc.ServerInterceptor = (method, call) => {
    const stream = streamOf(call);
    const connection = stream?.session?.socket;
    const read = connection?.bytesRead ?? 0;
    const now = performance.now();
    const a: Arriving = {
      call,
      method: method.path,
      client: this.#clients.of(peerAddress(call.getPeer())),
      connection,
      started: now,
      baseline: read,
      seen: read,
      progressed: now,
      pending: false,
    };
    this.#watch.add(a);
    return new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveHalfClose: (halfClosed) => {
            this.#watch.forget(a);
            halfClosed();
          },
          // grpc-js tells every call's end here, just after its status is sent.
          onCancel: () => {
            if (this.#watch.forget(a)) reset(call);
          },
        }),
      // The answer is in the stream's buffer once passed on (grpc-js writes it at once).
      sendMessage: (message, next) => {
        next(message);
        if (typeof stream?.close === 'function' && typeof stream.writableLength === 'number') this.#answers.watch(stream as AnswerStream, a.method, a.client);
      },
    });
  };

  #check(a: Arriving, now: number, lag: number): void {
    const { timeoutMs, minBytesPerSecond, maxPendingPerClient } = this.#watch.limits;
    const elapsed = now - a.started;
    const read = a.connection?.bytesRead ?? a.seen;
    if (read !== a.seen) {
      a.seen = read;
      a.progressed = now;
    }
    if (!a.pending && elapsed - lag >= PENDING_AFTER_MS && now - a.progressed - lag >= PENDING_AFTER_MS && this.#watch.stall(a)) {
      this.#cut(
        a,
        new InferrerError(
          'TOO_MANY_BODIES',
          `this address already has ${maxPendingPerClient} gRPC requests stalled while arriving (MAX_PENDING_BODIES_PER_CLIENT)`,
          { limit: maxPendingPerClient },
          { retryAfter: 1 },
        ),
      );
      return;
    }
    const received = Math.max(0, read - a.baseline);
    if (this.#watch.tooSlow(elapsed, received)) {
      this.#cut(
        a,
        new InferrerError(
          'BODY_TOO_SLOW',
          `the request message and the end of the call's stream did not arrive in time (its connection brought ${received} bytes in ${Math.round(elapsed)} ms; at least ${minBytesPerSecond} bytes/s after the first ${timeoutMs} ms)`,
          { received, ms: Math.round(elapsed), minBytesPerSecond },
        ),
      );
    }
  }

  #cut(a: Arriving, err: InferrerError): void {
    this.#watch.forget(a);
    this.#log.info('request cut', { method: a.method, err: { code: err.code, message: err.message } });
    const trailer = new grpc.Metadata();
    trailer.set('inferrer-error-code', err.code);
    if (err.retryAfter !== undefined) trailer.set('retry-after', String(err.retryAfter));
    a.call.sendStatus({ code: grpcStatusOf(err), details: err.message, metadata: trailer });
    reset(a.call);
  }
}

/**
 * Resets a call's stream once its answer is queued; grpc-js has no public way to do it (left alone if a
 * grpc-js version does not hold the stream where streamOf looks).
 */
function reset(call: grpc.ServerInterceptingCallInterface): void {
  const stream = streamOf(call);
  if (typeof stream?.close === 'function' && stream.closed === false) stream.close(http2.constants.NGHTTP2_NO_ERROR);
}

/** The HTTP/2 stream of the call grpc-js hands the first interceptor (not public API: read with care). */
function streamOf(call: grpc.ServerInterceptingCallInterface): Partial<http2.Http2Stream> | undefined {
  return (call as unknown as { stream?: Partial<http2.Http2Stream> }).stream;
}

/** The client's address from grpc-js's peer string (`ipv4:1.2.3.4:5678`, `ipv6:[::1]:5678`). */
export function peerAddress(peer: string): string {
  const m = /^ipv[46]:\[?([^\]]+?)\]?:\d+$/.exec(peer);
  return m ? m[1]! : peer;
}
