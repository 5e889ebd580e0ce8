import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { inspectModel } from '@inferrer/runtime';
import { EXTERNAL_ESCAPE, IRIS, MULTI_IO, NOT_ONNX } from './fixtures.ts';

describe('inspectModel', () => {
  test('returns the signature of a usable model', async () => {
    assert.deepEqual(await inspectModel(MULTI_IO), {
      inputs: [
        { name: 'a', type: 'float32', shape: ['batch', 2] },
        { name: 'b', type: 'int64', shape: ['batch', 1] },
      ],
      outputs: [
        { name: 'sum', type: 'float32', shape: ['batch', 1] },
        { name: 'doubled', type: 'int64', shape: ['batch', 1] },
      ],
    });
  });

  test('validates on the CPU whatever providers the model config asks for', async () => {
    const sig = await inspectModel(IRIS, { executionProviders: ['cuda'], instances: 4, graphOptimizationLevel: 'disabled' });
    assert.equal(sig.inputs[0]!.name, 'input');
  });

  test('a text file is INVALID_MODEL', async () => {
    await assert.rejects(inspectModel(NOT_ONNX), {
      code: 'INVALID_MODEL',
      message: /^ONNX Runtime cannot create a session for this model: .*Protobuf parsing failed/,
    });
  });

  test('external data that escapes the model folder is INVALID_MODEL', async () => {
    await assert.rejects(inspectModel(EXTERNAL_ESCAPE), {
      code: 'INVALID_MODEL',
      message: /External data path/,
    });
  });

  test('a missing file is INVALID_MODEL', async () => {
    await assert.rejects(inspectModel('/nonexistent/model.onnx'), { code: 'INVALID_MODEL', message: /File doesn't exist/ });
  });
});
