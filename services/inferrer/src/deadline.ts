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
 * - The modelhost is told a little less than what the Inferrer has left (2.5 %, at most 250 ms): its
 *   answer still has to come back through the balancer.
 */

import { loopLagMs } from './loop-lag.ts';

/** When a request read at `readAt` (performance.now() clock) most likely arrived: earlier by the loop's recent delay. */
export function takenAt(readAt: number): number {
  return readAt - loopLagMs();
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
