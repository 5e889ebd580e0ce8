/**
 * The metrics service's state: the collectors, ticked together every SCRAPE_INTERVAL_MS, and the summary
 * they make (`/api/v1/stats`), computed once per tick.
 */
import type { Logger } from '@inferrer/telemetry';
import type { ModelStats } from './cluster-stats.ts';
import { ClusterCollector, type WorkerView } from './collectors/cluster.ts';
import { DriftCollector } from './collectors/drift.ts';
import { HostCollector, type HostStatus } from './collectors/host.ts';
import { NginxCollector, type NginxStatus } from './collectors/nginx.ts';
import type { MetricsConfig } from './config.ts';
import { createDiscovery, type Lookup } from './discovery.ts';
import { StatsHistory } from './history.ts';
import { Fanout } from './fanout.ts';

export interface ClusterStats {
  time: string;
  window_seconds: number;
  scrape_interval_seconds: number;
  modelhosts: WorkerView[];
  models: ModelStats[];
  nginx: NginxStatus | null;
  host: HostStatus | null;
  discovery_errors: string[];
}

export class Monitor {
  readonly cluster: ClusterCollector;
  readonly drift: DriftCollector;
  readonly nginx: NginxCollector | undefined;
  readonly host: HostCollector | undefined;
  readonly history: StatsHistory;
  /** Questions asked of every worker now (statistics, warm-up), not from the last scrape. */
  readonly fanout: Fanout;
  readonly #config: MetricsConfig;
  readonly #log: Logger;
  #models: ModelStats[] = [];
  #workers: WorkerView[] = [];
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;
  #ticks = 0;

  constructor(config: MetricsConfig, logger: Logger, lookup?: Lookup) {
    this.#config = config;
    this.#log = logger.child({ module: 'monitor' });
    const discover = createDiscovery({ modelhosts: config.modelhosts, modelhostDns: config.modelhostDns }, lookup);
    this.fanout = new Fanout({ discover, timeoutMs: config.scrapeTimeoutMs });
    this.cluster = new ClusterCollector({
      discover,
      windowMs: config.statsWindowS * 1000,
      timeoutMs: config.scrapeTimeoutMs,
      logger,
    });
    this.drift = new DriftCollector({ windowMs: config.driftWindowS * 1000, timeoutMs: config.scrapeTimeoutMs, defaults: config.driftDefaults, logger });
    this.nginx = config.nginxStatusUrl ? new NginxCollector(config.nginxStatusUrl, config.scrapeTimeoutMs) : undefined;
    this.host = config.hostMetrics ? new HostCollector(config.diskPath, config.nvidiaSmi) : undefined;
    this.history = new StatsHistory({ historyS: config.historyS, scrapeIntervalMs: config.scrapeIntervalMs });
  }

  /** Scrapes once (concurrent calls share the scrape in flight). */
  tick(): Promise<void> {
    this.#ticking ??= (async () => {
      try {
        const now = Date.now();
        await Promise.all([this.cluster.collect(now), this.nginx?.collect(), this.host?.collect()]);
        this.#models = this.cluster.models();
        this.#workers = this.cluster.workers();
        this.history.record(now, this.#models, this.host?.status?.cpu_usage_ratio ?? null);
        await this.drift.collect(this.#workers.filter((w) => w.up));
        this.#ticks++;
      } catch (err) {
        this.#log.error('collection failed', { err });
      } finally {
        this.#ticking = undefined;
      }
    })();
    return this.#ticking;
  }

  get ticks(): number {
    return this.#ticks;
  }

  start(): void {
    void this.tick();
    this.#timer = setInterval(() => void this.tick(), this.#config.scrapeIntervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  models(): ModelStats[] {
    return this.#models;
  }

  workers(): WorkerView[] {
    return this.#workers;
  }

  stats(): ClusterStats {
    return {
      time: new Date().toISOString(),
      window_seconds: this.#config.statsWindowS,
      scrape_interval_seconds: this.#config.scrapeIntervalMs / 1000,
      modelhosts: this.#workers,
      models: this.#models,
      nginx: this.nginx?.status ?? null,
      host: this.host?.status ?? null,
      discovery_errors: this.cluster.discoveryErrors,
    };
  }
}
