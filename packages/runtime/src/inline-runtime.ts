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
 *
 * A model created with `shareGraph` (its config's `shared_graph`) gets no session of its own when its float
 * weights can be taken out (shared-graph.ts): the session of its template, created once for every model of
 * that structure and these options, runs it with its weights fed as inputs, and lives while one of them is
 * loaded.
 */
import { closeSync, fstatSync, openSync } from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { ModelSignature, NamedTensors } from '@inferrer/core';
import { specs } from './ort-specs.mjs';
import { type RuntimeThread, SessionCreateError } from './session-threads.ts';
import { Layout, readAt, splitWeights } from './shared-graph.ts';

/** Largest file read into the kept buffer (an inline model's file is at most 8 MB); a larger one goes by path. */
const MAX_READ_BYTES = 8 * 1024 * 1024;

/** Free slots a template keeps for the next loads of its structure (the memory of more is given back). */
const MAX_FREE_SLOTS = 2;
/** Templates of one file size a load compares its file's bytes with before parsing it. */
const MAX_LAYOUTS_PER_SIZE = 8;

/** One model's weights: a buffer for them all, its views, and the tensors fed with its runs. */
interface Slot {
  /** Resizable: resize(0) gives its memory back at once, where a dropped buffer waits for V8's collector. */
  buffer: ArrayBuffer & { resize(length: number): void };
  bytes: Map<string, Uint8Array>;
  tensors: Record<string, ort.Tensor>;
}

/** A template's session, shared by the models of its structure. */
interface Template {
  key: string;
  /** Its file size and options, for the layouts a load compares its file with. */
  scope: string;
  session: ort.InferenceSession;
  /** Its inputs that the models' weights fill, in order, and their sizes. */
  weights: { name: string; dims: number[]; length: number }[];
  inputs: Set<string>;
  signature: ModelSignature;
  members: number;
  free: Slot[];
  layout: Layout | undefined;
  /** It has run (the runtime's lazy initialisation is done: a new member needs no warm-up run). */
  ran: boolean;
}

/** A model run by its template's session with the weights in its slot. */
interface Member {
  template: Template;
  slot: Slot;
}

export class InlineRuntime implements RuntimeThread {
  sessions = 0;
  readonly #sessions = new Map<number, ort.InferenceSession>();
  readonly #members = new Map<number, Member>();
  readonly #templates = new Map<string, Template>();
  /** Templates with a layout, by file size and options. */
  readonly #layouts = new Map<string, Template[]>();
  /** Structures whose template ONNX Runtime refused (their models get sessions of their own). */
  readonly #unshareable = new Set<string>();
  #nextSid = 1;
  /** The buffer model files are read into, grown to the largest read so far. */
  #buffer: Buffer | undefined;
  /** Creations one after another: the buffer is read by the one in progress until its session exists. */
  #creating: Promise<unknown> = Promise.resolve();

  /** ONNX Runtime sessions held here now (a template's counts once, whatever models share it). */
  get held(): number {
    return this.#sessions.size + this.#templates.size;
  }

  /** Template sessions held now. */
  get templates(): number {
    return this.#templates.size;
  }

  /** Models run by a template's session now. */
  get shared(): number {
    return this.#members.size;
  }

  /**
   * Creates a session for the model in `file` (or these bytes); with `shareGraph`, runs it on its template's
   * session instead when it has weights to take out (`shared` says whether it does).
   */
  create(file: string | Uint8Array, options: object, shareGraph = false): Promise<{ sid: number; signature: ModelSignature; shared: boolean; warm: boolean }> {
    const created = this.#creating.then(() => this.#create(file, options, shareGraph));
    this.#creating = created.catch(() => undefined);
    return created;
  }

  async #create(
    file: string | Uint8Array,
    options: ort.InferenceSession.SessionOptions,
    shareGraph: boolean,
  ): Promise<{ sid: number; signature: ModelSignature; shared: boolean; warm: boolean }> {
    let session: ort.InferenceSession;
    const folder = typeof file === 'string' ? path.dirname(file) : undefined;
    let fd: number | undefined;
    try {
      if (typeof file === 'string') fd = openSync(file, 'r');
      const size = fd === undefined ? (file as Uint8Array).length : fstatSync(fd).size;
      let member = shareGraph && fd !== undefined ? this.#fill(fd, size, options) : undefined;
      const bytes = member ? undefined : fd === undefined ? (file as Uint8Array) : this.#read(fd, size);
      // A file read from its path was compared with the known layouts already (#fill).
      if (bytes !== undefined && shareGraph) member = await this.#share(bytes, options, fd === undefined);
      if (member) {
        const sid = this.#nextSid++;
        this.#members.set(sid, member);
        return { sid, signature: member.template.signature, shared: true, warm: member.template.ran };
      }
      if (bytes === undefined) session = await ort.InferenceSession.create(file as string, options);
      else session = await ort.InferenceSession.create(bytes, fromBytes(options, folder));
    } catch (err) {
      throw new SessionCreateError(String((err as Error)?.message ?? err));
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    const sid = this.#nextSid++;
    this.#sessions.set(sid, session);
    return { sid, signature: signatureOf(session), shared: false, warm: false };
  }

  /**
   * The model in the file open as `fd` when it fits a known layout of its size: its weights read from the
   * file straight into a slot, the file neither read whole nor parsed. Undefined: none fits.
   */
  #fill(fd: number, size: number, options: ort.InferenceSession.SessionOptions): Member | undefined {
    for (const template of this.#layouts.get(JSON.stringify([size, options])) ?? []) {
      const layout = template.layout!;
      if (!layout.fitsFile(fd, size, this.#scratch(layout.longest))) continue;
      const slot = this.#slot(template);
      for (const [i, w] of template.weights.entries()) {
        const into = slot.bytes.get(w.name)!;
        if (readAt(fd, into, layout.places[i]!.at) !== into.length) {
          this.#giveBack(template, slot);
          return undefined;
        }
      }
      template.members++;
      return { template, slot };
    }
    return undefined;
  }

  /**
   * The model's weights in a slot of its template (whose session is created if this is the first model of
   * its structure); undefined: nothing to share. With `byLayout`, a file that fits a known layout is not
   * parsed (a file read from its path was compared with them by #fill already).
   */
  async #share(bytes: Uint8Array, options: ort.InferenceSession.SessionOptions, byLayout: boolean): Promise<Member | undefined> {
    const scope = JSON.stringify([bytes.length, options]);
    for (const template of byLayout ? (this.#layouts.get(scope) ?? []) : []) {
      if (!template.layout!.fits(bytes)) continue;
      const slot = this.#slot(template);
      for (const [i, w] of template.weights.entries()) {
        const place = template.layout!.places[i]!;
        slot.bytes.get(w.name)!.set(bytes.subarray(place.at, place.at + place.length));
      }
      template.members++;
      return { template, slot };
    }
    const split = splitWeights(bytes);
    if (!split) return undefined;
    const key = JSON.stringify([split.structure, options]);
    let template = this.#templates.get(key);
    if (!template) {
      if (this.#unshareable.has(key)) return undefined;
      let session: ort.InferenceSession;
      try {
        session = await ort.InferenceSession.create(split.template, fromBytes(options, undefined));
      } catch {
        // A graph whose operators need some of these weights as constants: the model gets a session of its own.
        this.#unshareable.add(key);
        if (this.#unshareable.size > 1000) this.#unshareable.delete(this.#unshareable.values().next().value!);
        return undefined;
      }
      const inputs = new Set(split.weights.map((w) => w.name));
      const all = signatureOf(session);
      template = {
        key,
        scope,
        session,
        weights: split.weights.map((w) => ({ name: w.name, dims: w.dims, length: w.bytes.byteLength })),
        inputs,
        signature: { inputs: all.inputs.filter((i) => !inputs.has(i.name)), outputs: all.outputs },
        members: 0,
        free: [],
        layout: Layout.of(bytes, split),
        ran: false,
      };
      this.#templates.set(key, template);
      if (template.layout) {
        const same = this.#layouts.get(scope) ?? [];
        if (same.length < MAX_LAYOUTS_PER_SIZE) this.#layouts.set(scope, [...same, template]);
      }
    }
    const slot = this.#slot(template);
    for (const w of split.weights) slot.bytes.get(w.name)!.set(w.bytes);
    template.members++;
    return { template, slot };
  }

  /** A free slot of the template's, else a new one. */
  #slot(template: Template): Slot {
    const free = template.free.pop();
    if (free) return free;
    const length = template.weights.reduce((a, w) => a + w.length, 0);
    const buffer = new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => Slot['buffer'])(length, { maxByteLength: length });
    const slot: Slot = { buffer, bytes: new Map(), tensors: {} };
    let at = 0;
    for (const w of template.weights) {
      // Each weight's length is a multiple of 4: every view is aligned for its floats.
      slot.bytes.set(w.name, new Uint8Array(buffer, at, w.length));
      slot.tensors[w.name] = new ort.Tensor('float32', new Float32Array(buffer, at, w.length / 4), w.dims);
      at += w.length;
    }
    return slot;
  }

  /** A slot no model holds: kept for the template's next model, or its memory given back when it keeps enough. */
  #giveBack(template: Template, slot: Slot): void {
    if (template.free.length < MAX_FREE_SLOTS) template.free.push(slot);
    else giveBack(slot);
  }

  /** The file's bytes in the kept buffer, or undefined when it is too large to keep (read from its path then). */
  #read(fd: number, size: number): Uint8Array | undefined {
    if (size > MAX_READ_BYTES) return undefined;
    const buffer = this.#scratch(size);
    return buffer.subarray(0, readAt(fd, buffer.subarray(0, size), 0));
  }

  /** The kept buffer, grown to at least `size` bytes (at most MAX_READ_BYTES, which `size` never passes). */
  #scratch(size: number): Buffer {
    if (this.#buffer === undefined || this.#buffer.length < size) {
      this.#buffer = Buffer.allocUnsafeSlow(Math.max(size, Math.min(MAX_READ_BYTES, Math.max(2 * (this.#buffer?.length ?? 0), 64 * 1024))));
    }
    return this.#buffer;
  }

  async run(sid: number, feeds: NamedTensors, fetches: string[] | undefined): Promise<{ outputs: NamedTensors; computeMs: number } | { error: string }> {
    try {
      const member = this.#members.get(sid);
      const session = member?.template.session ?? this.#sessions.get(sid);
      if (!session) throw new Error(`no session ${sid} on the inline runtime`);
      const input: Record<string, ort.Tensor> = member ? { ...member.slot.tensors } : {};
      for (const name in feeds) {
        // A shared model's weights are its own, never the request's.
        if (member?.template.inputs.has(name)) continue;
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
      if (member) member.template.ran = true;
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
    const member = this.#members.get(sid);
    if (member) {
      this.#members.delete(sid);
      const template = member.template;
      this.#giveBack(template, member.slot);
      if (--template.members === 0) {
        for (const slot of template.free.splice(0)) giveBack(slot);
        this.#templates.delete(template.key);
        const same = (this.#layouts.get(template.scope) ?? []).filter((t) => t !== template);
        if (same.length > 0) this.#layouts.set(template.scope, same);
        else this.#layouts.delete(template.scope);
        await template.session.release();
      }
      return true;
    }
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

/** Options for a session created from bytes: ONNX Runtime copies them, and external data is read from `folder`. */
function fromBytes(options: ort.InferenceSession.SessionOptions, folder: string | undefined): ort.InferenceSession.SessionOptions {
  return {
    ...options,
    extra: {
      ...options.extra,
      session: {
        ...(options.extra?.session as Record<string, unknown> | undefined),
        use_ort_model_bytes_directly: '0',
        ...(folder !== undefined ? { model_external_initializers_file_folder_path: folder } : {}),
      },
    },
  };
}

/** A slot's memory back to the system now (where resizable buffers exist; else when V8 collects it). */
function giveBack(slot: Slot): void {
  if (typeof slot.buffer.resize === 'function') slot.buffer.resize(0);
}

const signatureOf = (session: ort.InferenceSession): ModelSignature => ({ inputs: specs(session.inputMetadata), outputs: specs(session.outputMetadata) });

/** The process's one inline runtime. */
export const inlineRuntime = new InlineRuntime();
