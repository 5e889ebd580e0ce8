/**
 * Frames: many small requests (or answers) in one HTTP body, between the Inferrer and a modelhost.
 *
 * Each frame is a 4-byte big-endian length, a JSON header of that many bytes, then `header.length` body
 * bytes. The Inferrer sends a modelhost the predictions that arrived together for one model as one
 * framed request; the modelhost answers with one frame per prediction, in the order they finish, each
 * header naming its request by index (`i`). One HTTP exchange per group instead of one per request:
 * the load balancer and the modelhost's HTTP layer are paid once for the group.
 */
import { InferrerError } from './errors.ts';

export const FRAMES_CONTENT_TYPE = 'application/vnd.inferrer.frames';

export interface FrameHeader {
  /** Body bytes that follow the header. */
  length: number;
  [key: string]: unknown;
}

export interface FrameLimits {
  maxHeaderBytes: number;
  maxBodyBytes: number;
}

export const DEFAULT_FRAME_LIMITS: FrameLimits = { maxHeaderBytes: 65536, maxBodyBytes: 64 * 2 ** 20 };

/** The most requests one group may carry (the Inferrer's GROUP_MAX_REQUESTS is capped at it). */
export const MAX_GROUP_MEMBERS = 256;

/** One frame as one buffer: length prefix, JSON header (`length` is set here, to the body's size), body. */
export function encodeFrame(header: Record<string, unknown>, body: Buffer | string): Buffer {
  const bodyBytes = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  header.length = bodyBytes;
  const json = JSON.stringify(header);
  const jsonBytes = Buffer.byteLength(json);
  const out = Buffer.allocUnsafe(4 + jsonBytes + bodyBytes);
  out.writeUInt32BE(jsonBytes, 0);
  out.write(json, 4, 'utf8');
  if (typeof body === 'string') out.write(body, 4 + jsonBytes, 'utf8');
  else body.copy(out, 4 + jsonBytes);
  return out;
}

/**
 * Reads frames from chunks as they arrive (a streamed answer) and hands each complete one to `onFrame`.
 * A malformed frame throws INVALID_REQUEST; `partial` says whether the chunks so far end mid-frame.
 */
export class FrameReader {
  readonly #limits: FrameLimits;
  readonly #onFrame: (header: FrameHeader, body: Buffer) => void;
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** The header of the frame whose body is being read. */
  #header: FrameHeader | undefined;
  #headerBytes = -1;

  constructor(onFrame: (header: FrameHeader, body: Buffer) => void, limits: FrameLimits = DEFAULT_FRAME_LIMITS) {
    this.#onFrame = onFrame;
    this.#limits = limits;
  }

  get partial(): boolean {
    return this.#buffered > 0 || this.#header !== undefined || this.#headerBytes >= 0;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    for (;;) {
      if (this.#headerBytes < 0) {
        if (this.#buffered < 4) return;
        this.#headerBytes = this.#take(4).readUInt32BE(0);
        if (this.#headerBytes === 0 || this.#headerBytes > this.#limits.maxHeaderBytes) {
          throw new InferrerError('INVALID_REQUEST', `a frame header must be 1 to ${this.#limits.maxHeaderBytes} bytes (got ${this.#headerBytes})`);
        }
      }
      if (!this.#header) {
        if (this.#buffered < this.#headerBytes) return;
        this.#header = parseHeader(this.#take(this.#headerBytes), this.#limits.maxBodyBytes);
      }
      if (this.#buffered < this.#header.length) return;
      const header = this.#header;
      const body = this.#take(header.length);
      this.#header = undefined;
      this.#headerBytes = -1;
      this.#onFrame(header, body);
    }
  }

  /** The next `n` buffered bytes, as one buffer (a slice where they lie in one chunk). */
  #take(n: number): Buffer {
    this.#buffered -= n;
    const first = this.#chunks[0];
    if (n === 0) return Buffer.alloc(0);
    if (first!.length === n) {
      this.#chunks.shift();
      return first!;
    }
    if (first!.length > n) {
      this.#chunks[0] = first!.subarray(n);
      return first!.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const c = this.#chunks[0]!;
      const k = Math.min(c.length, n - at);
      c.copy(out, at, 0, k);
      at += k;
      if (k === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(k);
    }
    return out;
  }
}

/** Every frame in a whole body; the body must end on a frame boundary. */
export function decodeFrames(body: Buffer, limits: FrameLimits = DEFAULT_FRAME_LIMITS): { header: FrameHeader; body: Buffer }[] {
  const out: { header: FrameHeader; body: Buffer }[] = [];
  const reader = new FrameReader((header, b) => out.push({ header, body: b }), limits);
  reader.push(body);
  if (reader.partial) throw new InferrerError('INVALID_REQUEST', 'the framed body ends in the middle of a frame');
  return out;
}

function parseHeader(bytes: Buffer, maxBodyBytes: number): FrameHeader {
  let header: unknown;
  try {
    header = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new InferrerError('INVALID_REQUEST', `a frame header is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    throw new InferrerError('INVALID_REQUEST', 'a frame header must be a JSON object');
  const length = (header as { length?: unknown }).length;
  if (typeof length !== 'number' || !Number.isInteger(length) || length < 0 || length > maxBodyBytes) {
    throw new InferrerError('INVALID_REQUEST', `a frame header's length must be an integer from 0 to ${maxBodyBytes}`);
  }
  return header as FrameHeader;
}
