/**
 * GET /api/v1/metrics: the metrics service's per-model summary across the cluster (requests/s, error rate,
 * latency quantiles, mean batch size, queue depth, workers with the model loaded), passed on to curl users
 * in the FRACTAL v1 envelope.
 */
import type { ExpressRoute } from '../../http/route.ts';
import type { MetricsClient } from '../../metrics-client.ts';
import { TAGS, json, ok, ref } from '../openapi-parts.ts';
import { sendV1 } from './routes.ts';

export function metricsSummaryRoutes(metrics: MetricsClient): ExpressRoute[] {
  return [
    {
      method: 'GET',
      path: '/api/v1/metrics',
      scope: 'predict',
      protocol: 'v1',
      summary: 'Per-model summary across the cluster: requests/s, error rate, p50/p95/p99, mean batch size, queue depth, workers (from the metrics service)',
      openapi: { tags: [TAGS.v1], responses: { ...ok('`stats`'), '503': { description: 'Metrics service unavailable', ...json(ref('V1Error')) } } },
      handle: async (_req, res) => {
        const stats = await metrics.stats();
        res.set('cache-control', 'no-store');
        sendV1(res, 200, { metrics: stats });
      },
    },
  ];
}
