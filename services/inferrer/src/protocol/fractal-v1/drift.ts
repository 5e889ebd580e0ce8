/**
 * Drift detection routes (FRACTAL v1 envelope):
 *
 *   GET  /api/v1/models/{name}/drift                      scores per version and feature, from the metrics service
 *   GET  /api/v1/models/{name}/versions/{v}/profile       the version's reference profile
 *   PUT  /api/v1/models/{name}/versions/{v}/profile       a profile (JSON with "inputs"), or sample rows to compute
 *                                                         one from: a JSON array of rows, NDJSON, or CSV
 *   POST /api/v1/models/{name}/profile/capture            {"samples": N, "version"?: v}: the workers gather the
 *                                                         next N live rows; the profile is written when they have
 *   GET  /api/v1/models/{name}/profile/capture            progress of a capture (and finishes it when complete)
 *
 * A capture is finished by whichever Inferrer looks first: the one that started it polls the metrics
 * service every second, and any GET of the capture checks too (so a restart loses nothing).
 */
import { Router, type Request } from 'express';
import { InferrerError, parseJson, parseVersion, readStream, v1Envelope } from '@inferrer/core';
import { parseProfile, parseWith, type StoredProfile } from '@inferrer/model-store';
import { type CaptureSnapshot, profileFromCaptures, profileFromRows, tabularFeatureNames } from '@inferrer/runtime';
import type { Logger } from '@inferrer/telemetry';
import { z } from 'zod';
import type { Management } from '../../management.ts';

const MAX_PROFILE_BYTES = 32 * 1024 * 1024;
const MAX_SAMPLE_ROWS = 1_000_000;
const MAX_CAPTURE_SAMPLES = 1_000_000;
const CAPTURE_POLL_MS = 1000;
const CAPTURE_POLL_LIMIT_MS = 24 * 3_600_000;

const CaptureSchema = z.object({ samples: z.number().int().min(1).max(MAX_CAPTURE_SAMPLES), version: z.number().int().min(1).optional() }).strict();

export interface DriftRouteDeps {
  management: Management;
  metricsUrl: string | undefined;
  logger: Logger;
  timeoutMs?: number;
}

export function driftRoutes(deps: DriftRouteDeps): Router {
  const { management, metricsUrl } = deps;
  const timeoutMs = deps.timeoutMs ?? 5000;
  const log = deps.logger.child({ module: 'drift' });
  const polling = new Set<string>();
  const r = Router();

  const fromMetrics = async <T>(path: string): Promise<T> => {
    if (!metricsUrl) throw new InferrerError('METRICS_UNAVAILABLE', 'no metrics service is configured (set METRICS_URL); drift scores and captures come from it');
    try {
      const up = await fetch(`${metricsUrl}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
      if (!up.ok) throw new Error(`answered ${up.status}`);
      return (await up.json()) as T;
    } catch (err) {
      throw new InferrerError('METRICS_UNAVAILABLE', `the metrics service at ${metricsUrl} did not answer (${(err as Error).message})`, {}, { retryAfter: 5 });
    }
  };

  /** The state of a model's capture; writes the profile when the workers have gathered enough rows. */
  const checkCapture = async (name: string): Promise<Record<string, unknown>> => {
    const { record } = await management.version(name);
    const capture = record.capture;
    if (!capture) return { capture: null };
    const q = `?model=${encodeURIComponent(record.name)}&version=${capture.version}`;
    const { captures } = await fromMetrics<{ captures: (CaptureSnapshot & { requested_at: string; modelhost: string })[] }>(`/api/v1/drift/captures${q}`);
    const mine = captures.filter((c) => c.requested_at === capture.requested_at);
    const rows = mine.reduce((n, c) => n + c.rows, 0);
    if (rows < capture.samples) return { capture, collected: rows, workers: mine.map((c) => ({ modelhost: c.modelhost, rows: c.rows })), done: false };
    const profile = profileFromCaptures(mine) as StoredProfile;
    // Another capture may have been asked for meanwhile; only the one we read gets written.
    const now = (await management.version(record.name, capture.version)).record.capture;
    if (now?.requested_at !== capture.requested_at) return { capture: now ?? null, done: false };
    await management.setProfile(record.name, capture.version, profile);
    log.info('drift profile captured', { model: record.name, version: capture.version, rows });
    return { capture, collected: rows, done: true, profile: summary(profile) };
  };

  const poll = (name: string): void => {
    if (polling.has(name)) return;
    polling.add(name);
    const started = Date.now();
    const timer = setInterval(() => {
      checkCapture(name).then(
        (s) => {
          if (s.capture === null || s.done === true || Date.now() - started > CAPTURE_POLL_LIMIT_MS) stop();
        },
        (err: InferrerError) => {
          if (err.code === 'MODEL_NOT_FOUND' || err.code === 'VERSION_NOT_FOUND') stop();
        },
      );
    }, CAPTURE_POLL_MS);
    timer.unref();
    const stop = (): void => {
      clearInterval(timer);
      polling.delete(name);
    };
  };

  r.get('/api/v1/models/:name/drift', async (req, res) => {
    const { record } = await management.version(req.params.name!);
    const body = await fromMetrics<{ models: unknown[] }>(`/api/v1/drift?model=${encodeURIComponent(record.name)}`);
    const profiled = record.versions.filter((v) => v.profile).map((v) => v.version);
    res.set('cache-control', 'no-store').json(
      v1Envelope(200, {
        model_name: record.name,
        profiled_versions: profiled,
        ...(profiled.length === 0 ? { message: `no version of ${record.name} has a drift profile yet` } : {}),
        drift: body.models,
      }),
    );
  });

  r.get('/api/v1/models/:name/versions/:version/profile', async (req, res) => {
    res.json(v1Envelope(200, await management.profile(req.params.name!, parseVersion(req.params.version))));
  });

  r.put('/api/v1/models/:name/versions/:version/profile', async (req, res) => {
    const version = parseVersion(req.params.version);
    const { record, version: v } = await management.version(req.params.name!, version);
    const profile = await profileFromBody(req, { inputs: v.inputs, outputs: v.outputs });
    const saved = await management.setProfile(record.name, version, profile);
    res.status(200).json(v1Envelope(200, { message: `drift profile of ${record.name} version ${version} stored (${profile.source}, ${profile.samples} rows)`, model_name: saved.model, version, profile: summary(profile) }));
  });

  r.post('/api/v1/models/:name/profile/capture', async (req, res) => {
    const body = parseWith(CaptureSchema, parseJson(await readStream(req, 64 * 1024)), 'the capture request');
    const { model, capture } = await management.requestCapture(req.params.name!, body.version, body.samples);
    if (metricsUrl) poll(model);
    res.status(202).json(v1Envelope(202, { message: `capturing the next ${capture.samples} rows of ${model} version ${capture.version}; GET this route for progress`, model_name: model, capture }));
  });

  r.get('/api/v1/models/:name/profile/capture', async (req, res) => {
    const status = await checkCapture(req.params.name!);
    res.set('cache-control', 'no-store').json(v1Envelope(200, status));
  });

  return r;
}

function summary(p: StoredProfile): Record<string, unknown> {
  return { source: p.source, created_at: p.created_at, samples: p.samples, inputs: p.inputs.map((f) => f.name), outputs: p.outputs.map((f) => f.name) };
}

/** A profile from the body: a profile object, or rows (JSON array, NDJSON, CSV) to compute one from. */
async function profileFromBody(req: Request, sig: Parameters<typeof tabularFeatureNames>[0]): Promise<StoredProfile> {
  const length = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
  const buf = await readStream(req, MAX_PROFILE_BYTES, length);
  const type = String(req.headers['content-type'] ?? 'application/json').split(';')[0]!.trim().toLowerCase();
  let rows: unknown[];
  if (type === 'application/json') {
    const body = parseJson(buf);
    if (body && typeof body === 'object' && !Array.isArray(body)) {
      if ('rows' in body) rows = (body as { rows: unknown[] }).rows;
      else return parseProfile(body, { source: 'upload' });
    } else rows = body as unknown[];
    if (!Array.isArray(rows)) throw new InferrerError('INVALID_PROFILE', 'send a profile object ({"inputs": […]}), a JSON array of rows, or {"rows": […]}');
  } else if (type === 'application/x-ndjson' || type === 'application/jsonl') {
    rows = buf
      .toString('utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .map((l, i) => {
        try {
          return JSON.parse(l) as unknown;
        } catch {
          throw new InferrerError('INVALID_PROFILE', `line ${i + 1} of the NDJSON sample is not JSON`, { line: i + 1 });
        }
      });
  } else if (type === 'text/csv') {
    const lines = buf.toString('utf8').split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
    // A header line (anything not a number in it) is skipped.
    if (lines.length && lines[0]!.split(',').some((c) => c.trim() === '' || !Number.isFinite(Number(c)))) lines.shift();
    rows = lines.map((l) => l.split(',').map((c) => Number(c.trim())));
  } else {
    throw new InferrerError('UNSUPPORTED_MEDIA_TYPE', `a profile is application/json; sample rows are application/json, application/x-ndjson or text/csv (got ${type.slice(0, 64)})`);
  }
  const { names, rowLength, problem } = tabularFeatureNames(sig);
  if (problem) throw new InferrerError('INVALID_PROFILE', `sample rows cannot describe this model: ${problem}`);
  if (rows.length === 0 || rows.length > MAX_SAMPLE_ROWS) throw new InferrerError('INVALID_PROFILE', `send 1 to ${MAX_SAMPLE_ROWS} sample rows (got ${rows.length})`);
  const numeric: number[][] = rows.map((row, i) => {
    const flat = Array.isArray(row) ? (row as unknown[]).flat(8) : undefined;
    if (!flat || flat.length !== rowLength || !flat.every((x) => typeof x === 'number' && Number.isFinite(x))) {
      throw new InferrerError('INVALID_PROFILE', `sample row ${i + 1} must be ${rowLength} finite numbers (the model's inputs, in order)`, { row: i + 1, expected: rowLength });
    }
    return flat as number[];
  });
  return profileFromRows(numeric, names) as StoredProfile;
}
