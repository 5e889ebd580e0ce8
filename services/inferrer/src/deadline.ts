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
 *   Likewise a request read right behind the body of one refused on its headers (noteEarlyAnswer) is
 *   taken as arriving when that refusal was sent: its client sent it then at the earliest.
 * - The modelhost is told a little less than what the Inferrer has left (2.5 %, at most 250 ms): its
 *   answer still has to come back through the balancer.
 */

import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { loopLagMs } from './loop-lag.ts';

/** When a connection's next request may have been sent already, and whether a request read now still was. */
interface Earliest {
  at: number;
  /** A request read now was already there (sent by then at the latest). */
  fresh: boolean;
}

/** Connections whose next request is dated from an earlier moment than its reading, when read at once. */
const earliest = new WeakMap<Socket, Earliest>();

/** Turns `entry` stale two turns of the loop from now: after the next turn's poll phase has read its socket. */
function staleSoon(entry: Earliest): void {
  // Called in this turn's poll phase: the first callback runs in this turn's check phase, the second in
  // the next turn's, after that turn's reads.
  setImmediate(() =>
    setImmediate(() => {
      entry.fresh = false;
    }),
  );
}

/** Notes a connection as it is accepted (the HTTP server's 'connection' event). */
export function noteConnection(socket: Socket): void {
  const entry: Earliest = { at: performance.now(), fresh: true };
  earliest.set(socket, entry);
  staleSoon(entry);
}

/**
 * Notes an answer sent at `answeredAt` before its request's body was read whole (a refusal on the
 * headers). The client may send its next request as soon as it has the answer, behind the rest of that
 * body: read before or right after the body's end, that request is dated from the answer. Under deep
 * overload draining a body takes a few long turns of the loop, seconds the next request's client is
 * already counting. (The next request is often parsed in the same read as the body's end, before the
 * body's 'end' event.)
 */
export function noteEarlyAnswer(req: IncomingMessage, answeredAt: number): void {
  if (req.complete) return;
  const entry: Earliest = { at: answeredAt, fresh: true };
  earliest.set(req.socket, entry);
  req.once('end', () => staleSoon(entry));
}

/**
 * When a request read at `readAt` (performance.now() clock) most likely arrived: earlier by the loop's
 * recent delay; a connection's first request read right after its accept at the accept, and one read
 * right behind the body of a request answered early at that answer.
 */
export function takenAt(readAt: number, socket?: Socket): number {
  const lagged = readAt - loopLagMs();
  const since = socket === undefined ? undefined : earliest.get(socket);
  if (since === undefined) return lagged;
  earliest.delete(socket!);
  return since.fresh ? Math.min(since.at, lagged) : lagged;
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
