/**
 * Drift reference profiles the Inferrer computes: from sample rows sent by a client, and from captures.
 * Captures: the workers gather the next N live rows of a model version; once they have enough,
 * the profile is computed from their snapshots and stored. A capture is finished by whichever Inferrer looks
 * first: the one that started it polls the metrics service every second, and any GET of the capture checks
 * too (so a restart loses nothing).
 */
import { InferrerError, type ModelSignature } from '@inferrer/core';
import type { StoredProfile } from '@inferrer/model-store';
import { type CaptureSnapshot, profileFromCaptures, profileFromRows, tabularFeatureNames } from '@inferrer/drift';
import type { Logger } from '@inferrer/telemetry';
import type { Management } from './management.ts';
import type { MetricsClient } from './metrics-client.ts';

const POLL_MS = 1000;
const POLL_LIMIT_MS = 24 * 3_600_000;
const MAX_SAMPLE_ROWS = 1_000_000;

export function profileSummary(p: StoredProfile): Record<string, unknown> {
  return { source: p.source, created_at: p.created_at, samples: p.samples, inputs: p.inputs.map((f) => f.name), outputs: p.outputs.map((f) => f.name) };
}

/** A reference profile computed from sample rows (each the model's inputs, in order, as numbers). */
export function profileFromSample(rows: unknown[], sig: ModelSignature): StoredProfile {
  const { names, rowLength, problem } = tabularFeatureNames(sig);
  if (problem) throw new InferrerError('INVALID_PROFILE', `sample rows cannot describe this model: ${problem}`);
  if (rows.length === 0 || rows.length > MAX_SAMPLE_ROWS)
    throw new InferrerError('INVALID_PROFILE', `send 1 to ${MAX_SAMPLE_ROWS} sample rows (got ${rows.length})`);
  const numeric: number[][] = rows.map((row, i) => {
    const flat = Array.isArray(row) ? (row as unknown[]).flat(8) : undefined;
    if (!flat || flat.length !== rowLength || !flat.every((x) => typeof x === 'number' && Number.isFinite(x))) {
      throw new InferrerError('INVALID_PROFILE', `sample row ${i + 1} must be ${rowLength} finite numbers (the model's inputs, in order)`, {
        row: i + 1,
        expected: rowLength,
      });
    }
    return flat as number[];
  });
  return profileFromRows(numeric, names) as StoredProfile;
}

export class DriftCaptures {
  readonly #management: Management;
  readonly #metrics: MetricsClient;
  readonly #log: Logger;
  readonly #polling = new Set<string>();

  constructor(management: Management, metrics: MetricsClient, logger: Logger) {
    this.#management = management;
    this.#metrics = metrics;
    this.#log = logger.child({ module: 'drift' });
  }

  /** The state of a model's capture; writes the profile when the workers have gathered enough rows. */
  async check(name: string): Promise<Record<string, unknown>> {
    const { record } = await this.#management.version(name);
    const capture = record.capture;
    if (!capture) return { capture: null };
    const { captures } = await this.#metrics.captures<CaptureSnapshot & { requested_at: string; modelhost: string }>(record.name, capture.version);
    const mine = captures.filter((c) => c.requested_at === capture.requested_at);
    const rows = mine.reduce((n, c) => n + c.rows, 0);
    if (rows < capture.samples) return { capture, collected: rows, workers: mine.map((c) => ({ modelhost: c.modelhost, rows: c.rows })), done: false };
    const profile = profileFromCaptures(mine) as StoredProfile;
    // Another capture may have been asked for meanwhile; only the one we read gets written.
    const now = (await this.#management.version(record.name, capture.version)).record.capture;
    if (now?.requested_at !== capture.requested_at) return { capture: now ?? null, done: false };
    await this.#management.setProfile(record.name, capture.version, profile);
    this.#log.info('drift profile captured', { model: record.name, version: capture.version, rows });
    return { capture, collected: rows, done: true, profile: profileSummary(profile) };
  }

  /** Polls a capture until it is done, gone, or a day old (one poller per model). */
  watch(name: string): void {
    if (!this.#metrics.configured || this.#polling.has(name)) return;
    this.#polling.add(name);
    const started = Date.now();
    const stop = (): void => {
      clearInterval(timer);
      this.#polling.delete(name);
    };
    const timer = setInterval(() => {
      this.check(name).then(
        (s) => {
          if (s.capture === null || s.done === true || Date.now() - started > POLL_LIMIT_MS) stop();
        },
        (err: InferrerError) => {
          if (err.code === 'MODEL_NOT_FOUND' || err.code === 'VERSION_NOT_FOUND') stop();
        },
      );
    }, POLL_MS);
    timer.unref();
  }
}
