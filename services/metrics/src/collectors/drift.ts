/**
 * Cluster-wide drift scores. On each tick every reachable modelhost's GET /v1/drift is read: cumulative
 * per-feature counts (moments and histogram counts on the reference bins) per model version. For each
 * worker the window is the latest snapshot minus the newest one at least DRIFT_WINDOW_S old (a restart or a
 * new reference starts from zero); the workers' windows are added, then every feature is scored against
 * the reference profile (fetched once per profile from a worker): PSI and mean shift (z-score), with a
 * status from the model's thresholds (its config.drift) or the service's defaults.
 */
import type { Logger } from '@inferrer/telemetry';
import {
  type CaptureSnapshot,
  type DriftProfile,
  type DriftStatus,
  type DriftThresholds,
  type FeatureScore,
  type FeatureStats,
  addStats,
  scoreFeatures,
  windowStats,
} from '@inferrer/drift';

/** What a modelhost's GET /v1/drift answers (services/modelhost/src/drift.ts). */
interface TrackerView {
  model: string;
  version: number;
  profile_id: string;
  started_at: string;
  thresholds: { psi_warning?: number; psi_critical?: number; z_warning?: number; z_critical?: number; min_samples?: number };
  rows: number;
  inputs: FeatureStats[];
  outputs: FeatureStats[];
}

export interface CaptureView extends CaptureSnapshot {
  model: string;
  version: number;
  requested_at: string;
  modelhost: string;
}

interface DriftAnswer {
  modelhost?: string;
  trackers?: TrackerView[];
  captures?: Omit<CaptureView, 'modelhost'>[];
}

interface Point {
  t: number;
  view: TrackerView;
}

export interface ModelDrift {
  model: string;
  version: number;
  profile: { source: string; created_at: string; samples: number } | null;
  window_seconds: number;
  /** Rows counted in the window, all workers. */
  samples: number;
  min_samples: number;
  thresholds: { psi_warning: number; psi_critical: number; z_warning: number; z_critical: number };
  /** The worst feature status; too_few_samples below min_samples. */
  status: DriftStatus;
  workers: number;
  features: FeatureScore[];
}

export interface DriftCollectorOptions {
  windowMs: number;
  timeoutMs: number;
  defaults: DriftThresholds;
  logger: Logger;
}

const RANK: Record<DriftStatus, number> = { too_few_samples: 0, ok: 1, warning: 2, drift: 3 };

export class DriftCollector {
  readonly #opts: DriftCollectorOptions;
  readonly #log: Logger;
  /** worker url → model@version → snapshots, oldest first. */
  readonly #history = new Map<string, Map<string, Point[]>>();
  readonly #captures = new Map<string, CaptureView[]>();
  readonly #profiles = new Map<string, DriftProfile>();
  #models: ModelDrift[] = [];

  constructor(opts: DriftCollectorOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ module: 'drift' });
  }

  /** Reads every worker's counts and recomputes the scores. `workers`: the ones up now. */
  async collect(workers: { url: string; id: string }[], now = Date.now()): Promise<void> {
    const urls = new Set(workers.map((w) => w.url));
    for (const url of this.#history.keys()) if (!urls.has(url)) this.#history.delete(url);
    for (const url of this.#captures.keys()) if (!urls.has(url)) this.#captures.delete(url);
    await Promise.all(workers.map((w) => this.#scrape(w, now)));
    this.#models = await this.#score(now);
  }

  /** Per model version, the latest scores. */
  models(): ModelDrift[] {
    return this.#models;
  }

  /** The profile captures the workers hold for a model version (all of them when not given). */
  captures(model?: string, version?: number): CaptureView[] {
    return [...this.#captures.values()].flat().filter((c) => (model === undefined || c.model === model) && (version === undefined || c.version === version));
  }

  async #scrape(w: { url: string; id: string }, now: number): Promise<void> {
    let body: DriftAnswer;
    try {
      const res = await fetch(`${w.url}/v1/drift`, { signal: AbortSignal.timeout(this.#opts.timeoutMs) });
      if (!res.ok) throw new Error(`/v1/drift answered ${res.status}`);
      body = (await res.json()) as DriftAnswer;
    } catch (err) {
      // The cluster collector reports unreachable workers; keep the history, the window stays right.
      this.#log.debug('drift scrape failed', { modelhost: w.id, err: { message: (err as Error).message } });
      return;
    }
    let byKey = this.#history.get(w.url);
    if (!byKey) this.#history.set(w.url, (byKey = new Map()));
    const seen = new Set<string>();
    for (const view of body.trackers ?? []) {
      const key = `${view.model}@${view.version}`;
      seen.add(key);
      const points = byKey.get(key) ?? [];
      points.push({ t: now, view });
      // Keep one point at least a window old (the baseline) and everything newer.
      while (points.length >= 2 && points[1]!.t <= now - this.#opts.windowMs) points.shift();
      byKey.set(key, points);
    }
    for (const key of byKey.keys()) if (!seen.has(key)) byKey.delete(key);
    this.#captures.set(
      w.url,
      (body.captures ?? []).map((c) => ({ ...c, modelhost: body.modelhost ?? w.id })),
    );
  }

  /** The window of one worker's tracker: latest minus the baseline, or everything when there is none. */
  #window(points: Point[], now: number): { rows: number; inputs: FeatureStats[]; outputs: FeatureStats[]; view: TrackerView } {
    const latest = points[points.length - 1]!.view;
    const first = points[0]!;
    const sameRun = first.view.profile_id === latest.profile_id && first.view.started_at === latest.started_at && first.view.rows <= latest.rows;
    const startedInWindow = Date.parse(latest.started_at) >= now - this.#opts.windowMs;
    const base = sameRun && !(first.t > now - this.#opts.windowMs && startedInWindow) && points.length > 1 ? first.view : undefined;
    return {
      rows: latest.rows - (base?.rows ?? 0),
      inputs: windowStats(latest.inputs, base?.inputs),
      outputs: windowStats(latest.outputs, base?.outputs),
      view: latest,
    };
  }

  async #score(now: number): Promise<ModelDrift[]> {
    const groups = new Map<string, { rows: number; inputs: FeatureStats[]; outputs: FeatureStats[]; view: TrackerView; workers: number; url: string }>();
    for (const [url, byKey] of this.#history) {
      for (const [key, points] of byKey) {
        if (points.length === 0) continue;
        const w = this.#window(points, now);
        const g = groups.get(key);
        if (!g || g.view.profile_id < w.view.profile_id) groups.set(key, { ...w, workers: 1, url });
        else if (g.view.profile_id === w.view.profile_id) {
          g.rows += w.rows;
          g.inputs = addStats(g.inputs, w.inputs);
          g.outputs = addStats(g.outputs, w.outputs);
          g.workers++;
        }
      }
    }
    const out: ModelDrift[] = [];
    for (const g of groups.values()) {
      const profile = await this.#profile(g.url, g.view);
      const d = this.#opts.defaults;
      const th = g.view.thresholds ?? {};
      const t: DriftThresholds = {
        psiWarning: th.psi_warning ?? d.psiWarning,
        psiCritical: th.psi_critical ?? d.psiCritical,
        zWarning: th.z_warning ?? d.zWarning,
        zCritical: th.z_critical ?? d.zCritical,
        minSamples: th.min_samples ?? d.minSamples,
      };
      const features = profile
        ? [...scoreFeatures(profile.inputs, g.inputs, g.rows, 'input', t), ...scoreFeatures(profile.outputs, g.outputs, g.rows, 'output', t)]
        : [];
      const status = features.reduce<DriftStatus>(
        (worst, f) => (RANK[f.status] > RANK[worst] ? f.status : worst),
        g.rows < t.minSamples || features.length === 0 ? 'too_few_samples' : 'ok',
      );
      out.push({
        model: g.view.model,
        version: g.view.version,
        profile: profile ? { source: profile.source, created_at: profile.created_at, samples: profile.samples } : null,
        window_seconds: this.#opts.windowMs / 1000,
        samples: g.rows,
        min_samples: t.minSamples,
        thresholds: { psi_warning: t.psiWarning, psi_critical: t.psiCritical, z_warning: t.zWarning, z_critical: t.zCritical },
        status,
        workers: g.workers,
        features,
      });
    }
    return out.sort((a, b) => a.model.localeCompare(b.model) || a.version - b.version);
  }

  async #profile(url: string, view: TrackerView): Promise<DriftProfile | undefined> {
    const key = `${view.model}@${view.version}#${view.profile_id}`;
    const hit = this.#profiles.get(key);
    if (hit) return hit;
    try {
      const res = await fetch(`${url}/v1/drift/profile/${encodeURIComponent(view.model)}/${view.version}`, {
        signal: AbortSignal.timeout(this.#opts.timeoutMs),
      });
      if (!res.ok) throw new Error(`answered ${res.status}`);
      const p = (await res.json()) as DriftProfile;
      if (this.#profiles.size > 1000) this.#profiles.clear();
      this.#profiles.set(key, p);
      return p;
    } catch (err) {
      this.#log.warn('could not read a reference profile', { model: view.model, version: view.version, err: { message: (err as Error).message } });
      return undefined;
    }
  }
}
