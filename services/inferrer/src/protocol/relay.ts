/** Copies a modelhost answer to the client: status, the headers that matter, the body read whole. */
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

/** Answers up to this size fit the socket's buffers: they never wait in the Inferrer's memory for a client. */
const KERNEL_TAKES = 65536;

/**
 * Writes the answer with `extra` headers added (request id, security headers) and returns the headers it
 * wrote (for the access line) and the body bytes. A client that takes none of its answer for `stallMs`
 * (BODY_TIMEOUT_MS) is cut, so an answer nobody reads does not stay in memory.
 */
export async function relay(
  up: UpstreamResponse,
  res: ServerResponse,
  extra: Record<string, string>,
  stallMs: number,
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
    if (up.bytes.length > KERNEL_TAKES) cutIfStalled(res, stallMs);
    return { bytes: up.bytes.length, headers };
  }
  // Read whole before any of it goes to the client, as request bodies are before they go upstream: a
  // client that reads its answer slowly, or never, then holds only its own connection, not one to the
  // load balancer (two such clients with 12 MB answers held UPSTREAM_CONNECTIONS=2, and every other
  // prediction waited for its deadline).
  const buf = Buffer.from(await up.body.arrayBuffer());
  headers['content-length'] = String(buf.length);
  res.writeHead(up.status, headers);
  res.end(buf);
  if (buf.length > KERNEL_TAKES) cutIfStalled(res, stallMs);
  return { bytes: buf.length, headers };
}

/**
 * Destroys the connection when an answer still being written makes no progress for `stallMs`: the bytes
 * waiting for the socket (its writableLength) did not go down.
 */
function cutIfStalled(res: ServerResponse, stallMs: number): void {
  const socket = res.socket;
  if (!socket || res.writableFinished) return;
  let waiting = socket.writableLength;
  const timer = setInterval(() => {
    if (res.writableFinished || socket.destroyed) clearInterval(timer);
    else if (socket.writableLength >= waiting) {
      clearInterval(timer);
      socket.destroy();
    } else waiting = socket.writableLength;
  }, stallMs);
  timer.unref();
  res.once('close', () => clearInterval(timer));
}
