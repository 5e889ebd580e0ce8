/**
 * Answers nobody reads do not stay in the Inferrer's memory, as over HTTP (protocol/relay.ts). HTTP/2 lets
 * a client hold a call's answer by never opening its receive window (SETTINGS_INITIAL_WINDOW_SIZE 0, or
 * never reading): the whole answer then waits in the stream's buffer, 50 calls of 1.4 MB held 100 MB for
 * as long as their client liked. Once a call's status is sent, its stream is watched while any of its
 * answer is still unsent; when none of it goes for BODY_TIMEOUT_MS, the stream is reset (RST_STREAM
 * CANCEL) and what it held is let go. One shared timer checks every answer still being written, and runs
 * only while there are some.
 */
import http2 from 'node:http2';
import type { Logger } from '@inferrer/telemetry';

/** What is used of a call's HTTP/2 stream. */
export type AnswerStream = Pick<http2.Http2Stream, 'closed' | 'destroyed' | 'writableLength' | 'close'>;

/** An answer still being written. */
interface Draining {
  stream: AnswerStream;
  method: string;
  client: string;
  /** Bytes still unsent when last seen, and when that last went down. */
  waiting: number;
  progressed: number;
}

const TICK_MS = 250;

export class AnswerGuard {
  readonly #stallMs: number;
  readonly #log: Logger;
  readonly #draining = new Set<Draining>();
  #timer: NodeJS.Timeout | undefined;

  /** Cuts an answer none of which went for `stallMs` (BODY_TIMEOUT_MS). */
  constructor(stallMs: number, logger: Logger) {
    this.#stallMs = stallMs;
    this.#log = logger.child({ module: 'answers' });
  }

  /** Watches the answer of a call whose status was just sent, while any of it is unsent. */
  watch(stream: AnswerStream, method: string, client: string): void {
    if (stream.closed || stream.destroyed || stream.writableLength === 0) return;
    // No listeners per call: the tick drops answers that are out (cheap on the prediction path).
    this.#draining.add({ stream, method, client, waiting: stream.writableLength, progressed: performance.now() });
    this.#timer ??= setInterval(() => this.#tick(), TICK_MS).unref();
  }

  #tick(): void {
    const now = performance.now();
    for (const d of this.#draining) {
      const left = d.stream.writableLength;
      if (d.stream.closed || d.stream.destroyed || left === 0) this.#draining.delete(d);
      else if (left < d.waiting) {
        d.waiting = left;
        d.progressed = now;
      } else if (now - d.progressed >= this.#stallMs) {
        this.#draining.delete(d);
        this.#log.info('answer cut: its client took none of it for BODY_TIMEOUT_MS; the stream was reset', {
          method: d.method,
          client: d.client,
          unsentBytes: left,
          stallMs: this.#stallMs,
        });
        d.stream.close(http2.constants.NGHTTP2_CANCEL);
      }
    }
    if (this.#draining.size === 0 && this.#timer) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}
