/**
 * The metrics service's own Prometheus metrics: the cluster summary per model, each modelhost's
 * reachability, nginx's stub_status, and the host. Values are read from the Monitor at scrape time.
 * Labels: model (from the modelhosts' own, bounded, labels), modelhost (one per worker), quantile,
 * device / path / gpu (fixed by the machine).
 */
import { client, createRegistry } from '@inferrer/telemetry';
import type { Monitor } from './monitor.ts';

export function createExporter(monitor: Monitor): client.Registry {
  const r = createRegistry('metrics');
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[], fill: (g: client.Gauge<L>) => void): void => {
    new client.Gauge<L>({
      name,
      help,
      labelNames,
      registers: [r],
      collect() {
        this.reset();
        fill(this);
      },
    });
  };
  const counter = <L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    fill: (set: (labels: Partial<Record<L, string>>, v: number) => void) => void,
  ): void => {
    new client.Counter<L>({
      name,
      help,
      labelNames,
      registers: [r],
      collect() {
        this.reset();
        fill((labels, v) => this.inc(labels, Math.max(0, v)));
      },
    });
  };

  // Cluster: workers and the per-model summary.
  gauge('metrics_cluster_modelhosts', 'Modelhosts discovered', [], (g) => g.set(monitor.workers().length));
  gauge('metrics_cluster_modelhost_up', 'Whether the last scrape of a modelhost succeeded (1) or not (0)', ['modelhost'], (g) => {
    for (const w of monitor.workers()) g.set({ modelhost: w.id }, w.up ? 1 : 0);
  });
  counter('metrics_cluster_scrapes_total', 'Scrapes of modelhosts attempted', [], (set) => set({}, monitor.cluster.scrapes));
  counter('metrics_cluster_scrape_errors_total', 'Scrapes of modelhosts that failed', [], (set) => set({}, monitor.cluster.scrapeErrors));
  const perModel = (name: string, help: string, pick: (m: ReturnType<Monitor['models']>[number]) => number | null): void =>
    gauge(name, help, ['model'], (g) => {
      for (const m of monitor.models()) {
        const v = pick(m);
        if (v !== null) g.set({ model: m.model }, v);
      }
    });
  perModel('metrics_cluster_model_requests_per_second', 'Inference requests per second across all modelhosts (stats window)', (m) => m.requests_per_second);
  perModel('metrics_cluster_model_errors_per_second', 'Server-side inference failures per second across all modelhosts', (m) => m.errors_per_second);
  perModel('metrics_cluster_model_error_ratio', 'Server-side failures over requests (stats window)', (m) => m.error_rate);
  perModel(
    'metrics_cluster_model_client_errors_per_second',
    "Inference requests refused as the client's fault (4xx) per second across all modelhosts",
    (m) => m.client_errors_per_second,
  );
  perModel('metrics_cluster_model_client_error_ratio', 'Client errors (4xx) over requests (stats window)', (m) => m.client_error_rate);
  perModel('metrics_cluster_model_timeouts_per_second', 'Requests past their deadline per second', (m) => m.timeouts_per_second);
  perModel('metrics_cluster_model_batch_size_mean', 'Mean rows per executed batch (stats window)', (m) => m.batch_size_mean);
  perModel('metrics_cluster_model_queue_depth', 'Requests queued for the model on all workers now', (m) => m.queue_depth);
  perModel('metrics_cluster_model_loaded_workers', 'Workers with a version of the model loaded', (m) => m.workers.length);
  gauge(
    'metrics_cluster_model_latency_seconds',
    'Modelhost request latency quantiles from the summed histograms (stats window)',
    ['model', 'quantile'],
    (g) => {
      for (const m of monitor.models()) {
        for (const [q, v] of [
          ['0.5', m.latency_seconds.p50],
          ['0.95', m.latency_seconds.p95],
          ['0.99', m.latency_seconds.p99],
        ] as const) {
          if (v !== null) g.set({ model: m.model, quantile: q }, v);
        }
      }
    },
  );

  // Drift: per model version and feature (features are bounded by the model signature, at most 256 per
  // side). Scores are only exported once the window holds min_samples rows, so alerts never fire on noise.
  const scored = () => monitor.drift.models().flatMap((m) => m.features.filter((f) => f.psi !== null).map((f) => ({ m, f })));
  gauge(
    'metrics_drift_psi',
    'Population stability index of a feature against its reference profile (drift window, all workers)',
    ['model', 'version', 'side', 'feature'],
    (g) => {
      for (const { m, f } of scored()) g.set({ model: m.model, version: String(m.version), side: f.side, feature: f.feature }, f.psi!);
    },
  );
  gauge(
    'metrics_drift_zscore',
    'Mean shift of a feature in reference standard deviations (drift window, all workers)',
    ['model', 'version', 'side', 'feature'],
    (g) => {
      for (const { m, f } of scored()) if (f.zscore !== null) g.set({ model: m.model, version: String(m.version), side: f.side, feature: f.feature }, f.zscore);
    },
  );
  gauge('metrics_drift_samples', 'Rows counted in the drift window, all workers', ['model', 'version'], (g) => {
    for (const m of monitor.drift.models()) g.set({ model: m.model, version: String(m.version) }, m.samples);
  });
  gauge('metrics_drift_min_samples', 'Rows the drift window needs before features get a score', ['model', 'version'], (g) => {
    for (const m of monitor.drift.models()) g.set({ model: m.model, version: String(m.version) }, m.min_samples);
  });
  gauge(
    'metrics_drift_threshold',
    "Drift thresholds per model version (its config.drift, else the service's defaults), for the alert rules",
    ['model', 'version', 'statistic', 'severity'],
    (g) => {
      for (const m of monitor.drift.models()) {
        const v = { model: m.model, version: String(m.version) };
        g.set({ ...v, statistic: 'psi', severity: 'warning' }, m.thresholds.psi_warning);
        g.set({ ...v, statistic: 'psi', severity: 'critical' }, m.thresholds.psi_critical);
        g.set({ ...v, statistic: 'zscore', severity: 'warning' }, m.thresholds.z_warning);
        g.set({ ...v, statistic: 'zscore', severity: 'critical' }, m.thresholds.z_critical);
      }
    },
  );

  // nginx (stub_status).
  if (monitor.nginx) {
    const nginx = monitor.nginx;
    gauge('metrics_nginx_up', 'Whether nginx stub_status answered (1) or not (0)', [], (g) => g.set(nginx.status?.up ? 1 : 0));
    gauge('metrics_nginx_connections', 'nginx client connections by state (active, reading, writing, waiting)', ['state'], (g) => {
      const s = nginx.status;
      if (!s) return;
      for (const state of ['active', 'reading', 'writing', 'waiting'] as const) g.set({ state }, s[state]);
    });
    counter('metrics_nginx_connections_accepted_total', 'Client connections nginx accepted', [], (set) => nginx.status && set({}, nginx.status.accepted));
    counter('metrics_nginx_connections_handled_total', 'Client connections nginx handled', [], (set) => nginx.status && set({}, nginx.status.handled));
    counter('metrics_nginx_http_requests_total', 'Client requests nginx served', [], (set) => nginx.status && set({}, nginx.status.requests));
  }

  // Host.
  if (monitor.host) {
    const host = monitor.host;
    const hg = (name: string, help: string, pick: (h: NonNullable<typeof host.status>) => number): void =>
      gauge(name, help, [], (g) => host.status && g.set(pick(host.status)));
    hg('metrics_host_cpu_cores', 'Logical CPUs', (h) => h.cpu_cores);
    hg('metrics_host_cpu_usage_ratio', 'Share of CPU time not idle since the previous reading, all cores', (h) => h.cpu_usage_ratio);
    hg('metrics_host_memory_total_bytes', 'Physical memory', (h) => h.memory_total_bytes);
    hg('metrics_host_memory_available_bytes', 'Memory available to new work (MemAvailable)', (h) => h.memory_available_bytes);
    gauge('metrics_host_load_average', 'System load average', ['period'], (g) => {
      if (host.status) for (const [period, v] of Object.entries(host.status.load_average)) g.set({ period }, v);
    });
    gauge(
      'metrics_host_disk_total_bytes',
      'Size of the file system at DISK_PATH',
      ['path'],
      (g) => host.status?.disk && g.set({ path: host.status.disk.path }, host.status.disk.total_bytes),
    );
    gauge(
      'metrics_host_disk_free_bytes',
      'Space available to unprivileged users at DISK_PATH',
      ['path'],
      (g) => host.status?.disk && g.set({ path: host.status.disk.path }, host.status.disk.free_bytes),
    );
    counter('metrics_host_network_receive_bytes_total', 'Bytes received per network interface', ['device'], (set) => {
      for (const n of host.status?.network ?? []) set({ device: n.device }, n.receive_bytes);
    });
    counter('metrics_host_network_transmit_bytes_total', 'Bytes sent per network interface', ['device'], (set) => {
      for (const n of host.status?.network ?? []) set({ device: n.device }, n.transmit_bytes);
    });
    gauge('metrics_host_gpu_utilization_ratio', 'GPU utilisation (nvidia-smi)', ['gpu', 'name'], (g) => {
      for (const x of host.status?.gpus ?? []) g.set({ gpu: x.index, name: x.name }, x.utilization_ratio);
    });
    gauge('metrics_host_gpu_memory_used_bytes', 'GPU memory in use (nvidia-smi)', ['gpu'], (g) => {
      for (const x of host.status?.gpus ?? []) g.set({ gpu: x.index }, x.memory_used_bytes);
    });
    gauge('metrics_host_gpu_memory_total_bytes', 'GPU memory (nvidia-smi)', ['gpu'], (g) => {
      for (const x of host.status?.gpus ?? []) g.set({ gpu: x.index }, x.memory_total_bytes);
    });
  }
  return r;
}
