/**
 * The Inferrer's route table: every route of every protocol, in the order /help lists them. Each protocol
 * module declares its routes (method, path, scope, protocol, handler, docs); nothing else repeats a path.
 */
import type { Logger } from '@inferrer/telemetry';
import type { InferrerConfig } from './config.ts';
import type { DataPlane } from './dataplane.ts';
import { DriftCaptures } from './drift-captures.ts';
import type { Route } from './http/route.ts';
import type { JobService } from './jobs/job-service.ts';
import type { Management } from './management.ts';
import { MetricsClient } from './metrics-client.ts';
import type { InferrerMetrics } from './metrics.ts';
import { ModelImporter } from './model-import.ts';
import { driftRoutes } from './protocol/fractal-v1/drift.ts';
import { importRoutes } from './protocol/fractal-v1/import-route.ts';
import { metricsSummaryRoutes } from './protocol/fractal-v1/metrics-summary.ts';
import { v1PredictRoutes } from './protocol/fractal-v1/predict.ts';
import { v1Routes } from './protocol/fractal-v1/routes.ts';
import { healthRoutes } from './protocol/health.ts';
import { jobRoutes } from './protocol/jobs/routes.ts';
import { v2InferRoutes } from './protocol/oip-v2/infer.ts';
import { v2Routes } from './protocol/oip-v2/routes.ts';
import { OipService } from './protocol/oip-v2/service.ts';
import { docsRoutes } from './protocol/openapi.ts';

export interface RouteDeps {
  config: InferrerConfig;
  logger: Logger;
  management: Management;
  dataplane: DataPlane;
  metrics: InferrerMetrics;
  ready: () => Promise<boolean>;
  jobs?: JobService | undefined;
  /** The OIP's non-infer calls, shared with the gRPC service; built here when not given. */
  oip?: OipService | undefined;
}

export function createRoutes(deps: RouteDeps): Route[] {
  const { config, management, dataplane } = deps;
  const metricsClient = new MetricsClient(config.metricsUrl);
  const all: Route[] = [];
  const table = (): readonly Route[] => all;
  all.push(
    ...v1Routes({ config, management, dataplane, metrics: metricsClient, routes: table }),
    ...v1PredictRoutes({ config, dataplane }),
    ...metricsSummaryRoutes(metricsClient),
    ...driftRoutes({ management, metrics: metricsClient, captures: new DriftCaptures(management, metricsClient, deps.logger) }),
    ...importRoutes(new ModelImporter(config, management)),
    ...jobRoutes({ jobs: deps.jobs }),
    ...v2Routes({
      oip: deps.oip ?? new OipService({ config, management, dataplane, metrics: metricsClient, ready: deps.ready }),
      maxModelBytes: config.maxModelBytes,
    }),
    ...v2InferRoutes({ config, dataplane }),
    ...healthRoutes({ metrics: deps.metrics, ready: deps.ready }),
    ...docsRoutes(table),
  );
  return all;
}
