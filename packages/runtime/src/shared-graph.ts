/**
 * One session per graph for models that differ only in their weights (the model config's `shared_graph`).
 *
 * A thousand models of one customer each are often a handful of architectures trained a thousand times.
 * Creating an ONNX Runtime session for each costs what the session's creation costs (1–3 ms of CPU for the
 * bench's MLPs, 4–6 ms under load) at every load, and each session holds its own copy of the graph, its
 * kernels and its arena beside the weights. Here a model's float weights become inputs of the graph
 * (its "template"), the template's session is created once per worker and structure, and the model's
 * weights are fed to it with every run: loading such a model is reading its weights out of its file, and
 * what it holds is their bytes.
 *
 * The weights live in slots: one buffer per model holding all of its weights, the same size for every model
 * of a structure. A model let go of gives its slot back to its template for the next load of that structure
 * to fill, and one more than it keeps is resized to nothing, which gives its pages back at once. Memory that
 * JavaScript drops is given back only when V8 collects it, and a model that lived for seconds is collected
 * at the next full collection: with plain buffers, one modelhost loading model after model held 51 MB of
 * resident memory for models that counted 17.5, and the budget's watch unloaded models to make up for it
 * (with resizable ones, 66 MB for 56).
 *
 * A file is parsed once per structure. Its layout (where each weight's bytes are, and every byte around them)
 * is kept with the template: a file of the same size whose bytes around the weights are the same has the
 * same graph and its weights at the same places, so its load reads and compares only those bytes, and
 * reads the weights from the file straight into the slot (`Layout.fitsFile`).
 *
 * The price is in the answers' last bits and in the runs: ONNX Runtime cannot prepack weights that arrive
 * as inputs, nor fold them into constants or fuse them with the nodes around them, so a shared model runs
 * as its own session would with `session.disable_prepacking` and no constant folding of its weights (for
 * the MLPs of the tests and bench: bit for bit that session's answers, up to 2.4e-7 from the default one),
 * and batches of rows cost more. That trade is the model's own choice, off unless its config asks.
 */
import { createHash } from 'node:crypto';
import { readSync } from 'node:fs';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

export interface Weight {
  name: string;
  dims: number[];
  /** Its bytes: a view of the file's (not to be kept: the file's buffer is read into again). */
  bytes: Uint8Array;
  /** Where they are in the file; -1 when not held there as raw bytes (float_data, converted). */
  at: number;
}

export interface SplitModel {
  /** The model with its weights turned into graph inputs (their values gone). */
  template: Uint8Array;
  /** Names the structure: equal for two models whose templates are equal. */
  structure: string;
  weights: Weight[];
}

/**
 * The model in `bytes` split into its template and its weights: the main graph's float32 initializers held
 * in the file, scalars included (a bias of four values differs between two models as much as a matrix
 * does). Other types stay in the graph, where shapes and axes are int64. Undefined when it has none, or
 * has external data anywhere. Throws when the bytes do not parse as a model.
 */
export function splitWeights(bytes: Uint8Array): SplitModel | undefined {
  const model = onnx.ModelProto.decode(bytes);
  const graph = model.graph;
  // External data is read from the model's own folder: its template would be that folder's alone.
  if (!graph?.initializer?.length || hasExternalData(graph)) return undefined;
  const listed = new Set((graph.input ?? []).map((i) => i.name));
  const kept: typeof graph.initializer = [];
  const weights: Weight[] = [];
  for (const t of graph.initializer) {
    const w = weightOf(t, bytes);
    if (w === undefined) {
      kept.push(t);
      continue;
    }
    weights.push(w);
    // Models of IR version 3 and older list initializers among the inputs already (as their defaults).
    if (!listed.has(t.name)) {
      graph.input!.push(
        onnx.ValueInfoProto.create({
          name: t.name,
          type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: w.dims.map((d) => ({ dimValue: d })) } } },
        }),
      );
    }
  }
  if (weights.length === 0) return undefined;
  graph.initializer = kept;
  const template = onnx.ModelProto.encode(model).finish();
  return { template, structure: createHash('sha256').update(template).digest('hex'), weights };
}

/** Whether a tensor of the graph or of a subgraph (If, Loop, Scan bodies) is held as external data. */
function hasExternalData(graph: onnxProto.onnx.IGraphProto): boolean {
  if (graph.initializer?.some((t) => t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL)) return true;
  for (const node of graph.node ?? []) {
    for (const a of node.attribute ?? []) {
      if (a.t?.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) return true;
      for (const g of [...(a.g ? [a.g] : []), ...(a.graphs ?? [])]) if (hasExternalData(g)) return true;
    }
  }
  return false;
}

/** A float32 initializer held in the file; undefined when it stays in the graph. */
function weightOf(t: onnxProto.onnx.ITensorProto, file: Uint8Array): Weight | undefined {
  if (t.dataType !== onnx.TensorProto.DataType.FLOAT) return undefined;
  const dims = (t.dims ?? []).map(Number);
  const n = dims.reduce((a, d) => a * d, 1);
  const name = t.name ?? '';
  if (t.rawData && t.rawData.byteLength > 0) {
    if (t.rawData.byteLength !== n * 4) return undefined;
    // protobufjs reads bytes fields of a Buffer as views of it.
    const at = t.rawData.buffer === file.buffer ? t.rawData.byteOffset - file.byteOffset : -1;
    return { name, dims, bytes: t.rawData, at };
  }
  if (t.floatData && t.floatData.length === n && n > 0) return { name, dims, bytes: new Uint8Array(Float32Array.from(t.floatData).buffer), at: -1 };
  return undefined;
}

/** Where a structure's weights are in its files, and the bytes around them. */
export class Layout {
  readonly size: number;
  readonly #around: { at: number; bytes: Buffer }[] = [];
  /** Each weight's place in the file, in the template's weight order. */
  readonly places: { at: number; length: number }[];
  /** The longest run of bytes around the weights. */
  readonly longest: number;

  private constructor(file: Uint8Array, places: { at: number; length: number }[]) {
    this.size = file.length;
    this.places = places;
    const sorted = [...places].sort((a, b) => a.at - b.at);
    let from = 0;
    for (const p of sorted) {
      if (p.at > from) this.#around.push({ at: from, bytes: Buffer.from(file.subarray(from, p.at)) });
      from = p.at + p.length;
    }
    if (from < file.length) this.#around.push({ at: from, bytes: Buffer.from(file.subarray(from)) });
    this.longest = Math.max(0, ...this.#around.map((a) => a.bytes.length));
  }

  /** Undefined when some weight is not held as raw bytes (its files are parsed at every load). */
  static of(file: Uint8Array, split: SplitModel): Layout | undefined {
    if (split.weights.some((w) => w.at < 0)) return undefined;
    return new Layout(
      file,
      split.weights.map((w) => ({ at: w.at, length: w.bytes.byteLength })),
    );
  }

  /** Whether `file` is this structure with its weights at these places: every byte around them the same. */
  fits(file: Uint8Array): boolean {
    if (file.length !== this.size) return false;
    for (const a of this.#around) {
      if (Buffer.compare(a.bytes, file.subarray(a.at, a.at + a.bytes.length)) !== 0) return false;
    }
    return true;
  }

  /**
   * `fits` for a file open as `fd` of `size` bytes, reading only the bytes around the weights (each run in
   * turn into `scratch`, at least `longest` bytes long): its weights can then be read straight to where
   * they are kept, instead of the whole file into memory and the weights copied from there.
   */
  fitsFile(fd: number, size: number, scratch: Buffer): boolean {
    if (size !== this.size) return false;
    for (const a of this.#around) {
      const into = scratch.subarray(0, a.bytes.length);
      if (readAt(fd, into, a.at) !== into.length || !a.bytes.equals(into)) return false;
    }
    return true;
  }
}

/** Reads `into.length` bytes of `fd` from `at` into `into`; returns how many it read (fewer at the file's end). */
export function readAt(fd: number, into: Uint8Array, at: number): number {
  let done = 0;
  while (done < into.length) {
    const n = readSync(fd, into, done, into.length - done, at + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}
