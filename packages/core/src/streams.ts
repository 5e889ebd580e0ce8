import { checkJsonDepth } from './codecs/json-text.ts';
import { InferrerError } from './errors.ts';

/**
 * Reads a whole stream into one Buffer, refusing more than `limit` bytes (BODY_TOO_LARGE as soon as the
 * limit is crossed, without reading the rest).
 */
export function readStream(stream: NodeJS.ReadableStream & { destroy?: () => void }, limit: number, declared?: number): Promise<Buffer> {
  if (declared !== undefined && declared > limit) {
    return Promise.reject(tooLarge(limit, declared));
  }
  return new Promise(
    (resolve, reject) =>
      void new BodyReader(stream, limit, ({ chunks, size }) => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)), reject),
  );
}

/**
 * A whole body as the chunks it arrived in (slices of the socket's reads), not joined: for a body that is
 * only passed on. Joining allocates and copies the body again, and on a service that passes hundreds of
 * megabytes a second the allocations alone, counted by V8 as external memory, start a full collection
 * every few tens of megabytes.
 */
export function readStreamChunks(
  stream: NodeJS.ReadableStream & { destroy?: () => void },
  limit: number,
  declared?: number,
): Promise<{ chunks: Buffer[]; length: number }> {
  if (declared !== undefined && declared > limit) {
    return Promise.reject(tooLarge(limit, declared));
  }
  return new Promise((resolve, reject) => void new BodyReader(stream, limit, ({ chunks, size }) => resolve({ chunks, length: size }), reject));
}

/**
 * Bodies declared at least this long are read into separately allocated parts (readBodyParts): the size
 * from which a modelhost decodes JSON in a codec process (OFF_THREAD_JSON_BYTES), which takes the parts
 * without their being joined. A shorter body is parsed where it is read and would be joined at once: read
 * as parts it cost a third allocation and copy of its bytes (a ResNet-50 image as v2 JSON is 2.9 MB).
 */
export const PARTED_BODY_BYTES = 4 * 1024 * 1024;
/** The size of those parts (the last one is cut to what is left). */
const PART_BYTES = 1024 * 1024;

/**
 * Reads a whole body as parts. A body declared at least PARTED_BODY_BYTES long is copied, as it arrives,
 * into parts of 1 MiB that each own their memory: no single large copy or allocation happens at the end
 * (a 64 MB Buffer.concat holds the thread for tens of milliseconds, more with page faults on a busy
 * machine), and the parts can move to another thread without a copy. Memory grows only with what has
 * arrived. Other bodies come back as one part, read as readStream reads them.
 */
export async function readBodyParts(stream: NodeJS.ReadableStream & { destroy?: () => void }, limit: number, declared?: number): Promise<Buffer[]> {
  if (declared === undefined || declared < PARTED_BODY_BYTES) return [await readStream(stream, limit, declared)];
  if (declared > limit) throw tooLarge(limit, declared);
  return new Promise((resolve, reject) => void new PartsReader(stream, declared, resolve, reject));
}

/** Joins body parts into one Buffer (no copy for one part). */
export function joinParts(parts: readonly Buffer[]): Buffer {
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/**
 * One body being read, to its end or to a refusal. A class with bound handlers rather than closures: it
 * runs for every request, and each named closure costs a property definition under the TypeScript loader.
 */
abstract class BodyListener<T> {
  protected readonly stream: NodeJS.ReadableStream;
  readonly #resolve: (body: T) => void;
  readonly #reject: (e: unknown) => void;
  #done = false;
  readonly #onData = this.data.bind(this);
  readonly #onEnd = this.#end.bind(this);
  readonly #onError = this.#error.bind(this);
  readonly #onAborted = this.#aborted.bind(this);

  constructor(stream: NodeJS.ReadableStream, resolve: (body: T) => void, reject: (e: unknown) => void) {
    this.stream = stream;
    this.#resolve = resolve;
    this.#reject = reject;
    stream.on('data', this.#onData);
    stream.on('end', this.#onEnd);
    stream.on('error', this.#onError);
    stream.on('aborted', this.#onAborted);
  }

  /** Takes one chunk; may refuse the body with `refuse`. */
  protected abstract data(chunk: Buffer): void;
  /** The body once its stream has ended, or why it is refused. */
  protected abstract whole(): T | InferrerError;

  /** Stops reading (the rest stays unread) and answers with `err`. */
  protected refuse(err: InferrerError): void {
    this.stream.pause();
    this.#finish(err);
  }

  #finish(err?: unknown): void {
    if (this.#done) return;
    this.#done = true;
    const stream = this.stream;
    stream.removeListener('data', this.#onData);
    stream.removeListener('end', this.#onEnd);
    stream.removeListener('error', this.#onError);
    stream.removeListener('aborted', this.#onAborted);
    if (err) {
      this.#reject(err);
      return;
    }
    const body = this.whole();
    if (body instanceof InferrerError) this.#reject(body);
    else this.#resolve(body);
  }

  #end(): void {
    this.#finish();
  }

  #error(err: Error): void {
    this.#finish(new InferrerError('INVALID_REQUEST', `the request body could not be read: ${err.message}`));
  }

  #aborted(): void {
    this.#finish(new InferrerError('INVALID_REQUEST', 'the client closed the connection before the body was complete'));
  }
}

/** A body of a declared length, copied into owned parts as it arrives. */
class PartsReader extends BodyListener<Buffer[]> {
  readonly #declared: number;
  readonly #parts: Buffer[] = [];
  #size = 0;

  constructor(stream: NodeJS.ReadableStream, declared: number, resolve: (b: Buffer[]) => void, reject: (e: unknown) => void) {
    super(stream, resolve, reject);
    this.#declared = declared;
  }

  protected data(chunk: Buffer): void {
    if (this.#size + chunk.length > this.#declared) {
      this.refuse(new InferrerError('INVALID_REQUEST', `the request body is longer than the ${this.#declared} bytes its Content-Length says`));
      return;
    }
    let at = 0;
    while (at < chunk.length) {
      const inPart = this.#size % PART_BYTES;
      if (inPart === 0) this.#parts.push(Buffer.allocUnsafeSlow(Math.min(PART_BYTES, this.#declared - this.#size)));
      const part = this.#parts[this.#parts.length - 1]!;
      const n = chunk.copy(part, inPart, at, Math.min(chunk.length, at + PART_BYTES - inPart));
      at += n;
      this.#size += n;
    }
  }

  protected whole(): Buffer[] | InferrerError {
    if (this.#size !== this.#declared)
      return new InferrerError('INVALID_REQUEST', `the request body has ${this.#size} bytes, not the ${this.#declared} its Content-Length says`);
    return this.#parts;
  }
}

/** A body up to a limit, kept as the chunks it arrived in. */
class BodyReader extends BodyListener<{ chunks: Buffer[]; size: number }> {
  readonly #limit: number;
  readonly #chunks: Buffer[] = [];
  #size = 0;

  constructor(stream: NodeJS.ReadableStream, limit: number, resolve: (body: { chunks: Buffer[]; size: number }) => void, reject: (e: unknown) => void) {
    super(stream, resolve, reject);
    this.#limit = limit;
  }

  protected data(chunk: Buffer): void {
    this.#size += chunk.length;
    if (this.#size > this.#limit) {
      this.refuse(tooLarge(this.#limit, this.#size));
      return;
    }
    this.#chunks.push(chunk);
  }

  protected whole(): { chunks: Buffer[]; size: number } {
    return { chunks: this.#chunks, size: this.#size };
  }
}

function tooLarge(limit: number, got: number): InferrerError {
  return new InferrerError('BODY_TOO_LARGE', `the request body is larger than the limit of ${limit} bytes`, { limit, got });
}

/**
 * JSON.parse with INVALID_JSON naming where it broke, and INVALID_REQUEST for text nested deeper than
 * MAX_JSON_DEPTH (what comes back may be walked recursively: String(), JSON.stringify).
 */
export function parseJson(buf: Buffer | string): unknown {
  const text = typeof buf === 'string' ? buf : buf.toString('utf8');
  if (text.length === 0) throw new InferrerError('INVALID_JSON', 'the body is empty; send a JSON object');
  checkJsonDepth(text);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InferrerError('INVALID_JSON', `the body is not valid JSON: ${(err as Error).message}`);
  }
}
