/**
 * Log output that costs one write per turn of the event loop instead of one per line. Writing to a pipe
 * or a file is synchronous in Node (a system call per `write`), and at thousands of requests a second the
 * access lines alone would make that the busiest thing a service does. Lines written in one turn are
 * joined and written together when the turn ends (setImmediate), or at once past `maxBytes`; what is
 * still buffered when the process exits (normally, by an uncaught exception or a signal handler's
 * `process.exit`) is written synchronously first. Only a SIGKILL can lose lines: those of its last turn.
 */
import { writeSync } from 'node:fs';
import { Writable } from 'node:stream';

export class LineBatcher extends Writable {
  readonly #fd: number;
  readonly #maxBytes: number;
  #parts: string[] = [];
  #bytes = 0;
  #scheduled = false;
  /** Bytes the descriptor would not take yet (a non-blocking pipe that is full): written first, next time. */
  #pending: Buffer | undefined;
  #dropped = 0;

  constructor(fd: number, maxBytes = 256 * 1024) {
    super({ decodeStrings: false });
    this.#fd = fd;
    this.#maxBytes = maxBytes;
    process.once('exit', () => this.#flushAtExit());
  }

  override _write(chunk: string | Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    const text = typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    if (this.#pending && this.#bytes > 64 * this.#maxBytes) {
      // The reader has stopped reading: keep memory bounded, drop the newest lines and say so once.
      this.#dropped++;
      if (this.#dropped === 1) this.#parts.push(`{"level":"warn","msg":"log output is not being read; dropping lines"}\n`);
      callback();
      return;
    }
    this.#dropped = 0;
    this.#parts.push(text);
    this.#bytes += text.length;
    if (this.#bytes >= this.#maxBytes && !this.#pending) this.flush();
    else this.#schedule(0);
    callback();
  }

  /** Writes what is buffered now; what the descriptor does not take yet is kept, in order, for the next try. */
  flush(): void {
    this.#scheduled = false;
    let buf = this.#pending;
    if (this.#parts.length > 0) {
      const text = Buffer.from(this.#parts.length === 1 ? this.#parts[0]! : this.#parts.join(''));
      buf = buf ? Buffer.concat([buf, text]) : text;
      this.#parts = [];
      this.#bytes = 0;
    }
    this.#pending = undefined;
    if (!buf) return;
    let at = 0;
    while (at < buf.length) {
      try {
        at += writeSync(this.#fd, buf, at);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
          // A non-blocking pipe that is full: keep the rest and try again shortly.
          this.#pending = buf.subarray(at);
          this.#schedule(5);
        }
        // Anything else (the reader is gone) drops the lines: logging must not take the service down.
        return;
      }
    }
  }

  #schedule(delayMs: number): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    if (delayMs === 0) setImmediate(() => this.flush());
    else setTimeout(() => this.flush(), delayMs).unref();
  }

  /** At exit nothing can wait for a turn: retry a full pipe for up to two seconds. */
  #flushAtExit(): void {
    const end = Date.now() + 2000;
    this.flush();
    while (this.#pending && Date.now() < end) this.flush();
  }
}

let stdout: LineBatcher | undefined;

/** The process's standard output, batched (one per process, shared by every logger and the launcher). */
export function batchedStdout(): LineBatcher {
  stdout ??= new LineBatcher(1);
  return stdout;
}
