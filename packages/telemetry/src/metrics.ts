/**
 * prom-client helpers: one registry per service, default process metrics, and histogram buckets that
 * fit inference latencies from sub-millisecond to tens of seconds.
 */
import client from 'prom-client';

export { client };

export const LATENCY_BUCKETS_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];

export function createRegistry(service: string): client.Registry {
  const registry = new client.Registry();
  registry.setDefaultLabels({ service });
  client.collectDefaultMetrics({ register: registry, prefix: `${service}_` });
  return registry;
}
