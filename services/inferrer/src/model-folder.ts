/**
 * A folder of models given at start (IMPORT_MODELS_FROM, Triton's model-repository habit) is imported into
 * the store through the same validated upload path as `PUT /api/v1/models/{name}`. Two layouts:
 *
 *   <dir>/<name>.onnx                      one version; <dir>/<name>.json: its upload metadata
 *   <dir>/<name>/<version>/model.onnx      Triton's layout, versions in numeric order;
 *   <dir>/<name>/metadata.json             upload metadata for every version (description, config, labels)
 *
 * A file whose SHA-256 the store already has for that model is skipped, so restarting with the same folder
 * (a GitOps checkout, a ConfigMap, a mounted volume) changes nothing; a changed file becomes a new version.
 * A model that fails validation is logged and skipped; the others are imported.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { type InferrerError, parseJson } from '@inferrer/core';
import type { Logger } from '@inferrer/telemetry';
import type { Management } from './management.ts';

export interface FolderModel {
  name: string;
  /** Model files in the order they become versions. */
  files: string[];
  metadata: string | undefined;
}

/** The models a folder holds, in name order. */
export async function scanModelFolder(dir: string): Promise<FolderModel[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const out: FolderModel[] = [];
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (e.name.startsWith('.')) continue;
    const p = path.join(dir, e.name);
    if (e.isFile() && e.name.toLowerCase().endsWith('.onnx')) {
      const name = e.name.slice(0, -5);
      const meta = path.join(dir, `${name}.json`);
      out.push({ name, files: [p], metadata: (await exists(meta)) ? meta : undefined });
    } else if (e.isDirectory()) {
      const versions = (await readdir(p, { withFileTypes: true })).filter((v) => v.isDirectory() && /^[1-9]\d{0,8}$/.test(v.name)).map((v) => Number(v.name));
      const files: string[] = [];
      for (const v of versions.sort((a, b) => a - b)) {
        const f = path.join(p, String(v), 'model.onnx');
        if (await exists(f)) files.push(f);
      }
      if (files.length === 0) continue;
      const meta = path.join(p, 'metadata.json');
      out.push({ name: e.name, files, metadata: (await exists(meta)) ? meta : undefined });
    }
  }
  return out;
}

export interface FolderImport {
  imported: { name: string; version: number; file: string }[];
  unchanged: number;
  failed: { name: string; file: string; code: string; message: string }[];
}

export async function importModelFolder(dir: string, management: Management, logger: Logger): Promise<FolderImport> {
  const log = logger.child({ module: 'model-folder' });
  const result: FolderImport = { imported: [], unchanged: 0, failed: [] };
  for (const m of await scanModelFolder(dir)) {
    let known = new Set<string>();
    try {
      known = new Set((await management.describe(m.name)).version_details.map((v) => v.sha256));
    } catch (err) {
      if ((err as InferrerError).code !== 'MODEL_NOT_FOUND') {
        result.failed.push({ name: m.name, file: m.files[0]!, code: (err as InferrerError).code ?? 'INTERNAL', message: (err as Error).message });
        continue;
      }
    }
    for (const file of m.files) {
      const rel = path.relative(dir, file);
      try {
        if (known.has(await sha256(file))) {
          result.unchanged++;
          continue;
        }
        const metadata = m.metadata === undefined ? undefined : parseJson(await readFile(m.metadata));
        const staged = path.join(await management.staging(m.name), 'model.onnx');
        await copyFile(file, staged);
        const r = await management.upload(m.name, staged, metadata);
        result.imported.push({ name: r.model.name, version: r.version, file: rel });
        log.info('model imported', { model: r.model.name, version: r.version, file: rel });
      } catch (err) {
        const e = err as InferrerError;
        result.failed.push({ name: m.name, file: rel, code: e.code ?? 'INTERNAL', message: e.message });
        log.warn('model not imported', { model: m.name, file: rel, err: { code: e.code, message: e.message } });
        break;
      }
    }
  }
  return result;
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

function sha256(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file)
      .on('data', (c) => h.update(c))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}
