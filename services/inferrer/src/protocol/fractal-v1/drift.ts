/**
 * Drift detection routes (FRACTAL v1 envelope): scores from the metrics service, reference profiles
 * attached by upload or computed from sample rows, and captures from live traffic (drift-captures.ts).
 */
import type { Request } from 'express';
import { InferrerError, type ModelSignature, parseJson, parseVersion, readStream } from '@inferrer/core';
import { parseProfile, parseWith, type StoredProfile } from '@inferrer/model-store';
import { z } from 'zod';
import { type DriftCaptures, profileFromSample, profileSummary } from '../../drift-captures.ts';
import type { ExpressRoute } from '../../http/route.ts';
import type { Management } from '../../management.ts';
import type { MetricsClient } from '../../metrics-client.ts';
import { TAGS, json, nameParam, ok, ref, v1Errors, versionParam } from '../openapi-parts.ts';
import { sendV1 } from './routes.ts';

const MAX_PROFILE_BYTES = 32 * 1024 * 1024;
const MAX_CAPTURE_SAMPLES = 1_000_000;

const CaptureSchema = z.object({ samples: z.number().int().min(1).max(MAX_CAPTURE_SAMPLES), version: z.number().int().min(1).optional() }).strict();

export interface DriftRouteDeps {
  management: Management;
  metrics: MetricsClient;
  captures: DriftCaptures;
}

export function driftRoutes({ management, metrics, captures }: DriftRouteDeps): ExpressRoute[] {
  const base = { scope: 'predict', protocol: 'v1' } as const;
  const tags = [TAGS.drift];
  const unavailable = { '503': { description: 'Metrics service unavailable', ...json(ref('V1Error')) } };
  return [
    {
      ...base,
      method: 'GET',
      path: '/api/v1/models/:name/drift',
      summary: 'Drift scores per version and feature over the sliding window, all workers: PSI, z-score, status ok/warning/drift/too_few_samples, samples',
      example: 'curl $B/api/v1/models/iris/drift',
      openapi: { tags, parameters: [nameParam], responses: { ...ok('`drift`: one entry per profiled version with `features`'), ...v1Errors, ...unavailable } },
      handle: async (req, res) => {
        const { record } = await management.version(req.params.name!);
        const body = await metrics.drift(record.name);
        const profiled = record.versions.filter((v) => v.profile).map((v) => v.version);
        res.set('cache-control', 'no-store');
        sendV1(res, 200, {
          model_name: record.name,
          profiled_versions: profiled,
          ...(profiled.length === 0 ? { message: `no version of ${record.name} has a drift profile yet` } : {}),
          drift: body.models,
        });
      },
    },
    {
      ...base,
      method: 'GET',
      path: '/api/v1/models/:name/versions/:version/profile',
      summary: "A version's drift reference profile (per feature: count, mean, std, bin edges and counts)",
      example: 'curl $B/api/v1/models/iris/versions/1/profile',
      openapi: { tags, parameters: [nameParam, versionParam], responses: { ...ok('`profile`'), ...v1Errors } },
      handle: async (req, res) => sendV1(res, 200, await management.profile(req.params.name!, parseVersion(req.params.version))),
    },
    {
      ...base,
      scope: 'admin',
      method: 'PUT',
      path: '/api/v1/models/:name/versions/:version/profile',
      summary: 'Attach a drift reference profile to a version, or sample rows (JSON array, NDJSON, CSV) to compute one from',
      example: `curl -X PUT $B/api/v1/models/iris/versions/1/profile -H 'Content-Type: text/csv' --data-binary @iris.csv`,
      openapi: {
        tags,
        parameters: [nameParam, versionParam],
        requestBody: {
          required: true,
          content: {
            'application/json': {
              schema: {
                oneOf: [
                  {
                    type: 'object',
                    required: ['inputs'],
                    properties: { inputs: { type: 'array', items: { type: 'object' } }, outputs: { type: 'array', items: { type: 'object' } } },
                  },
                  { type: 'array', items: { type: 'array', items: { type: 'number' } } },
                ],
              },
            },
            'application/x-ndjson': { schema: { type: 'string', description: 'One JSON array of numbers per line' } },
            'text/csv': { schema: { type: 'string', description: 'One row of numbers per line; a header line is skipped' } },
          },
        },
        responses: { ...ok('Stored'), ...v1Errors },
      },
      handle: async (req, res) => {
        const version = parseVersion(req.params.version);
        const { record, version: v } = await management.version(req.params.name!, version);
        const profile = await profileFromBody(req, { inputs: v.inputs, outputs: v.outputs });
        const saved = await management.setProfile(record.name, version, profile);
        sendV1(res, 200, {
          message: `drift profile of ${record.name} version ${version} stored (${profile.source}, ${profile.samples} rows)`,
          model_name: saved.model,
          version,
          profile: profileSummary(profile),
        });
      },
    },
    {
      ...base,
      scope: 'admin',
      method: 'POST',
      path: '/api/v1/models/:name/profile/capture',
      summary: 'Capture a drift reference profile from the next N live rows of a version',
      example: `curl -X POST $B/api/v1/models/iris/profile/capture -H 'Content-Type: application/json' -d '{"samples": 1000}'`,
      openapi: {
        tags,
        parameters: [nameParam],
        requestBody: {
          required: true,
          ...json({
            type: 'object',
            required: ['samples'],
            properties: { samples: { type: 'integer', minimum: 1 }, version: { type: 'integer', minimum: 1 } },
          }),
        },
        responses: { '202': { description: 'Capture started', ...json(ref('V1Envelope')) }, ...v1Errors },
      },
      handle: async (req, res) => {
        const body = parseWith(CaptureSchema, parseJson(await readStream(req, 64 * 1024)), 'the capture request');
        const { model, capture } = await management.requestCapture(req.params.name!, body.version, body.samples);
        captures.watch(model);
        sendV1(res, 202, {
          message: `capturing the next ${capture.samples} rows of ${model} version ${capture.version}; GET this route for progress`,
          model_name: model,
          capture,
        });
      },
    },
    {
      ...base,
      method: 'GET',
      path: '/api/v1/models/:name/profile/capture',
      summary: 'Progress of a capture (writes the profile once the workers have enough rows)',
      example: 'curl $B/api/v1/models/iris/profile/capture',
      openapi: { tags, parameters: [nameParam], responses: { ...ok('`capture`, `collected`, `done`'), ...v1Errors } },
      handle: async (req, res) => {
        const status = await captures.check(req.params.name!);
        res.set('cache-control', 'no-store');
        sendV1(res, 200, status);
      },
    },
  ];
}

/** A profile from the body: a profile object, or rows (JSON array, NDJSON, CSV) to compute one from. */
async function profileFromBody(req: Request, sig: ModelSignature): Promise<StoredProfile> {
  const length = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
  const buf = await readStream(req, MAX_PROFILE_BYTES, length);
  const type = String(req.headers['content-type'] ?? 'application/json')
    .split(';')[0]!
    .trim()
    .toLowerCase();
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
    const lines = buf
      .toString('utf8')
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter(Boolean);
    // A header line (anything not a number in it) is skipped.
    if (lines.length && lines[0]!.split(',').some((c) => c.trim() === '' || !Number.isFinite(Number(c)))) lines.shift();
    rows = lines.map((l) => l.split(',').map((c) => Number(c.trim())));
  } else {
    throw new InferrerError(
      'UNSUPPORTED_MEDIA_TYPE',
      `a profile is application/json; sample rows are application/json, application/x-ndjson or text/csv (got ${type.slice(0, 64)})`,
    );
  }
  return profileFromSample(rows, sig);
}
