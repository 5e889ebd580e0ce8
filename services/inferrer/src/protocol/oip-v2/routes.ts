/**
 * Open Inference Protocol (KServe v2) routes other than infer: health, server and model metadata, model
 * readiness and the model repository extension. Metadata comes from the store; `infer` itself takes the
 * streaming path (infer.ts). Errors are shaped {"error": "…"} by protocol/errors.ts.
 */
import { Router, type Response } from 'express';
import { InferrerError, parseVersion, v2TensorMetadata } from '@inferrer/core';
import type { Management } from '../../management.ts';

export const SERVER_NAME = 'inferrer';
export const SERVER_VERSION = '0.1.0';
export const V2_EXTENSIONS = ['binary_tensor_data', 'model_repository', 'model_repository(unload_dependents)'];

export interface V2Deps {
  management: Management;
  ready: () => Promise<boolean>;
}

export function oipV2Routes(deps: V2Deps): Router {
  const { management } = deps;
  const r = Router();
  const send = (res: Response, status: number, body: unknown): void => void res.status(status).json(body);

  r.get('/v2', (_req, res) => send(res, 200, { name: SERVER_NAME, version: SERVER_VERSION, extensions: V2_EXTENSIONS }));
  r.get('/v2/health/live', (_req, res) => send(res, 200, { live: true }));
  r.get('/v2/health/ready', async (_req, res) => {
    const ok = await deps.ready();
    send(res, ok ? 200 : 503, { ready: ok });
  });

  async function metadata(name: string, rawVersion: string | undefined): Promise<Record<string, unknown>> {
    const m = await management.describe(name);
    const version = rawVersion === undefined ? m.default_version : parseVersion(rawVersion);
    const v = m.version_details.find((x) => x.version === version);
    if (!v) throw new InferrerError('VERSION_NOT_FOUND', `model ${m.name} version ${version} not found`, { model: m.name, version });
    return {
      name: m.name,
      versions: m.versions.map(String),
      platform: 'onnxruntime_onnx',
      inputs: v.inputs.map(v2TensorMetadata),
      outputs: v.outputs.map(v2TensorMetadata),
      parameters: { default_version: String(m.default_version), description: m.description },
      ...(v.stac ? { stac: v.stac } : {}),
    };
  }

  async function readiness(name: string, rawVersion: string | undefined): Promise<{ status: number; body: unknown }> {
    const m = await management.describe(name);
    const version = rawVersion === undefined ? m.default_version : parseVersion(rawVersion);
    if (!m.versions.includes(version)) throw new InferrerError('VERSION_NOT_FOUND', `model ${m.name} version ${version} not found`, { model: m.name, version });
    const ready = m.enabled !== false && (await deps.ready());
    return { status: ready ? 200 : 503, body: { name: m.name, version: String(version), ready } };
  }

  r.get('/v2/models/:model', async (req, res) => send(res, 200, await metadata(req.params.model, undefined)));
  r.get('/v2/models/:model/versions/:version', async (req, res) => send(res, 200, await metadata(req.params.model, req.params.version)));
  r.get('/v2/models/:model/ready', async (req, res) => {
    const { status, body } = await readiness(req.params.model, undefined);
    send(res, status, body);
  });
  r.get('/v2/models/:model/versions/:version/ready', async (req, res) => {
    const { status, body } = await readiness(req.params.model, req.params.version);
    send(res, status, body);
  });

  r.post('/v2/repository/index', async (_req, res) => {
    const all = await management.information();
    const rows = [];
    for (const s of all) {
      const d = await management.describe(s.name);
      rows.push({ name: s.name, version: String(s.default_version), state: d.enabled === false ? 'UNAVAILABLE' : 'READY', reason: d.enabled === false ? 'unloaded' : '' });
    }
    send(res, 200, rows);
  });
  r.post('/v2/repository/models/:model/load', async (req, res) => {
    await management.setEnabled(req.params.model, true);
    send(res, 200, {});
  });
  r.post('/v2/repository/models/:model/unload', async (req, res) => {
    await management.setEnabled(req.params.model, false);
    send(res, 200, {});
  });
  return r;
}
