/**
 * Reading request bodies on the Inferrer: declared lengths checked against the limit before anything is
 * read; prediction bodies read whole before they go upstream (so a slow client never holds an upstream
 * connection, see http/body-guard.ts); JSON bodies of management routes parsed with a cap.
 */
import type { IncomingMessage } from 'node:http';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { InferrerError, parseJson, readStream, readStreamChunks } from '@inferrer/core';

/** Bodies from this size on wait to see whether their client is still there before they go upstream. */
const SETTLE_BYTES = 64 * 1024;

/** The declared body length, refusing one over the limit before anything is read. */
export function declaredLength(req: IncomingMessage, limit: number): number | undefined {
  const length = req.headers['content-length'];
  if (length === undefined) return undefined;
  const n = Number(length);
  if (n > limit) throw new InferrerError('BODY_TOO_LARGE', `the request body is larger than the limit of ${limit} bytes`, { limit, got: n });
  return n;
}

/**
 * The whole body, refused as soon as it passes `limit` (or at once when its declared length does).
 *
 * A client that gives up while its body is still on the way (a timeout, a closed tab) closes its socket, and
 * the kernel delivers the rest of the body before the close: the body arrives whole and the close is read a
 * turn or two of the event loop later. Sent on at once, nginx and a modelhost would each receive the whole
 * body of a request nobody waits for (under a flood of such clients, most of the cluster's work). So a large
 * body waits those two turns, and one whose connection has ended by then is REQUEST_CANCELLED here.
 */
export async function wholeBody(req: IncomingMessage, limit: number): Promise<Body> {
  const body = await readStreamChunks(req, limit, declaredLength(req, limit));
  if (body.length >= SETTLE_BYTES) {
    await nextTurn();
    await nextTurn();
    if (req.socket.readableEnded || req.socket.destroyed)
      throw new InferrerError('REQUEST_CANCELLED', 'the client closed its connection before its request could be sent on');
  }
  return body;
}

/**
 * A body read whole, as the chunks it arrived in: it goes upstream as they are (see readStreamChunks for
 * why it is not joined). joined() makes one Buffer of it, for the few that must look inside.
 */
export interface Body {
  chunks: Buffer[];
  length: number;
}

export function joined(body: Body): Buffer {
  return body.chunks.length === 1 ? body.chunks[0]! : Buffer.concat(body.chunks, body.length);
}

/**
 * Whether the client waits for `100 Continue` before it sends its body (Expect: 100-continue). The
 * Inferrer's server handles such requests itself (its checkContinue listener) and says continue once the
 * body is wanted: at once, or for a prediction held at the body gate when it is let through.
 */
export function expectsContinue(req: IncomingMessage): boolean {
  const expect = req.headers.expect;
  return typeof expect === 'string' && expect.toLowerCase() === '100-continue';
}

/**
 * Refuses a body sent with a Content-Encoding on a route that does not inflate one (only v2 infer does):
 * read as it came, a gzip body would be garbage to its parser, and a job's input would be stored as such.
 */
export function refuseCodedBody(req: IncomingMessage): void {
  const coding = req.headers['content-encoding'];
  if (coding === undefined || coding.trim().toLowerCase() === 'identity' || !hasBody(req)) return;
  throw new InferrerError(
    'UNSUPPORTED_MEDIA_TYPE',
    `this route takes no Content-Encoding (got ${JSON.stringify(coding.slice(0, 32))}); send the body as it is`,
    {
      got: coding.slice(0, 32),
      expected: ['identity'],
    },
  );
}

/**
 * Refuses a body framed with a transfer coding besides chunked (`Transfer-Encoding: gzip, chunked`): Node
 * undoes the chunking only, so the rest would be read as if the body were plain.
 */
export function refuseTransferCodings(req: IncomingMessage): void {
  const te = req.headers['transfer-encoding'];
  if (te === undefined) return;
  const codings = te
    .toLowerCase()
    .split(',')
    .map((c) => c.trim());
  if (codings.every((c) => c === 'chunked' || c === 'identity')) return;
  throw new InferrerError(
    'UNSUPPORTED_MEDIA_TYPE',
    `Transfer-Encoding ${JSON.stringify(te.slice(0, 32))} is not supported; send the body chunked or with a Content-Length`,
    {
      got: te.slice(0, 32),
      expected: ['chunked'],
    },
  );
}

/** Whether the request carries a body at all. */
export function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return length !== undefined ? Number(length) > 0 : req.headers['transfer-encoding'] !== undefined;
}

/** A JSON body of a management route, read with a cap (the smaller of `limit` and 1 MiB). */
export async function jsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const length = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
  return parseJson(await readStream(req, Math.min(limit, 1024 * 1024), length));
}

export function isMultipart(req: IncomingMessage): boolean {
  return String(req.headers['content-type'] ?? '').startsWith('multipart/');
}
