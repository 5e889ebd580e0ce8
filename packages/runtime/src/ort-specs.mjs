// What a runtime thread (session-worker.mjs) and the inline runtime (inline-runtime.ts) report of a
// session's inputs and outputs: name, element type and shape, a dynamic dim by its symbol ('dynamic' when
// it has none). Plain JavaScript: the runtime threads load it without a TypeScript loader.

/** @param {readonly any[]} metadata onnxruntime-node's inputMetadata or outputMetadata */
export function specs(metadata) {
  return metadata.map((m) => {
    if (!m.isTensor) return { name: m.name, type: 'non-tensor', shape: [] };
    return { name: m.name, type: m.type, shape: m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : String(d || 'dynamic'))) };
  });
}
