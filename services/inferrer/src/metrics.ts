/** The Inferrer's Prometheus metrics: requests by route, protocol and status; latency; upstream errors. */
import { LATENCY_BUCKETS_SECONDS, client, createRegistry } from '@inferrer/telemetry';

export class InferrerMetrics {
  readonly registry = createRegistry('inferrer');
  readonly requests = new client.Counter({
    name: 'inferrer_requests_total',
    help: 'Requests by route template, protocol and HTTP status',
    labelNames: ['route', 'protocol', 'status'],
    registers: [this.registry],
  });
  readonly duration = new client.Histogram({
    name: 'inferrer_request_duration_seconds',
    help: 'Time from request to the end of the answer',
    labelNames: ['route', 'protocol'],
    buckets: LATENCY_BUCKETS_SECONDS,
    registers: [this.registry],
  });
  readonly requestBytes = new client.Counter({
    name: 'inferrer_request_bytes_total',
    help: 'Request body bytes received (declared Content-Length), by route template and protocol',
    labelNames: ['route', 'protocol'],
    registers: [this.registry],
  });
  readonly responseBytes = new client.Counter({
    name: 'inferrer_response_bytes_total',
    help: 'Response body bytes sent, by route template and protocol',
    labelNames: ['route', 'protocol'],
    registers: [this.registry],
  });
  readonly upstreamErrors = new client.Counter({
    name: 'inferrer_upstream_errors_total',
    help: 'Predictions the load balancer or modelhosts failed to serve, by error code',
    labelNames: ['code'],
    registers: [this.registry],
  });
}
