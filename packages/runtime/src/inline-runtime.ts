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
 */
import * as ort from 'onnxruntime-node';
import type { ModelSignature, NamedTensors } from '@inferrer/core';
import { specs } from './ort-specs.mjs';
import { type RuntimeThread, SessionCreateError } from './session-threads.ts';

export class InlineRuntime implements RuntimeThread {
  sessions = 0;
  readonly #sessions = new Map<number, ort.InferenceSession>();
  #nextSid = 1;

  /** Sessions held here now. */
  get held(): number {
    return this.#sessions.size;
  }

  async create(file: string | Uint8Array, options: object): Promise<{ sid: number; signature: ModelSignature }> {
    let session: ort.InferenceSession;
    try {
      // Two calls for the two overloads (a path, or the bytes): neither takes the union.
      session = typeof file === 'string' ? await ort.InferenceSession.create(file, options) : await ort.InferenceSession.create(file, options);
    } catch (err) {
      throw new SessionCreateError(String((err as Error)?.message ?? err));
    }
    const sid = this.#nextSid++;
    this.#sessions.set(sid, session);
    return { sid, signature: { inputs: specs(session.inputMetadata), outputs: specs(session.outputMetadata) } };
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
      const started = performance.now();
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
