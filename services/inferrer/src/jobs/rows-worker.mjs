// The thread that turns a job's NDJSON or CSV rows into items (rows-thread.ts): one row is read whole, and a
// row of tens of megabytes (5 million CSV fields on one line) takes seconds to split and check, which on
// the Inferrer's event loop stopped every other request for as long. Plain JavaScript that registers the
// TypeScript loader for this thread (module hooks are not inherited by worker threads in Node 20).
//
// { id, input, itemsFile, format, limits } → { id, ok: PreparedItems & { offsets } } or { id, error }
import { parentPort } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
const { prepareRows } = await import('./job-input.ts');

parentPort.on('message', async (msg) => {
  try {
    parentPort.postMessage({ id: msg.id, ok: await prepareRows(msg.input, msg.itemsFile, msg.format, msg.limits) });
  } catch (err) {
    const e = err ?? {};
    parentPort.postMessage({
      id: msg.id,
      error: { inferrer: e.name === 'InferrerError', code: e.code, message: String(e.message ?? e), details: e.details, retryAfter: e.retryAfter },
    });
  }
});
