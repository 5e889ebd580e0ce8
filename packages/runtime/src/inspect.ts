/**
 * Upload validation in the runtime: a session can be created for the file, and every input and output is
 * a tensor Inferrer can carry. A model without inputs (a graph of constants) is valid: it runs on an empty
 * request. Runs on a worker thread, so a large model never stalls the caller's loop.
 */
import { InferrerError, type ModelSignature, datatypeOfOrt } from '@inferrer/core';
import { OnnxSession, type SessionConfig } from './onnx-session.ts';

export { SessionThreads } from './session-threads.ts';

/** `whileHeld` runs once the session is created and checked, before it is released (validation reads what it holds then). */
export async function inspectModel(file: string, config: Partial<SessionConfig> = {}, whileHeld?: () => void | Promise<void>): Promise<ModelSignature> {
  // Validation only needs the CPU provider: an upload meant for GPUs must still be checkable anywhere.
  const session = await OnnxSession.load(file, { ...config, instances: 1, executionProviders: ['cpu'] });
  try {
    const sig = session.signature;
    for (const t of [...sig.inputs, ...sig.outputs]) {
      if (!datatypeOfOrt(t.type)) {
        throw new InferrerError(
          'INVALID_MODEL',
          `'${t.name}' has type ${t.type}; only tensors of the v2 datatypes are supported (for scikit-learn exports use zipmap=False)`,
          {
            tensor: t.name,
            type: t.type,
          },
        );
      }
    }
    await whileHeld?.();
    return sig;
  } finally {
    await session.dispose();
  }
}
