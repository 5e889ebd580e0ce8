/**
 * HTTP content codings for inference bodies, as Triton's clients use them (`request_compression_algorithm`
 * and `response_compression_algorithm`: gzip or deflate). A compressed request body is inflated with a cap
 * on its inflated size (a small bomb cannot grow past the body limit); an answer is compressed with the
 * coding the client prefers in Accept-Encoding. With the binary tensor extension the header length always
 * counts the uncompressed JSON, as in Triton.
 */
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { InferrerError } from '../errors.ts';

export type ContentCoding = 'gzip' | 'deflate';

const gunzip = promisify(zlib.gunzip);
const inflate = promisify(zlib.inflate);
const inflateRaw = promisify(zlib.inflateRaw);
const gzip = promisify(zlib.gzip);
const deflate = promisify(zlib.deflate);

/** Content codings accepted on requests and offered on answers. */
export const CONTENT_CODINGS: readonly ContentCoding[] = ['gzip', 'deflate'];

/** A compressed body may inflate to this many times its size (a larger ratio is a bomb, not a tensor)... */
export const MAX_INFLATE_RATIO = 32;
/** ...or to this many bytes whatever its size (small bodies of zeros compress far better). */
export const MIN_INFLATE_BYTES = 1024 * 1024;

/**
 * What a compressed body of `compressedBytes` may inflate to: MAX_INFLATE_RATIO times its size, at least
 * MIN_INFLATE_BYTES, never more than `maxBytes` (the body limit). Capped by the body limit alone, 30 gzip
 * bodies of 64 KB (spaces after a small JSON request) held 3.6 GB of the Inferrer's memory at once: the
 * cap is on what a few bytes of bandwidth can make the server hold.
 */
export function inflateLimit(compressedBytes: number, maxBytes: number): number {
  return Math.min(maxBytes, Math.max(MIN_INFLATE_BYTES, compressedBytes * MAX_INFLATE_RATIO));
}

/**
 * The body with its Content-Encoding undone. `identity` (or none) leaves it as it is; gzip (x-gzip) and
 * deflate (zlib-wrapped, or raw as some clients send it) are inflated to at most `limit` bytes.
 */
export async function decodeContent(body: Buffer, encoding: string | undefined, limit: number): Promise<Buffer> {
  const coding = (encoding ?? '').trim().toLowerCase();
  if (coding === '' || coding === 'identity') return body;
  const opts = { maxOutputLength: limit };
  try {
    if (coding === 'gzip' || coding === 'x-gzip') return await gunzip(body, opts);
    if (coding === 'deflate') {
      // RFC 9110's deflate is the zlib format; a raw deflate stream (no zlib header) is accepted too.
      return (body[0]! & 0x0f) === 8 && ((body[0]! << 8) | body[1]!) % 31 === 0 ? await inflate(body, opts) : await inflateRaw(body, opts);
    }
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new InferrerError(
        'BODY_TOO_LARGE',
        `the request body inflates to more than the limit of ${limit} bytes (${MAX_INFLATE_RATIO} times its compressed size, at least ${MIN_INFLATE_BYTES}, at most the body limit); send it uncompressed`,
        { limit },
      );
    }
    throw new InferrerError('INVALID_REQUEST', `the request body is not valid ${coding} data (Content-Encoding: ${coding})`, { encoding: coding });
  }
  throw new InferrerError(
    'UNSUPPORTED_MEDIA_TYPE',
    `Content-Encoding ${JSON.stringify(coding.slice(0, 32))} is not supported; send gzip, deflate or identity`,
    {
      got: coding.slice(0, 32),
      expected: ['gzip', 'deflate', 'identity'],
    },
  );
}

/** The coding to answer with: the client's preferred of gzip and deflate by Accept-Encoding q-values, else none. */
export function pickCoding(accept: string | undefined): ContentCoding | undefined {
  if (!accept) return undefined;
  let best: ContentCoding | undefined;
  let bestQ = 0;
  let star = 0;
  const q: Partial<Record<string, number>> = {};
  for (const part of accept.split(',').slice(0, 32)) {
    const [token, ...params] = part.trim().toLowerCase().split(';');
    let weight = 1;
    for (const p of params) {
      const m = /^\s*q\s*=\s*([0-9.]+)\s*$/.exec(p);
      if (m) weight = Math.min(1, Number(m[1]) || 0);
    }
    if (token === '*') star = weight;
    else if (token) q[token === 'x-gzip' ? 'gzip' : token] = weight;
  }
  for (const c of CONTENT_CODINGS) {
    const w = q[c] ?? star;
    if (w > bestQ) {
      best = c;
      bestQ = w;
    }
  }
  return best;
}

/** The body compressed with `coding` (the fastest level: answers are made on the request path). */
export function encodeContent(body: Buffer, coding: ContentCoding): Promise<Buffer> {
  const opts = { level: zlib.constants.Z_BEST_SPEED };
  return coding === 'gzip' ? gzip(body, opts) : deflate(body, opts);
}
