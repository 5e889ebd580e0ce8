/**
 * Writing files safely, for every writer on the shared volume (model store, job store, uploads).
 *
 * - writeAtomic: a small file written to `<file>.<uuid>.tmp`, synced, then renamed over `file`; readers see
 *   the old text or the new, never half of it; on any failure (a full volume) the temporary file is removed.
 * - bodyToFile: a request body streamed into a file with a byte limit. The limit is enforced while the body
 *   arrives; a failure (too large, disk full, client gone) destroys only our side of the pipe, so the rest
 *   of the body is drained and the client reads the error answer, not a reset.
 */
import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { PassThrough, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InferrerError, storageError } from './errors.ts';

export async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.${randomUUID()}.tmp`;
  try {
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Writes the body to `file`; resolves with its size. `tooLarge` builds the error for an oversized body. */
export async function bodyToFile(req: IncomingMessage, file: string, maxBytes: number, tooLarge: (got?: number) => InferrerError): Promise<number> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge(declared);
  let size = 0;
  let complete = false;
  req.once('end', () => (complete = true));
  const limiter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      size += chunk.length;
      cb(size > maxBytes ? tooLarge() : null, chunk);
    },
  });
  const source = new PassThrough();
  req.pipe(source);
  // A client that hangs up mid-body ends the pipeline too (pipe() alone would leave it waiting).
  req.once('error', (err) => source.destroy(err));
  req.once('close', () => {
    if (!complete) source.destroy(new Error('the client closed the connection'));
  });
  try {
    await pipeline(source, limiter, createWriteStream(file));
  } catch (err) {
    req.unpipe(source);
    req.resume();
    const e = storageError(err);
    if (e instanceof InferrerError) throw e;
    throw new InferrerError('INVALID_REQUEST', 'the upload was interrupted before it was complete');
  }
  if (!complete || (Number.isFinite(declared) && size !== declared))
    throw new InferrerError('INVALID_REQUEST', 'the upload was interrupted before it was complete');
  return size;
}
