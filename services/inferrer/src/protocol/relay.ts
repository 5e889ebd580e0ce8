/** Copies a modelhost answer to the client: status, the headers that matter, the body as it streams. */
import type { ServerResponse } from 'node:http';
import type { UpstreamResponse } from '../upstream.ts';

const PASS_HEADERS = [
  'x-modelhost-id',
  'x-inferrer-batch',
  'x-inferrer-cache',
  'x-inferrer-model-version',
  'server-timing',
  'inference-header-content-length',
  'content-encoding',
  'vary',
];

/** Answers up to this size are read whole and written with one call; larger ones stream. */
const SMALL_ANSWER = 65536;

/**
 * Writes the answer with `extra` headers added (request id, security headers) and returns the headers it
 * wrote (for the access line) and the body bytes.
 */
export async function relay(
  up: UpstreamResponse,
  res: ServerResponse,
  extra: Record<string, string>,
): Promise<{ bytes: number; headers: Record<string, string> }> {
  const headers: Record<string, string> = Object.assign({ 'content-type': String(up.headers['content-type'] ?? 'application/json') }, extra);
  for (const h of PASS_HEADERS) {
    const v = up.headers[h];
    if (typeof v === 'string') headers[h] = v;
  }
  if (up.bytes) {
    headers['content-length'] = String(up.bytes.length);
    res.writeHead(up.status, headers);
    res.end(up.bytes);
    return { bytes: up.bytes.length, headers };
  }
  const length = up.headers['content-length'];
  if (typeof length === 'string' && Number(length) <= SMALL_ANSWER) {
    const buf = Buffer.from(await up.body.arrayBuffer());
    headers['content-length'] = String(buf.length);
    res.writeHead(up.status, headers);
    res.end(buf);
    return { bytes: buf.length, headers };
  }
  if (typeof length === 'string') headers['content-length'] = length;
  res.writeHead(up.status, headers);
  let bytes = 0;
  for await (const chunk of up.body) {
    bytes += (chunk as Buffer).length;
    if (res.destroyed) break;
    // A client that went away never drains: stop waiting when its connection closes.
    if (!res.write(chunk)) await new Promise((r) => res.once('drain', r).once('close', r));
  }
  res.end();
  return { bytes, headers };
}
