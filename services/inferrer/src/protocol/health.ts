/** Liveness, readiness (the load balancer answers) and the Inferrer's own Prometheus metrics. */
import type { ExpressRoute } from '../http/route.ts';
import type { InferrerMetrics } from '../metrics.ts';
import { TAGS, ok } from './openapi-parts.ts';

export interface HealthDeps {
  metrics: InferrerMetrics;
  ready: () => Promise<boolean>;
}

export function healthRoutes({ metrics, ready }: HealthDeps): ExpressRoute[] {
  const base = { method: 'GET', scope: 'public', protocol: 'plain', quiet: true } as const;
  const tags = [TAGS.health];
  return [
    {
      ...base,
      path: '/health/live',
      summary: 'Liveness',
      openapi: { tags, responses: ok('Alive', { type: 'object' }) },
      handle: (_req, res) => void res.json({ live: true }),
    },
    {
      ...base,
      path: '/health/ready',
      summary: 'Readiness (the load balancer answers)',
      openapi: { tags, responses: { ...ok('Ready', { type: 'object' }), '503': { description: 'Not ready' } } },
      handle: async (_req, res) => {
        const ok = await ready();
        res.status(ok ? 200 : 503).json({ ready: ok });
      },
    },
    {
      ...base,
      path: '/metrics',
      summary: 'Prometheus metrics of the Inferrer',
      openapi: { tags, responses: { '200': { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } } } },
      handle: async (_req, res) => {
        res.set('content-type', metrics.registry.contentType).send(await metrics.registry.metrics());
      },
    },
  ];
}
