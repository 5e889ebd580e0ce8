/** Reading a service's Prometheus metrics in e2e tests, and waiting for a condition. */
import assert from 'node:assert/strict';

/** The sum of a service's series of a metric that carry these labels (0 when it has none). */
export async function metricSum(url: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  return metricSumIn(await (await fetch(`${url}/metrics`)).text(), name, labels);
}

/**
 * Requests of `model` that have reached a modelhost and not been cancelled: those waiting in its queue
 * plus those taken from it to run (counted as they start), read from one scrape so that a request moving
 * from one to the other is counted once.
 */
export async function modelhostArrivals(modelhost: string, model: string): Promise<number> {
  const text = await (await fetch(`${modelhost}/metrics`)).text();
  return metricSumIn(text, 'modelhost_queue_depth', { model }) + metricSumIn(text, 'modelhost_queue_duration_seconds_count', { model });
}

function metricSumIn(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** Polls `check` every 10 ms until it holds; fails naming `what` after `ms`. */
export async function until(what: string, check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    assert.ok(Date.now() < end, `timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
