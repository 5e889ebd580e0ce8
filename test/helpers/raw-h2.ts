/**
 * An HTTP/2 client written frame by frame over a TCP socket, for what node:http2's client will not do: open
 * more streams than the server's SETTINGS_MAX_CONCURRENT_STREAMS (node queues them), or open a stream after
 * the server's GOAWAY (node closes the session). It sends request headers as HPACK literals without
 * indexing (RFC 7541 §6.2.2, no Huffman), so it needs no header table; it does not decode the server's
 * headers, only counts them, and keeps each stream's DATA, its END_STREAM and its RST_STREAM code. It acks
 * the server's SETTINGS and PINGs and never sends WINDOW_UPDATE (answers in the tests are small).
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';

const DATA = 0x0;
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const PING = 0x6;
const GOAWAY = 0x7;
const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** What the server sent on one stream. */
export interface RawStream {
  /** HEADERS frames received (the answer's headers, then its trailers). */
  headers: number;
  data: Buffer[];
  /** The server ended the stream (END_STREAM). */
  ended: boolean;
  /** The error code of the server's RST_STREAM, if it reset the stream. */
  rst: number | undefined;
}

function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** One string of a header block: 7-bit length, no Huffman (the tests' names and values are short). */
function hpackString(s: string): Buffer {
  const bytes = Buffer.from(s, 'latin1');
  if (bytes.length >= 127) throw new Error(`header string too long for this encoder: ${s}`);
  return Buffer.concat([Buffer.from([bytes.length]), bytes]);
}

/** A header block of literals without indexing, each with a new name (first byte 0). */
function headerBlock(headers: [string, string][]): Buffer {
  return Buffer.concat(headers.flatMap(([name, value]) => [Buffer.from([0]), hpackString(name), hpackString(value)]));
}

export class RawH2 {
  readonly socket: net.Socket;
  readonly streams = new Map<number, RawStream>();
  /** GOAWAY frames received: the last stream id the server says it processed, and the error code. */
  readonly goaways: { lastStreamId: number; code: number }[] = [];
  /** The server's first SETTINGS (identifier → value). */
  readonly settings: Promise<Map<number, number>>;
  /** Resolves when the connection closes. */
  readonly closed: Promise<void>;
  readonly #events = new EventEmitter();
  #buffered = Buffer.alloc(0);
  #nextId = 1;

  constructor(host: string, port: number) {
    this.socket = net.connect({ host, port });
    this.socket.on('error', () => undefined);
    this.socket.write(Buffer.concat([PREFACE, frame(SETTINGS, 0, 0)]));
    this.socket.on('data', (d: Buffer) => this.#read(d));
    this.closed = new Promise((resolve) => this.socket.once('close', () => resolve()));
    this.settings = new Promise((resolve) => this.#events.once('settings', resolve));
    this.socket.once('close', () => this.#events.emit('change'));
  }

  /**
   * Opens the next stream: a gRPC call's HEADERS to `path`, then `body` as DATA (if any); END_STREAM on the
   * last frame when `end`. Returns the stream id.
   */
  open(path: string, body: Buffer | undefined, end: boolean): number {
    const id = this.#nextId;
    this.#nextId += 2;
    this.streams.set(id, { headers: 0, data: [], ended: false, rst: undefined });
    const block = headerBlock([
      [':method', 'POST'],
      [':scheme', 'http'],
      [':path', path],
      [':authority', 'localhost'],
      ['content-type', 'application/grpc'],
      ['te', 'trailers'],
    ]);
    this.socket.write(frame(HEADERS, END_HEADERS | (end && !body ? END_STREAM : 0), id, block));
    if (body) this.send(id, body, end);
    return id;
  }

  /** Sends `body` on stream `id` as one DATA frame. */
  send(id: number, body: Buffer, end: boolean): void {
    this.socket.write(frame(DATA, end ? END_STREAM : 0, id, body));
  }

  /** Resolves when `check` holds (tested after each frame received), or rejects after `ms`. */
  until(what: string, check: () => boolean, ms = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const test = (): void => {
        if (!check()) return;
        clearTimeout(timer);
        this.#events.off('change', test);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#events.off('change', test);
        reject(new Error(`timed out waiting for ${what}`));
      }, ms);
      this.#events.on('change', test);
      test();
    });
  }

  destroy(): void {
    this.socket.destroy();
  }

  #read(d: Buffer): void {
    this.#buffered = Buffer.concat([this.#buffered, d]);
    while (this.#buffered.length >= 9) {
      const length = this.#buffered.readUIntBE(0, 3);
      if (this.#buffered.length < 9 + length) break;
      const type = this.#buffered[3]!;
      const flags = this.#buffered[4]!;
      const id = this.#buffered.readUInt32BE(5) & 0x7fffffff;
      let payload = this.#buffered.subarray(9, 9 + length);
      this.#buffered = this.#buffered.subarray(9 + length);
      if ((type === DATA || type === HEADERS) && flags & PADDED) payload = payload.subarray(1, payload.length - payload[0]!);
      const stream = this.streams.get(id);
      if (type === SETTINGS && !(flags & ACK)) {
        const values = new Map<number, number>();
        for (let i = 0; i + 6 <= payload.length; i += 6) values.set(payload.readUInt16BE(i), payload.readUInt32BE(i + 2));
        this.socket.write(frame(SETTINGS, ACK, 0));
        this.#events.emit('settings', values);
      } else if (type === PING && !(flags & ACK)) this.socket.write(frame(PING, ACK, 0, payload));
      else if (type === GOAWAY) this.goaways.push({ lastStreamId: payload.readUInt32BE(0) & 0x7fffffff, code: payload.readUInt32BE(4) });
      else if (stream && type === DATA) stream.data.push(Buffer.from(payload));
      else if (stream && type === HEADERS) stream.headers++;
      else if (stream && type === RST_STREAM) stream.rst = payload.readUInt32BE(0);
      if (stream && (type === DATA || type === HEADERS) && flags & END_STREAM) stream.ended = true;
      this.#events.emit('change');
    }
  }
}
