/**
 * CodecPool: a few codec processes (codec-process.ts) that decode large request bodies and encode large
 * answers, so a 64 MB JSON body (seconds of JSON.parse, number checks and conversion) never holds the
 * thread that answers health checks and small requests. Small bodies stay on the caller's thread, where
 * a round trip would cost more than the work (the caller decides: OFF_THREAD_JSON_BYTES and the rest).
 *
 * Processes rather than threads: where Linux groups the threads of a session for scheduling (autogroup,
 * on by default on desktops and on machines like the one `pnpm start` runs on), seconds of parsing on a
 * thread of the modelhost are charged to the modelhost, and its HTTP thread then waits for the CPU on a busy
 * machine (measured: event-loop delay p99 from 6 ms to 50-70 ms while a thread parsed 64 MB; with a process
 * in its own session, 6 ms). Data moves in parts of 1 MiB, each copied as it arrives, never all at once.
 *
 * Processes start when first needed and stop after a while idle. One that dies fails only the job it was
 * running (a body that needs more memory than it has: BODY_TOO_LARGE).
 */
import { type ChildProcess, fork } from 'node:child_process';
import os from 'node:os';
import {
  InferrerError,
  type ModelSignature,
  type NamedTensors,
  PARTED_BODY_BYTES,
  type V1Decoded,
  type V1EncodeOptions,
  type V2Decoded,
  type V2EncodeOptions,
  type V2Limits,
  type ValueLimits,
  fromWire,
} from '@inferrer/core';
import { Incoming, type Job, type Message, Outgoing, type Result } from './codec-wire.ts';

const PROCESS_MAIN = new URL('./codec-process.ts', import.meta.url);

/**
 * JSON text at least this long is parsed by a codec process (about 25 ms of parsing on this thread, for
 * float32 inputs read straight into typed arrays: packages/core/src/codecs/json-tensor.ts). Shorter text is
 * parsed here: the round trip to a process costs more CPU than the parse (measured on a ResNet-50 image as
 * v2 JSON, 2.9 MB: 27 ms more of the modelhost's CPU per request through a process, and a quarter fewer
 * images/s on two cores), and 25 ms is a short wait for the requests behind it. Bodies this long are
 * also read in parts (readBodyParts), which go to the process without being joined.
 */
export const OFF_THREAD_JSON_BYTES = PARTED_BODY_BYTES;
/** Bodies at least this long (binary tensors included) are decoded by a codec process. */
export const OFF_THREAD_BODY_BYTES = 16 * 1024 * 1024;
/** Answers with at least this many elements written as JSON are encoded by a codec process. */
export const OFF_THREAD_JSON_ELEMENTS = 65_536;

export interface CodecPoolOptions {
  /** Most processes; default: one, or two where there are more than two cores. */
  processes?: number;
  /** A process idle this long stops. */
  idleMs?: number;
  /** V8 heap of each process, MiB (--max-old-space-size); default V8's own. */
  maxHeapMb?: number;
}

interface Pending {
  job: Job;
  out: Outgoing;
  resolve: (r: { result: Result; blobs: Incoming }) => void;
  reject: (e: unknown) => void;
}

interface Codec {
  child: ChildProcess;
  running: (Pending & { id: number; incoming: Incoming }) | undefined;
  idleTimer: NodeJS.Timeout | undefined;
}

export class CodecPool {
  readonly #max: number;
  readonly #idleMs: number;
  readonly #execArgv: string[];
  readonly #codecs = new Set<Codec>();
  readonly #queue: Pending[] = [];
  #nextId = 1;
  #closed = false;

  constructor(opts: CodecPoolOptions = {}) {
    this.#max = Math.max(1, opts.processes ?? (os.availableParallelism() > 2 ? 2 : 1));
    this.#idleMs = opts.idleMs ?? 30_000;
    // The modelhost's own flags (the TypeScript loader) minus any heap size, plus this pool's.
    this.#execArgv = [
      ...process.execArgv.filter((a) => !a.startsWith('--max-old-space-size')),
      ...(opts.maxHeapMb ? [`--max-old-space-size=${opts.maxHeapMb}`] : []),
    ];
  }

  /** Codec processes running now (they start on demand). */
  get processes(): number {
    return this.#codecs.size;
  }

  /** A FRACTAL v1 body (JSON, whole or in parts as readBodyParts reads it) → input tensors. */
  async decodeV1(body: Buffer | readonly Buffer[], sig: ModelSignature, limits?: ValueLimits): Promise<V1Decoded> {
    const out = new Outgoing();
    out.joined(Buffer.isBuffer(body) ? [body] : body);
    const { result, blobs } = await this.#submit({ op: 'decodeV1', sig, limits }, out);
    if (result.op !== 'decodeV1') throw unexpected(result);
    return { ...result.decoded, inputs: blobs.tensors(result.decoded.inputs) };
  }

  /** An Open Inference Protocol infer body (JSON, or JSON + binary tensors) → input tensors, as decodeV2Request. */
  async decodeV2(
    body: Buffer | readonly Buffer[],
    headerLength: number | undefined,
    sig: ModelSignature,
    limits?: V2Limits,
    imageInputs?: ReadonlySet<string>,
  ): Promise<V2Decoded> {
    const out = new Outgoing();
    out.joined(Buffer.isBuffer(body) ? [body] : body);
    const { result, blobs } = await this.#submit({ op: 'decodeV2', headerLength, sig, limits, imageInputs: imageInputs ? [...imageInputs] : undefined }, out);
    if (result.op !== 'decodeV2') throw unexpected(result);
    const { images, ...rest } = result.decoded;
    const decoded: V2Decoded = { ...rest, inputs: blobs.tensors(result.decoded.inputs) };
    if (images) {
      decoded.images = {};
      for (const name in images) decoded.images[name] = images[name]!.map((ref) => blobs.buffer(ref));
    }
    return decoded;
  }

  /** encodeV1Response by a codec process: the JSON text as UTF-8 parts. */
  async encodeV1(outputs: NamedTensors, order: readonly string[], opts: V1EncodeOptions): Promise<Buffer> {
    const out = new Outgoing();
    const { result, blobs } = await this.#submit({ op: 'encodeV1', outputs: out.tensors(outputs), order, opts }, out);
    if (result.op !== 'encodeV1') throw unexpected(result);
    return blobs.buffer(result.text);
  }

  /** encodeV2Response by a codec process: the JSON part as UTF-8 bytes, then the binary outputs. */
  async encodeV2(outputs: NamedTensors, order: readonly string[], opts: V2EncodeOptions): Promise<{ json: Buffer; binary: Buffer[] }> {
    const out = new Outgoing();
    const { result, blobs } = await this.#submit({ op: 'encodeV2', outputs: out.tensors(outputs), order, opts }, out);
    if (result.op !== 'encodeV2') throw unexpected(result);
    return { json: blobs.buffer(result.json), binary: result.binary.map((ref) => blobs.buffer(ref)) };
  }

  /** Stops every codec process; queued and running jobs fail. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const p of this.#queue.splice(0)) p.reject(stopping());
    await Promise.all(
      [...this.#codecs].map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.child.exitCode !== null || c.child.signalCode !== null) return resolve();
            c.child.once('exit', () => resolve());
            hold(c.child, true);
            c.child.kill();
          }),
      ),
    );
  }

  async #submit(job: Job, out: Outgoing): Promise<{ result: Result; blobs: Incoming }> {
    if (this.#closed) throw stopping();
    const r = await new Promise<{ result: Result; blobs: Incoming }>((resolve, reject) => {
      this.#queue.push({ job, out, resolve, reject });
      this.#dispatch();
    });
    if (r.result.op === 'error') {
      const e = fromWire(r.result.error);
      if (r.result.cause) (e as { cause?: unknown }).cause = new Error(r.result.cause);
      throw e;
    }
    return r;
  }

  #dispatch(): void {
    while (this.#queue.length > 0) {
      let codec: Codec | undefined;
      for (const c of this.#codecs) if (!c.running) codec = c;
      if (!codec) {
        if (this.#codecs.size >= this.#max) return;
        codec = this.#start();
      }
      const p = this.#queue.shift()!;
      const id = this.#nextId++;
      if (codec.idleTimer) clearTimeout(codec.idleTimer);
      codec.idleTimer = undefined;
      const running = { ...p, id, incoming: new Incoming() };
      codec.running = running;
      hold(codec.child, true);
      const c = codec;
      const post = (m: Message): Promise<void> =>
        new Promise((resolve, reject) => {
          if (!c.child.connected) return reject(new Error('the codec process is gone'));
          c.child.send(m, undefined, {}, (err) => (err ? reject(err) : resolve()));
        });
      p.out
        .send(id, post)
        .then(() => post({ id, op: 'job', job: p.job }))
        .catch((err: unknown) => {
          if (c.running !== running) return;
          c.running = undefined;
          p.reject(new InferrerError('INTERNAL', `could not hand the request to a codec process: ${(err as Error).message}`, {}, { cause: err }));
          c.child.kill();
        });
    }
  }

  #start(): Codec {
    // Its own session (detached): see the top of this file. It ends when this process does (the IPC
    // channel closes), so it is never left behind.
    const child = fork(PROCESS_MAIN, [], {
      execArgv: this.#execArgv,
      detached: true,
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    hold(child, false);
    const codec: Codec = { child, running: undefined, idleTimer: undefined };
    this.#codecs.add(codec);
    child.on('message', (m: Message) => {
      const r = codec.running;
      if (!r || r.id !== m.id) return;
      if (m.op === 'blobs') r.incoming.sizes(m.sizes);
      else if (m.op === 'part') r.incoming.part(m.blob, m.at, m.data);
      else if (m.op === 'result') {
        codec.running = undefined;
        hold(child, false);
        r.resolve({ result: m.result, blobs: r.incoming });
        this.#idle(codec);
        this.#dispatch();
      }
    });
    const gone = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (!this.#codecs.delete(codec)) return;
      if (codec.idleTimer) clearTimeout(codec.idleTimer);
      const r = codec.running;
      codec.running = undefined;
      if (r) r.reject(died(code, signal));
      if (!this.#closed) this.#dispatch();
    };
    child.on('exit', gone);
    child.on('error', () => gone(null, null));
    return codec;
  }

  #idle(codec: Codec): void {
    codec.idleTimer = setTimeout(() => {
      if (codec.running) return;
      this.#codecs.delete(codec);
      codec.child.kill();
    }, this.#idleMs);
    codec.idleTimer.unref();
  }
}

/** A codec process keeps this one alive only while it works for it. */
function hold(child: ChildProcess, on: boolean): void {
  const channel = (child as unknown as { channel?: { ref(): void; unref(): void } }).channel;
  if (on) {
    child.ref();
    channel?.ref();
  } else {
    child.unref();
    channel?.unref();
  }
}

function died(code: number | null, signal: NodeJS.Signals | null): InferrerError {
  // V8 aborts a process whose heap is full (SIGABRT, or exit code 134).
  if (signal === 'SIGABRT' || code === 134) {
    return new InferrerError(
      'BODY_TOO_LARGE',
      'decoding the request body needed more memory than a codec process has; send it in smaller requests or as binary tensors',
    );
  }
  return new InferrerError('INTERNAL', `a codec process ended during the request (${signal ?? `exit code ${code}`})`);
}

function stopping(): InferrerError {
  return new InferrerError('MODEL_NOT_READY', 'the modelhost is stopping');
}

function unexpected(r: Result): InferrerError {
  return new InferrerError('INTERNAL', `a codec process answered ${r.op} to another job`);
}
