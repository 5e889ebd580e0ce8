/**
 * Where a model runs, for its metadata: the workers that have it loaded now (asked through the metrics
 * service, which knows every modelhost) and how placement spreads it (this Inferrer's replica keys).
 */
import type { MetricsClient, LoadedVersion } from './metrics-client.ts';
import type { Placement, PlacementView } from './placement.ts';

export interface Whereabouts {
  /** Each loaded version on each worker; absent when the metrics service is not configured or did not answer. */
  loaded_on?: LoadedVersion[];
  /** Placement of the model's predictions by this Inferrer; absent before its first prediction, or with PLACEMENT=false. */
  placement?: PlacementView;
}

export async function whereabouts(metrics: MetricsClient, placement: Placement, name: string): Promise<Whereabouts> {
  const loaded = metrics.configured ? await metrics.loadedOn(name).catch(() => undefined) : undefined;
  const view = placement.view(name);
  return { ...(loaded ? { loaded_on: loaded.loaded_on } : {}), ...(view ? { placement: view } : {}) };
}
