/**
 * How a prediction's deadline (REQUEST_TIMEOUT_MS, counted from when the Inferrer takes the request) is
 * shared between the Inferrer and the modelhost that runs it. Each keeps a little in hand for what comes
 * after it: the Inferrer answers 504 a little before the deadline (its own event loop may be late, and the
 * answer still has to reach the client), and the modelhost is told a little less than what the Inferrer
 * has left (its answer still has to come back through the balancer).
 */

/** What is kept in hand from `ms`: 2.5 %, at most 250 ms. */
function slack(ms: number): number {
  return Math.min(250, ms * 0.025);
}

/** When the Inferrer answers by (performance.now() clock), for a request taken at `received`. */
export function answerBy(received: number, timeoutMs: number): number {
  return received + timeoutMs - slack(timeoutMs);
}

/** The time a modelhost is given (X-Request-Timeout-Ms) of what the Inferrer has left, ms. */
export function modelhostBudgetMs(remainingMs: number): number {
  return Math.max(1, Math.floor(remainingMs - slack(remainingMs)));
}
