/**
 * Structural checks on an ONNX file before any runtime touches it: it parses as a ModelProto with a
 * graph, and every tensor stored as external data points at a file inside the model's own folder.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { InferrerError } from '@inferrer/core';

const { onnx } = onnxProto;

export interface OnnxFileFacts {
  irVersion: number;
  opsets: { domain: string; version: number }[];
  producer: string;
  /** Relative paths of external data files, as written in the model. */
  externalData: string[];
  /** The operators its graph uses, subgraphs included, as `domain:OpType` (the default domain as `ai.onnx`), sorted. */
  operators: string[];
  /** Its nodes, subgraphs' included. */
  nodes: number;
}

/** Parses `file` and checks external-data locations against `folder` (the version folder). */
export async function checkOnnxFile(file: string, folder: string): Promise<OnnxFileFacts> {
  const bytes = await readFile(file);
  let model: InstanceType<typeof onnx.ModelProto>;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw new InferrerError('INVALID_MODEL', `the file does not parse as an ONNX model: ${(err as Error).message}`, {}, { cause: err });
  }
  if (!model.graph || (model.graph.node?.length ?? 0) === 0 || !model.opsetImport || model.opsetImport.length === 0) {
    throw new InferrerError('INVALID_MODEL', 'the file is not an ONNX model: it has no graph, nodes or opset imports');
  }
  const external: string[] = [];
  walkGraph(model.graph, (t) => {
    if (t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) return;
    const location = t.externalData?.find((e) => e.key === 'location')?.value ?? '';
    external.push(location);
  });
  const root = path.resolve(folder);
  for (const location of external) {
    const target = path.resolve(root, location);
    if (!location || path.isAbsolute(location) || location.includes('\0') || (target !== root && !target.startsWith(root + path.sep))) {
      throw new InferrerError('INVALID_MODEL', `the model refers to external data outside its folder (${JSON.stringify(location.slice(0, 200))})`, {
        location: location.slice(0, 200),
      });
    }
  }
  return {
    irVersion: Number(model.irVersion ?? 0),
    opsets: model.opsetImport.map((o) => ({ domain: o.domain ?? '', version: Number(o.version ?? 0) })),
    producer: `${model.producerName ?? ''} ${model.producerVersion ?? ''}`.trim(),
    externalData: external,
    ...operatorsOf(model.graph as NodeGraphLike),
  };
}

/**
 * The operators a model's graph uses, subgraphs included, as `domain:OpType` (the default domain as
 * `ai.onnx`), and how many nodes it has: for records written before they were kept.
 */
export async function onnxOperators(file: string): Promise<{ operators: string[]; nodes: number }> {
  const model = onnx.ModelProto.decode(await readFile(file));
  return model.graph ? operatorsOf(model.graph as NodeGraphLike) : { operators: [], nodes: 0 };
}

function operatorsOf(graph: NodeGraphLike): { operators: string[]; nodes: number } {
  const out = new Set<string>();
  let nodes = 0;
  const visit = (g: NodeGraphLike, depth: number): void => {
    if (depth > 64) return;
    for (const n of g.node ?? []) {
      nodes++;
      out.add(`${n.domain || 'ai.onnx'}:${n.opType ?? ''}`);
      for (const a of n.attribute ?? []) {
        if (a.g) visit(a.g, depth + 1);
        for (const sg of a.graphs ?? []) visit(sg, depth + 1);
      }
    }
  };
  visit(graph, 0);
  return { operators: [...out].sort(), nodes };
}

type NodeGraphLike = {
  node?: { domain?: string | null; opType?: string | null; attribute?: { g?: NodeGraphLike | null; graphs?: NodeGraphLike[] | null }[] | null }[] | null;
};

type TensorLike = { dataLocation?: number | null; externalData?: { key?: string | null; value?: string | null }[] | null };
type GraphLike = {
  initializer?: TensorLike[] | null;
  sparseInitializer?: { values?: TensorLike | null; indices?: TensorLike | null }[] | null;
  node?: { attribute?: AttrLike[] | null }[] | null;
};
type AttrLike = { t?: TensorLike | null; tensors?: TensorLike[] | null; g?: GraphLike | null; graphs?: GraphLike[] | null };

function walkGraph(g: GraphLike, visit: (t: TensorLike) => void, depth = 0): void {
  if (depth > 64) throw new InferrerError('INVALID_MODEL', 'the model nests subgraphs more than 64 deep');
  for (const t of g.initializer ?? []) visit(t);
  for (const s of g.sparseInitializer ?? []) {
    if (s.values) visit(s.values);
    if (s.indices) visit(s.indices);
  }
  for (const n of g.node ?? []) {
    for (const a of n.attribute ?? []) {
      if (a.t) visit(a.t);
      for (const t of a.tensors ?? []) visit(t);
      if (a.g) walkGraph(a.g, visit, depth + 1);
      for (const sg of a.graphs ?? []) walkGraph(sg, visit, depth + 1);
    }
  }
}
