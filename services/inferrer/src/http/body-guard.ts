/**
 * Slow request bodies can only hurt their sender. Every body is watched while it arrives (bytes read from
 * its socket): it must be complete within `timeoutMs` plus one second per `minBytesPerSecond` bytes received
 * so far (Apache's mod_reqtimeout rule), or it is cut with 408 BODY_TOO_SLOW. A body still arriving after a
 * second (not counting the time the Inferrer's own event loop was too busy to read it) is pending; a client
 * address may have `maxPendingPerClient` pending bodies, and the next one is cut with 429 TOO_MANY_BODIES.
 * A cut answers at once and closes the connection. Prediction bodies are read whole before they go upstream
 * (http/stream.ts), so no upstream connection ever waits on a client.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { InferrerError } from '@inferrer/core';
import { sendError } from '@inferrer/http';
import type { Logger } from '@inferrer/telemetry';
import type { ClientAddresses } from './client-address.ts';
import { ERROR_BODY, type Protocol } from '../protocol/errors.ts';
import { type Arrival, ArrivalWatch, type BodyLimits, PENDING_AFTER_MS } from './arrival-watch.ts';

/** A body still arriving. */
interface Watched extends Arrival {
  req: IncomingMessage;
  res: ServerResponse;
  protocol: Protocol;
  baseline: number;
}

export class BodyGuard {
  readonly #log: Logger;
  readonly #watch: ArrivalWatch<Watched>;
  /** Bodies cut so far, by reason (for the metrics and tests). */
  readonly cut = { slow: 0, tooMany: 0 };

  readonly #clients: ClientAddresses;

  constructor(limits: BodyLimits, clients: ClientAddresses, logger: Logger) {
    this.#clients = clients;
    this.#log = logger.child({ module: 'bodies' });
    this.#watch = new ArrivalWatch(limits, (w, now, lag) => this.#check(w, now, lag));
  }

  /** Watches a request's body until it is complete, the answer is sent, or the connection closes. */
  watch(req: IncomingMessage, res: ServerResponse, protocol: Protocol): void {
    // No listeners per request: the tick drops bodies that are complete (cheap on the prediction path).
    this.#watch.add({
      req,
      res,
      protocol,
      client: this.#clients.of(req.socket.remoteAddress),
      started: performance.now(),
      baseline: req.socket.bytesRead,
      pending: false,
    });
  }

  #check(w: Watched, now: number, lag: number): void {
    if (w.req.complete || w.req.destroyed || w.res.writableEnded) {
      this.#watch.forget(w);
      return;
    }
    const { minBytesPerSecond, maxPendingPerClient, timeoutMs } = this.#watch.limits;
    const elapsed = now - w.started;
    // A body is not pending for the time this loop was too busy to read it (loop-lag.ts).
    if (!w.pending && elapsed - lag >= PENDING_AFTER_MS && this.#watch.stall(w)) {
      this.cut.tooMany++;
      this.#cut(
        w,
        new InferrerError(
          'TOO_MANY_BODIES',
          `this address already has ${maxPendingPerClient} request bodies still arriving (MAX_PENDING_BODIES_PER_CLIENT)`,
          { limit: maxPendingPerClient },
          { retryAfter: 1 },
        ),
      );
      return;
    }
    const received = Math.max(0, w.req.socket.bytesRead - w.baseline);
    if (this.#watch.tooSlow(elapsed, received)) {
      this.cut.slow++;
      this.#cut(
        w,
        new InferrerError(
          'BODY_TOO_SLOW',
          `the request body arrived too slowly (${received} bytes in ${Math.round(elapsed)} ms; at least ${minBytesPerSecond} bytes/s after the first ${timeoutMs} ms)`,
          { received, ms: Math.round(elapsed), minBytesPerSecond },
        ),
      );
    }
  }

  /** Answers with the error (when nothing was sent yet) and closes the connection once it is written. */
  #cut(w: Watched, err: InferrerError): void {
    this.#watch.forget(w);
    const { req, res } = w;
    const socket = req.socket;
    if (!res.headersSent && !res.writableEnded) {
      res.setHeader('connection', 'close');
      sendError(res, err, ERROR_BODY[w.protocol], this.#log, {
        reqId: String(res.getHeader('x-request-id') ?? ''),
        method: req.method,
        path: req.url?.split('?')[0],
      });
      // Closed once the answer is out (a reader waiting on the body then sees it aborted); at the latest in a second.
      res.once('finish', () => socket.destroy());
      setTimeout(() => socket.destroy(), 1000).unref();
    } else {
      this.#log.info('request body cut', { err: { code: err.code, message: err.message }, path: req.url?.split('?')[0] });
      socket.destroy();
    }
  }
}
