import { InferrerError } from './errors.ts';

/**
 * Reads a whole stream into one Buffer, refusing more than `limit` bytes (BODY_TOO_LARGE as soon as the
 * limit is crossed, without reading the rest).
 */
export function readStream(stream: NodeJS.ReadableStream & { destroy?: () => void }, limit: number, declared?: number): Promise<Buffer> {
  if (declared !== undefined && declared > limit) {
    return Promise.reject(tooLarge(limit, declared));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err?: unknown): void => {
      if (done) return;
      done = true;
      stream.removeListener('data', onData);
      stream.removeListener('end', onEnd);
      stream.removeListener('error', onError);
      stream.removeListener('aborted', onAborted);
      if (err) reject(err);
      else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        stream.pause();
        finish(tooLarge(limit, size));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => finish();
    const onError = (err: Error): void => finish(new InferrerError('INVALID_REQUEST', `the request body could not be read: ${err.message}`));
    const onAborted = (): void => finish(new InferrerError('INVALID_REQUEST', 'the client closed the connection before the body was complete'));
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.on('aborted', onAborted);
  });
}

function tooLarge(limit: number, got: number): InferrerError {
  return new InferrerError('BODY_TOO_LARGE', `the request body is larger than the limit of ${limit} bytes`, { limit, got });
}

/** JSON.parse with INVALID_JSON naming where it broke. */
export function parseJson(buf: Buffer | string): unknown {
  const text = typeof buf === 'string' ? buf : buf.toString('utf8');
  if (text.length === 0) throw new InferrerError('INVALID_JSON', 'the body is empty; send a JSON object');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InferrerError('INVALID_JSON', `the body is not valid JSON: ${(err as Error).message}`);
  }
}
