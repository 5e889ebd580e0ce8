// One in-process execution slot for the ResNet-50 baseline: a worker thread with its own ONNX Runtime
// session, as the modelhost runs them (packages/runtime/src/session-worker.mjs), minus HTTP, JSON and
// queueing. Plain JavaScript so it starts without a TypeScript loader.
//
// workerData { file, intraOpThreads }  → { type: 'ready' } | { type: 'failed', message }
// { type: 'warm', batch, runs }        → builds a [batch,3,224,224] input, runs it `runs` times → { type: 'warm' }
// { type: 'go', until }                → runs that input back to back until Date.now() ≥ until (at least once)
//                                        → { type: 'done', images, runs, finishedAt, runMs }
// { type: 'stop' }                     → releases the session and closes
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';

const IMAGE = 3 * 224 * 224;
let session;
try {
  session = await ort.InferenceSession.create(workerData.file, {
    intraOpNumThreads: workerData.intraOpThreads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionProviders: ['cpu'],
  });
  parentPort.postMessage({ type: 'ready' });
} catch (err) {
  parentPort.postMessage({ type: 'failed', message: String(err?.message ?? err) });
}

/** A deterministic pseudo-image batch in the range of normalised pixels. */
function images(batch) {
  const data = new Float32Array(IMAGE * batch);
  let a = 7;
  for (let i = 0; i < data.length; i++) {
    a = (Math.imul(a, 1103515245) + 12345) >>> 0;
    data[i] = ((a >>> 8) / 16777216) * 4 - 2;
  }
  return new ort.Tensor('float32', data, [batch, 3, 224, 224]);
}

let input;
let batch = 1;
parentPort.on('message', async (msg) => {
  try {
    if (msg.type === 'stop') {
      await session?.release();
      parentPort.close();
    } else if (msg.type === 'warm') {
      batch = msg.batch;
      input = images(batch);
      for (let i = 0; i < msg.runs; i++) await session.run({ input });
      parentPort.postMessage({ type: 'warm' });
    } else if (msg.type === 'go') {
      let runs = 0;
      const runMs = [];
      do {
        const t = performance.now();
        await session.run({ input });
        runMs.push(performance.now() - t);
        runs++;
      } while (Date.now() < msg.until);
      parentPort.postMessage({ type: 'done', images: runs * batch, runs, finishedAt: Date.now(), runMs });
    }
  } catch (err) {
    parentPort.postMessage({ type: 'failed', message: String(err?.message ?? err) });
  }
});
