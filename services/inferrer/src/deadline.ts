/**
 * How a prediction's deadline (REQUEST_TIMEOUT_MS, counted from when the Inferrer takes the request) is
 * shared between the Inferrer and the modelhost that runs it. Each keeps something in hand for what its
 * clock cannot see:
 * - The Inferrer answers 504 a tenth before the deadline (at most a second). A client's clock starts
 *   before the Inferrer's: under deep overload a request waits in the kernel and behind the Inferrer's busy
 *   event loop before it is taken (measured up to about a second with 512 ResNet-50 clients on 2 cores,
 *   bench part `deadline`), and the answer still has to reach the client.
 * - A request is taken as arriving when it was read less the event loop's recent delay (takenAt): a request
 *   that came while the loop was busy waited about that long in the kernel before it was read. At rest
 *   that is nothing; under deep overload it is the part of the client's wait the Inferrer's clock misses.
 *   A connection's first request read in the turn of the loop after the connection was accepted was
 *   already there when it was accepted: it is taken as arriving then. When hundreds of connections open at
 *   once with large bodies, that turn reads them all and lasts up to a second (bench part `deadline`);
 *   a client that opens a connection and sends later is read later and is not charged for the wait.
 * - The modelhost is told a little less than what the Inferrer has left (2.5 %, at most 250 ms): its
 *   answer still has to come back through the balancer.
 */

import type { Socket } from 'node:net';
import { loopLagMs } from './loop-lag.ts';

interface Accepted {
  at: number;
  /** Still the turn of the loop after the accept's: what is read now was sent before the accept. */
  fresh: boolean;
}

/** Connections whose first request has not been taken yet. */
const accepted = new WeakMap<Socket, Accepted>();

/** Notes a connection as it is accepted (the HTTP server's 'connection' event). */
export function noteConnection(socket: Socket): void {
  const entry: Accepted = { at: performance.now(), fresh: true };
  accepted.set(socket, entry);
  // Accepted in this turn's poll phase; first read in the next turn's. The first callback runs in this
  // turn's check phase, the second in the next turn's, after that read.
  setImmediate(() =>
    setImmediate(() => {
      entry.fresh = false;
    }),
  );
}

/**
 * When a request read at `readAt` (performance.now() clock) most likely arrived: earlier by the loop's
 * recent delay, or, for a connection's first request read right after its accept, at the accept.
 */
export function takenAt(readAt: number, socket?: Socket): number {
  const lagged = readAt - loopLagMs();
  const first = socket === undefined ? undefined : accepted.get(socket);
  if (first === undefined) return lagged;
  accepted.delete(socket!);
  return first.fresh ? Math.min(first.at, lagged) : lagged;
}

/** What the Inferrer keeps in hand from a deadline `ms` away: 10 %, at most 1 s. */
function edgeSlack(ms: number): number {
  return Math.min(1000, ms * 0.1);
}

/** What is kept in hand for the trip back from a modelhost: 2.5 %, at most 250 ms. */
function tripSlack(ms: number): number {
  return Math.min(250, ms * 0.025);
}

/** When the Inferrer answers by (performance.now() clock), for a request taken at `received`. */
export function answerBy(received: number, timeoutMs: number): number {
  return received + timeoutMs - edgeSlack(timeoutMs);
}

/** The time a modelhost is given (X-Request-Timeout-Ms) of what the Inferrer has left, ms. */
export function modelhostBudgetMs(remainingMs: number): number {
  return Math.max(1, Math.floor(remainingMs - tripSlack(remainingMs)));
}
