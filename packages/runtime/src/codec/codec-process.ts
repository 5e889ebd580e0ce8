/**
 * A codec process: decodes large request bodies (JSON parse, checks, typed arrays) and encodes large
 * answers (numbers to JSON text) for a modelhost, with the same @inferrer/core functions the modelhost uses
 * for small ones. Its own process, in its own session: where the kernel groups threads by session
 * (autogroup) the CPU it burns is not charged to the modelhost, whose HTTP thread keeps waking at once.
 * It ends when the modelhost does (the IPC channel closes).
 */
import os from 'node:os';
import { decodeV1Body, decodeV2Request, encodeV1Response, encodeV2Response, toInferrerError } from '@inferrer/core';
import { Incoming, type Job, type Message, Outgoing, type Result } from './codec-wire.ts';

// Below the modelhost's threads where they share a scheduling group (a container's cgroup): the nice value
// of this thread, which does the work. Where the kernel groups by session (autogroup), this process is a
// group of its own and gets its fair share like any other process: its group is left at nice 0, or a busy
// machine would starve it (a 24 MB body took 30 s at group nice 10 under load 20).
try {
  os.setPriority(10);
} catch {
  // not permitted: the process still works, at the modelhost's priority
}

const post = (m: Message): Promise<void> => new Promise((resolve) => void process.send!(m, undefined, {}, () => resolve()));
let incoming = new Incoming();

process.on('message', (m: Message) => {
  if (m.op === 'blobs') {
    incoming = new Incoming();
    incoming.sizes(m.sizes);
  } else if (m.op === 'part') incoming.part(m.blob, m.at, m.data);
  else if (m.op === 'job') void run(m.id, m.job, incoming);
});
process.on('disconnect', () => process.exit(0));

async function run(id: number, job: Job, blobs: Incoming): Promise<void> {
  const out = new Outgoing();
  let result: Result;
  try {
    result = work(job, blobs, out);
  } catch (err) {
    const e = toInferrerError(err);
    result = { op: 'error', error: e.toJSON(), ...(e.code === 'INTERNAL' ? { cause: String((err as Error)?.stack ?? err).slice(0, 2000) } : {}) };
    out.blobs.length = 0;
  }
  await out.send(id, post);
  await post({ id, op: 'result', result });
}

function work(job: Job, blobs: Incoming, out: Outgoing): Result {
  switch (job.op) {
    case 'decodeV1': {
      const decoded = decodeV1Body(blobs.buffer({ blob: 0, kind: 'Buffer' }), job.sig, job.limits);
      return { op: 'decodeV1', decoded: { ...decoded, inputs: out.tensors(decoded.inputs) } };
    }
    case 'decodeV2': {
      const decoded = decodeV2Request(
        blobs.buffer({ blob: 0, kind: 'Buffer' }),
        job.headerLength,
        job.sig,
        job.limits,
        job.imageInputs ? new Set(job.imageInputs) : undefined,
      );
      const { images, ...rest } = decoded;
      const refs: Record<string, ReturnType<Outgoing['ref']>[]> = {};
      if (images) for (const name in images) refs[name] = images[name]!.map((b) => out.ref(b));
      return { op: 'decodeV2', decoded: { ...rest, inputs: out.tensors(decoded.inputs), ...(images ? { images: refs } : {}) } };
    }
    case 'encodeV1':
      return { op: 'encodeV1', text: out.ref(Buffer.from(encodeV1Response(blobs.tensors(job.outputs), job.order, job.opts))) };
    case 'encodeV2': {
      const encoded = encodeV2Response(blobs.tensors(job.outputs), job.order, job.opts);
      return { op: 'encodeV2', json: out.ref(Buffer.from(encoded.json)), binary: encoded.binary.map((b) => out.ref(b)) };
    }
  }
}
