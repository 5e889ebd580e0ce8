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
  readonly groupSize = new client.Histogram({
    name: 'inferrer_upstream_group_size',
    help: 'Predictions sent to a modelhost in one upstream request (those for one model that arrived together)',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [this.registry],
  });
  readonly cancelled = new client.Counter({
    name: 'inferrer_requests_cancelled_total',
    help: 'Predictions whose client went away (closed its connection, or cancelled its gRPC call) before the answer; the modelhost is told to drop them',
    labelNames: ['route', 'protocol'],
    registers: [this.registry],
  });
  readonly upstreamErrors = new client.Counter({
    name: 'inferrer_upstream_errors_total',
    help: 'Predictions the load balancer or modelhosts failed to serve, by error code',
    labelNames: ['code'],
    registers: [this.registry],
  });

  /** Reports how many large predictions wait at the body gate (body-gate.ts) at each scrape. */
  watchGate(gate: { readonly waiting: number }): void {
    new client.Gauge({
      name: 'inferrer_body_gate_waiting',
      help: 'Predictions with large bodies waiting, unread, for room upstream (BODY_GATE_BYTES)',
      registers: [this.registry],
      collect() {
        this.set(gate.waiting);
      },
    });
  }

  /** Counts one answered request: status, duration and bytes, under its route template and protocol. */
  observe(route: string, protocol: string, status: number, seconds: number, bytesIn: number, bytesOut: number): void {
    // prom-client keeps the label object of a new series: one object per call, never changed after.
    this.duration.observe({ route, protocol }, seconds);
    this.requestBytes.inc({ route, protocol }, bytesIn);
    this.responseBytes.inc({ route, protocol }, bytesOut);
    this.requests.inc({ route, protocol, status: String(status) });
  }
}
