// One execution slot: a worker thread that owns one ONNX Runtime session. onnxruntime-node runs a
// model synchronously on the calling thread, so each slot gets its own thread and the main thread only
// queues and answers HTTP. Plain JavaScript so it starts without a TypeScript loader.
//
// workerData: { file, options }  → posts { type: 'ready', inputs, outputs } or { type: 'failed', message }
// message { id, feeds: {name: {type, dims, data}}, fetches? } → { id, outputs } or { id, error }
// message { type: 'dispose' } → session released → { type: 'released' }, then the thread ends
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';

/** @param {readonly any[]} metadata */
function specs(metadata) {
  return metadata.map((m) => {
    if (!m.isTensor) return { name: m.name, type: 'non-tensor', shape: [] };
    return { name: m.name, type: m.type, shape: m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : String(d || 'dynamic'))) };
  });
}

/** Whether a typed array owns its whole buffer, so the buffer can be moved instead of copied. */
function ownsBuffer(a) {
  return ArrayBuffer.isView(a) && a.byteOffset === 0 && a.byteLength === a.buffer.byteLength && !(a.buffer instanceof SharedArrayBuffer);
}

let session;
try {
  session = await ort.InferenceSession.create(workerData.file, workerData.options);
  parentPort.postMessage({ type: 'ready', inputs: specs(session.inputMetadata), outputs: specs(session.outputMetadata) });
} catch (err) {
  parentPort.postMessage({ type: 'failed', message: String(err?.message ?? err) });
}

/** One message from OnnxSession: a run (its inputs, answered with outputs or an error) or 'dispose'. */
async function onMessage(msg) {
  if (msg.type === 'dispose') {
    // OnnxSession.dispose: free the session's native memory, say so, and let the thread end.
    try {
      await session?.release();
      parentPort.postMessage({ type: 'released' });
    } finally {
      parentPort.close();
    }
    return;
  }
  const { id, feeds, fetches } = msg;
  try {
    const input = {};
    for (const [name, t] of Object.entries(feeds)) input[name] = new ort.Tensor(t.type, t.data, t.dims);
    const started = performance.now();
    const result = fetches ? await session.run(input, fetches) : await session.run(input);
    const computeMs = performance.now() - started;
    const outputs = {};
    const transfer = [];
    for (const [name, t] of Object.entries(result)) {
      outputs[name] = { type: t.type, dims: Array.from(t.dims), data: t.data };
      if (ownsBuffer(t.data)) transfer.push(t.data.buffer);
    }
    parentPort.postMessage({ id, outputs, computeMs }, transfer);
  } catch (err) {
    parentPort.postMessage({ id, error: String(err?.message ?? err) });
  }
}

parentPort.on('message', onMessage);
