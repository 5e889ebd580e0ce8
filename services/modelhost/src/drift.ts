/**
 * Live drift statistics in this worker: for every model version with a reference profile, a DriftTracker
 * (running moments and counts on the profile's bins, inputs and outputs); for a version the store asks to
 * capture, a CaptureAccumulator over its next rows. The dataplane calls `inputs` and `outputs` once per request around
 * the run (inputs before it, outputs after); `view` is what GET /v1/drift serves to the metrics service, which sums the workers.
 *
 * Cost on the hot path: a map lookup and, per tracked feature and row, one Welford step and one binary
 * search over at most 65 edges (image channels: at most 4096 sampled pixels per channel and image).
 */
import type { NamedTensors } from '@inferrer/core';
import type { CaptureRequest, DriftConfig, StoredProfile } from '@inferrer/model-store';
import { CaptureAccumulator, type CaptureSnapshot, DriftTracker, type TrackerSnapshot } from '@inferrer/drift';
import type { Logger } from '@inferrer/telemetry';
import type { LoadedModel, ModelRegistry } from './registry.ts';

export interface TrackerView extends TrackerSnapshot {
  model: string;
  version: number;
  /** Identifies the reference: when it changes, counting starts again. */
  profile_id: string;
  started_at: string;
  thresholds: DriftConfig;
}

export interface CaptureView extends CaptureSnapshot {
  model: string;
  version: number;
  requested_at: string;
}

export interface DriftView {
  modelhost: string;
  time: string;
  trackers: TrackerView[];
  captures: CaptureView[];
}

// Starts with the creation time, so the newest reference sorts last.
/** A request's place in the statistics between its inputs and its outputs. */
export interface Pending {
  tracker: DriftTracker | undefined;
  capture: CaptureAccumulator | undefined;
  rows: number;
}

const profileId = (p: StoredProfile): string => `${p.created_at}|${p.source}|${p.samples}`;

export class DriftMonitor {
  readonly #registry: ModelRegistry;
  readonly #id: string;
  readonly #log: Logger;
  readonly #trackers = new Map<string, { id: string; tracker: DriftTracker }>();
  readonly #captures = new Map<string, { requestedAt: string; acc: CaptureAccumulator }>();
  #failures = 0;
  /** Rows counted, for modelhost_drift_rows_total. */
  onRows: ((model: string, version: number, rows: number) => void) | undefined;

  constructor(registry: ModelRegistry, modelhostId: string, logger: Logger) {
    this.#registry = registry;
    this.#id = modelhostId;
    this.#log = logger.child({ module: 'drift' });
  }

  /**
   * Counts a request's inputs, before the run (the batcher hands input buffers to the session's thread).
   * Returns what `outputs` needs to count the answer's outputs, or undefined when nothing is followed.
   * Never throws: drift statistics must not fail a prediction.
   */
  inputs(model: LoadedModel, inputs: NamedTensors, rows: number): Pending | undefined {
    const record = this.#registry.record(model.name);
    if (!record) return undefined;
    const key = `${model.name}@${model.version}`;
    try {
      const v = record.versions.find((x) => x.version === model.version);
      const order = model.signature.inputs.map((s) => s.name);
      let tracker: DriftTracker | undefined;
      let capture: CaptureAccumulator | undefined;
      if (v?.profile) {
        const id = profileId(v.profile);
        let t = this.#trackers.get(key);
        if (!t || t.id !== id) {
          t = { id, tracker: new DriftTracker(v.profile) };
          this.#trackers.set(key, t);
        }
        t.tracker.observeInputs(inputs, order, rows);
        tracker = t.tracker;
        this.onRows?.(model.name, model.version, rows);
      }
      const request: CaptureRequest | undefined = record.capture;
      if (request && request.version === model.version) {
        let c = this.#captures.get(key);
        if (!c || c.requestedAt !== request.requested_at) {
          c = { requestedAt: request.requested_at, acc: new CaptureAccumulator(request.samples) };
          this.#captures.set(key, c);
        }
        if (c.acc.observeInputs(inputs, order, rows)) capture = c.acc;
      }
      return tracker || capture ? { tracker, capture, rows } : undefined;
    } catch (err) {
      this.#failed(model, err);
      return undefined;
    }
  }

  /** Counts the answer's outputs for a request whose inputs were counted. */
  outputs(model: LoadedModel, pending: Pending, outputs: NamedTensors): void {
    try {
      const order = model.signature.outputs.map((s) => s.name);
      pending.tracker?.observeOutputs(outputs, order, pending.rows);
      pending.capture?.observeOutputs(outputs, order, pending.rows);
    } catch (err) {
      this.#failed(model, err);
    }
  }

  #failed(model: LoadedModel, err: unknown): void {
    if (this.#failures++ % 1000 === 0) this.#log.warn('drift statistics failed for a request', { model: model.name, version: model.version, err });
  }

  view(): DriftView {
    const trackers: TrackerView[] = [];
    for (const [key, { id, tracker }] of this.#trackers) {
      const [model, version] = splitKey(key);
      const record = this.#registry.record(model);
      if (!record?.versions.some((v) => v.version === version)) {
        this.#trackers.delete(key);
        continue;
      }
      trackers.push({
        model,
        version,
        profile_id: id,
        started_at: new Date(tracker.startedAt).toISOString(),
        thresholds: record.config.drift ?? {},
        ...tracker.snapshot(),
      });
    }
    const captures: CaptureView[] = [];
    for (const [key, { requestedAt, acc }] of this.#captures) {
      const [model, version] = splitKey(key);
      const capture = this.#registry.record(model)?.capture;
      if (!capture || capture.version !== version || capture.requested_at !== requestedAt) {
        this.#captures.delete(key);
        continue;
      }
      captures.push({ model, version, requested_at: requestedAt, ...acc.snapshot() });
    }
    return { modelhost: this.#id, time: new Date().toISOString(), trackers, captures };
  }
}

function splitKey(key: string): [string, number] {
  const at = key.lastIndexOf('@');
  return [key.slice(0, at), Number(key.slice(at + 1))];
}
