/**
 * Receiving a model upload: multipart (field `path` as in FRACTAL, or `file`, plus an optional JSON
 * `metadata` field) or a raw body (`Content-Type: application/octet-stream`). The file is streamed into a
 * staging folder of the store with the size limit enforced while it arrives; a truncated, oversized or
 * refused upload removes its staging folder and leaves the store as it was.
 */
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Request, Response } from 'express';
import multer from 'multer';
import { InferrerError, bodyToFile, parseJson, storageError } from '@inferrer/core';
import type { Management } from '../management.ts';

export interface ReceivedUpload {
  file: string;
  metadata: unknown;
}

const FILE_FIELDS = new Set(['path', 'file', 'model']);
/** Optional STAC item with the MLM extension, as a file or a text field. */
const STAC_FIELD = 'stac';
const STAC_UPLOAD = 'stac-upload.json';
const MAX_STAC_BYTES = 1024 * 1024;

export async function receiveUpload(req: Request, res: Response, management: Management, name: string, maxBytes: number): Promise<ReceivedUpload> {
  const type = String(req.headers['content-type'] ?? '');
  const staging = await management.staging(name);
  try {
    if (type.startsWith('multipart/form-data')) return await receiveMultipart(req, res, staging, maxBytes);
    if (type.startsWith('application/octet-stream')) return await receiveRaw(req, staging, maxBytes);
    throw new InferrerError(
      'UNSUPPORTED_MEDIA_TYPE',
      `upload the model as multipart/form-data (field "path" or "file") or as application/octet-stream, not ${JSON.stringify(type || 'no content type')}`,
      {
        got: type,
      },
    );
  } catch (err) {
    req.resume();
    await management.discard(staging);
    throw storageError(err);
  }
}

async function receiveRaw(req: Request, staging: string, maxBytes: number): Promise<ReceivedUpload> {
  const file = path.join(staging, 'model.onnx');
  const size = await bodyToFile(req, file, maxBytes, () => tooLarge(maxBytes));
  if (size === 0) throw new InferrerError('INVALID_MODEL', 'the uploaded file is empty');
  const meta = req.headers['x-model-metadata'];
  return { file, metadata: typeof meta === 'string' ? metadataJson(meta, 'the X-Model-Metadata header') : undefined };
}

/** The upload's metadata JSON; a parse error names the field it came in (and curl's `;` trap). */
function metadataJson(text: string, where: string): unknown {
  try {
    return parseJson(text);
  } catch (err) {
    if ((err as InferrerError).code !== 'INVALID_JSON') throw err;
    const detail = (err as Error).message.replace(/^the body is not valid JSON: /, '');
    const hint = where.startsWith('the form field') ? " (curl cuts -F values at ';': send the JSON from a file with -F 'metadata=<metadata.json')" : '';
    throw new InferrerError('INVALID_JSON', `${where} is not valid JSON: ${detail}${hint}`, { field: 'metadata' });
  }
}

function receiveMultipart(req: Request, res: Response, staging: string, maxBytes: number): Promise<ReceivedUpload> {
  const upload = multer({
    storage: multer.diskStorage({ destination: staging, filename: (_req, file, cb) => cb(null, file.fieldname === STAC_FIELD ? STAC_UPLOAD : 'model.onnx') }),
    limits: { fileSize: maxBytes, files: 2, fields: 8, parts: 10, fieldSize: 1024 * 1024 },
    fileFilter: (_req, file, cb) => {
      if (FILE_FIELDS.has(file.fieldname) || file.fieldname === STAC_FIELD) cb(null, true);
      else cb(new InferrerError('INVALID_REQUEST', `unexpected file field "${file.fieldname.slice(0, 64)}": send the model as "path" or "file"`));
    },
  }).any();
  return new Promise((resolve, reject) => {
    upload(req, res, async (err: unknown) => {
      if (err) return reject(multerError(err, maxBytes));
      const all = (req.files as Express.Multer.File[] | undefined) ?? [];
      const files = all.filter((f) => f.fieldname !== STAC_FIELD);
      if (files.length > 1) return reject(new InferrerError('INVALID_REQUEST', 'the form has more than one model file'));
      let stac: unknown;
      try {
        stac = await readStacField(
          all.find((f) => f.fieldname === STAC_FIELD),
          (req.body ?? {}) as Record<string, unknown>,
        );
      } catch (e) {
        return reject(e);
      }
      if (files.length === 0) return reject(new InferrerError('INVALID_REQUEST', 'no model file in the form: send it as the field "path" (or "file")'));
      const file = files[0]!;
      if (file.size === 0) return reject(new InferrerError('INVALID_MODEL', 'the uploaded file is empty'));
      const body = (req.body ?? {}) as Record<string, unknown>;
      let metadata: unknown;
      try {
        if (typeof body.metadata === 'string') metadata = metadataJson(body.metadata, 'the form field "metadata"');
        else if (typeof body.model_description === 'string' || typeof body.description === 'string') {
          metadata = { description: String(body.model_description ?? body.description) };
        }
      } catch (e) {
        return reject(e);
      }
      if (stac !== undefined) metadata = { ...((metadata as Record<string, unknown> | undefined) ?? {}), stac };
      resolve({ file: file.path, metadata });
    });
  });
}

/** The STAC item (MLM extension) of an upload: a file or text field "stac", read and removed from staging. */
async function readStacField(file: Express.Multer.File | undefined, body: Record<string, unknown>): Promise<unknown> {
  let text: string | undefined;
  if (file) {
    if (file.size > MAX_STAC_BYTES)
      throw new InferrerError('INVALID_STAC_ITEM', `the STAC item is larger than ${MAX_STAC_BYTES} bytes`, { limit: MAX_STAC_BYTES });
    text = await readFile(file.path, 'utf8');
    await rm(file.path, { force: true });
  } else if (typeof body.stac === 'string') {
    text = body.stac;
  }
  if (text === undefined) return undefined;
  try {
    return parseJson(text);
  } catch (err) {
    if ((err as InferrerError).code !== 'INVALID_JSON') throw err;
    throw new InferrerError('INVALID_STAC_ITEM', 'the STAC item (field "stac") is not valid JSON');
  }
}

function tooLarge(maxBytes: number): InferrerError {
  return new InferrerError('MODEL_TOO_LARGE', `the model is larger than the limit of ${maxBytes} bytes (MAX_MODEL_BYTES)`, { limit: maxBytes });
}

function multerError(err: unknown, maxBytes: number): InferrerError {
  const stored = storageError(err);
  if (stored instanceof InferrerError) return stored;
  const code = (err as { code?: string }).code;
  if (code === 'LIMIT_FILE_SIZE') return tooLarge(maxBytes);
  if (code?.startsWith('LIMIT_')) return new InferrerError('INVALID_REQUEST', `the form breaks a limit: ${(err as Error).message}`, { limit: code });
  return new InferrerError('INVALID_REQUEST', `the multipart body could not be read: ${(err as Error).message}`);
}
