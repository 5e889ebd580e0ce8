// A runtime thread: holds ONNX Runtime sessions and runs them. onnxruntime-node runs a model synchronously
// on the calling thread, so sessions live on these threads and the main thread only queues and answers
// HTTP. A thread holds one session (a dedicated slot) or many (a shared thread of a SessionThreads pool);
// it runs one thing at a time, in arrival order. Plain JavaScript so it starts without a TypeScript loader.
//
// { type: 'create', id, file, options }        → { id, sid, inputs, outputs } or { id, error }
// { type: 'run', id, sid, feeds, fetches? }    → { id, outputs, computeMs } or { id, error }
//   feeds: { name: { type, dims, data } }
// { type: 'release', id, sid }                 → { id }
import { parentPort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { specs } from './ort-specs.mjs';

/** Whether a typed array owns its whole buffer, so the buffer can be moved instead of copied. */
function ownsBuffer(a) {
  return ArrayBuffer.isView(a) && a.byteOffset === 0 && a.byteLength === a.buffer.byteLength && !(a.buffer instanceof SharedArrayBuffer);
}

const sessions = new Map();
let nextSid = 1;

async function create(msg) {
  try {
    const session = await ort.InferenceSession.create(msg.file, msg.options);
    const sid = nextSid++;
    sessions.set(sid, session);
    parentPort.postMessage({ id: msg.id, sid, inputs: specs(session.inputMetadata), outputs: specs(session.outputMetadata) });
  } catch (err) {
    parentPort.postMessage({ id: msg.id, error: String(err?.message ?? err) });
  }
}

async function release(msg) {
  const session = sessions.get(msg.sid);
  sessions.delete(msg.sid);
  try {
    await session?.release();
  } finally {
    parentPort.postMessage({ id: msg.id });
  }
}

async function run(msg) {
  const { id, sid, feeds, fetches } = msg;
  try {
    const session = sessions.get(sid);
    if (!session) throw new Error(`no session ${sid} on this runtime thread`);
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

parentPort.on('message', (msg) => {
  if (msg.type === 'run') void run(msg);
  else if (msg.type === 'create') void create(msg);
  else if (msg.type === 'release') void release(msg);
});
