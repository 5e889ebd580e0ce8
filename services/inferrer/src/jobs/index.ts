/** Builds the batch-job parts from the config: store (MODEL_DIR/.jobs), queue (Redis or embedded), runner, service. */
import path from 'node:path';
import type { Logger } from '@inferrer/telemetry';
import type { InferrerConfig } from '../config.ts';
import type { DataPlane } from '../dataplane.ts';
import type { Management } from '../management.ts';
import { JobRunner } from './job-runner.ts';
import { JobService } from './job-service.ts';
import { JobStore } from './job-store.ts';
import { Pacer } from './pacer.ts';
import { EmbeddedJobQueue, type JobQueue, RedisJobQueue } from './queue.ts';

export { JobService } from './job-service.ts';

export function createJobService(config: InferrerConfig, deps: { dataplane: DataPlane; management: Management; logger: Logger }): JobService {
  const store = new JobStore(path.join(config.modelDir, '.jobs'));
  const queue: JobQueue = config.redisUrl
    ? new RedisJobQueue(config.redisUrl, store, config.jobs.maxRunning, deps.logger)
    : new EmbeddedJobQueue(store, config.jobs.maxRunning, deps.logger);
  const pacer = new Pacer(deps.dataplane.online, config.jobs.concurrency);
  const runner = new JobRunner({ store, dataplane: deps.dataplane, pacer, rowsPerRequest: config.jobs.rowsPerRequest, logger: deps.logger });
  return new JobService({ store, queue, runner, management: deps.management, limits: config.jobs, logger: deps.logger });
}
