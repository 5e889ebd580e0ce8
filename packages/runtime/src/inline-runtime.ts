/**
 * The inline runtime: sessions that live and run on the worker's own thread, for models so small that
 * handing a run to a runtime thread costs more than the run.
 *
 * A runtime thread (session-threads.ts) keeps the event loop free while a model runs, at the price of two
 * messages per run: the inputs posted to the thread, the outputs posted back, each waking a sleeping thread.
 * On the 2-core VMs this was measured on, that round trip and its wake-ups cost more CPU than a whole run
 * of a small MLP (20–140 µs), and a session's creation and release cost three more. With such models'
 * sessions here a cluster served a thousand-model Zipf load at 1.18–1.28 × the rate, for 16–22 % less
 * CPU an answer (bench/README part 9). The price is that a run holds the event loop for its length, so
 * the plan (execution-plan.ts) puts a model here only when its single row is measured under
 * INLINE_RUN_MS, its runs cannot grow with the request's values (no loops, no shapes taken from inputs:
 * the modelhost's inlineRefusal), and the batcher runs it a batch at a time (BatcherOptions.sliceByBatch).
 *
 * onnxruntime-node creates and runs a session synchronously on the calling thread (its promises resolve
 * after the work, in a later turn), so here `create` holds the event loop for the session's creation,
 * about a millisecond for a 1 MB MLP.
 *
 * A model file is read into one buffer kept for the purpose and handed to ONNX Runtime as bytes, rather
 * than by its path. Given the path, ONNX Runtime reads the whole file into a fresh allocation; with the
 * workers' allocator setting (MALLOC_MMAP_THRESHOLD_) a block that size is a new mapping whose every page
 * faults in zeroed, then goes back to the system. The kept buffer's pages fault once: a quarter fewer page
 * faults per load of the bench's MLPs (bench/README part 9). ONNX Runtime parses the bytes into its own
 * structures and never refers to them after creation (`use_ort_model_bytes_directly` off), so creations
 * take turns with the buffer; external data is found in the file's folder, as from the path.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { ModelSignature, NamedTensors } from '@inferrer/core';
import { specs } from './ort-specs.mjs';
import { type RuntimeThread, SessionCreateError } from './session-threads.ts';

/** Largest file read into the kept buffer (an inline model's file is at most 8 MB); a larger one goes by path. */
const MAX_READ_BYTES = 8 * 1024 * 1024;

export class InlineRuntime implements RuntimeThread {
  sessions = 0;
  readonly #sessions = new Map<number, ort.InferenceSession>();
  #nextSid = 1;
  /** The buffer model files are read into, grown to the largest read so far. */
  #buffer: Buffer | undefined;
  /** Creations one after another: the buffer is read by the one in progress until its session exists. */
  #creating: Promise<unknown> = Promise.resolve();

  /** Sessions held here now. */
  get held(): number {
    return this.#sessions.size;
  }

  create(file: string | Uint8Array, options: object): Promise<{ sid: number; signature: ModelSignature }> {
    const created = this.#creating.then(() => this.#create(file, options));
    this.#creating = created.catch(() => undefined);
    return created;
  }

  async #create(file: string | Uint8Array, options: ort.InferenceSession.SessionOptions): Promise<{ sid: number; signature: ModelSignature }> {
    let session: ort.InferenceSession;
    try {
      const bytes = typeof file === 'string' ? this.#read(file) : file;
      if (bytes === undefined) session = await ort.InferenceSession.create(file as string, options);
      else {
        const folder = typeof file === 'string' ? path.dirname(file) : undefined;
        session = await ort.InferenceSession.create(bytes, {
          ...options,
          extra: {
            ...options.extra,
            session: {
              ...(options.extra?.session as Record<string, unknown> | undefined),
              use_ort_model_bytes_directly: '0',
              ...(folder !== undefined ? { model_external_initializers_file_folder_path: folder } : {}),
            },
          },
        });
      }
    } catch (err) {
      throw new SessionCreateError(String((err as Error)?.message ?? err));
    }
    const sid = this.#nextSid++;
    this.#sessions.set(sid, session);
    return { sid, signature: { inputs: specs(session.inputMetadata), outputs: specs(session.outputMetadata) } };
  }

  /** The file's bytes in the kept buffer, or undefined when it is too large to keep (read from its path then). */
  #read(file: string): Uint8Array | undefined {
    const fd = openSync(file, 'r');
    try {
      const size = fstatSync(fd).size;
      if (size > MAX_READ_BYTES) return undefined;
      if (this.#buffer === undefined || this.#buffer.length < size) {
        this.#buffer = Buffer.allocUnsafeSlow(Math.min(MAX_READ_BYTES, Math.max(size, 2 * (this.#buffer?.length ?? 0), 64 * 1024)));
      }
      let at = 0;
      while (at < size) {
        const n = readSync(fd, this.#buffer, at, size - at, at);
        if (n === 0) break;
        at += n;
      }
      return this.#buffer.subarray(0, at);
    } finally {
      closeSync(fd);
    }
  }

  async run(sid: number, feeds: NamedTensors, fetches: string[] | undefined): Promise<{ outputs: NamedTensors; computeMs: number } | { error: string }> {
    try {
      const session = this.#sessions.get(sid);
      if (!session) throw new Error(`no session ${sid} on the inline runtime`);
      const input: Record<string, ort.Tensor> = {};
      for (const name in feeds) {
        const t = feeds[name]!;
        input[name] = new ort.Tensor(t.type as ort.Tensor.Type, t.data as ort.Tensor.DataType, t.dims as number[]);
      }
      // onnxruntime-node runs the session in its own setImmediate, queued as run() is called; one queued just
      // before it marks the run's start, so the time waited for the event loop's turn is not counted as compute.
      let started = performance.now();
      setImmediate(() => {
        started = performance.now();
      });
      const result = fetches ? await session.run(input, fetches) : await session.run(input);
      const computeMs = performance.now() - started;
      const outputs: Record<string, unknown> = {};
      for (const name in result) {
        const t = result[name]!;
        outputs[name] = { type: t.type, dims: Array.from(t.dims), data: t.data };
      }
      return { outputs: outputs as NamedTensors, computeMs };
    } catch (err) {
      return { error: String((err as Error)?.message ?? err) };
    }
  }

  async release(sid: number): Promise<boolean> {
    const session = this.#sessions.get(sid);
    this.#sessions.delete(sid);
    await session?.release();
    return true;
  }

  /** This thread does not restart: it is the worker's. */
  onRestart(): () => void {
    return () => undefined;
  }

  async close(): Promise<void> {
    // Its sessions are released one by one (OnnxSession.dispose).
  }
}

/** The process's one inline runtime. */
export const inlineRuntime = new InlineRuntime();
