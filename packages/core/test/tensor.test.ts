import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { hasDynamicBatchAxis, isSymbolic } from '@inferrer/core';

describe('hasDynamicBatchAxis', () => {
  test('true when dim 0 of every input and output is symbolic', () => {
    assert.equal(
      hasDynamicBatchAxis({
        inputs: [{ name: 'input', type: 'float32', shape: ['batch', 4] }],
        outputs: [
          { name: 'label', type: 'int64', shape: ['batch'] },
          { name: 'probabilities', type: 'float32', shape: [-1, 3] },
        ],
      }),
      true,
    );
  });

  test('false for a fixed dim 0, a scalar output, or no tensors', () => {
    assert.equal(
      hasDynamicBatchAxis({ inputs: [{ name: 'x', type: 'float32', shape: [1, 4] }], outputs: [{ name: 'y', type: 'float32', shape: [1, 2] }] }),
      false,
    );
    assert.equal(
      hasDynamicBatchAxis({ inputs: [{ name: 'x', type: 'float32', shape: ['n', 4] }], outputs: [{ name: 'y', type: 'float32', shape: [] }] }),
      false,
    );
    assert.equal(hasDynamicBatchAxis({ inputs: [], outputs: [] }), false);
  });

  test('isSymbolic', () => {
    assert.equal(isSymbolic('batch'), true);
    assert.equal(isSymbolic(-1), true);
    assert.equal(isSymbolic(0), false);
    assert.equal(isSymbolic(4), false);
  });
});
