/**
 * GET /api/v1/metrics: the metrics service's per-model summary across the cluster (requests/s, error rate,
 * latency quantiles, mean batch size, queue depth, workers with the model loaded), passed on to curl users
 * in the FRACTAL v1 envelope.
 */
import { Router } from 'express';
import { InferrerError, v1Envelope } from '@inferrer/core';

export function metricsSummaryRoutes(metricsUrl: string | undefined, timeoutMs = 5000): Router {
  const r = Router();
  r.get('/api/v1/metrics', async (_req, res) => {
    if (!metricsUrl) throw new InferrerError('METRICS_UNAVAILABLE', 'no metrics service is configured (set METRICS_URL)');
    let stats: unknown;
    try {
      const up = await fetch(`${metricsUrl}/api/v1/stats`, { signal: AbortSignal.timeout(timeoutMs) });
      if (!up.ok) throw new Error(`answered ${up.status}`);
      stats = await up.json();
    } catch (err) {
      throw new InferrerError('METRICS_UNAVAILABLE', `the metrics service at ${metricsUrl} did not answer (${(err as Error).message})`, {}, { retryAfter: 5 });
    }
    res.set('cache-control', 'no-store').status(200).json(v1Envelope(200, { metrics: stats }));
  });
  return r;
}
