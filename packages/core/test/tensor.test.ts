import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { firstAxisProblem, hasDynamicBatchAxis, isSymbolic, withBatchAxis } from '@inferrer/core';

describe('hasDynamicBatchAxis', () => {
  test("the model config's batch axis settles it: first (where every dim 0 is symbolic), none", () => {
    const spec = (name: string, shape: (number | string)[]) => ({ name, type: 'float32' as const, shape });
    const ids = { inputs: [spec('ids', ['batch'])], outputs: [spec('y', ['batch', 2])] };
    assert.equal(hasDynamicBatchAxis(ids), false);
    assert.equal(hasDynamicBatchAxis(withBatchAxis(ids, 'first')), true);
    assert.equal(hasDynamicBatchAxis(withBatchAxis(ids, 'auto')), false);
    assert.equal(withBatchAxis(ids, 'auto'), ids);
    const rows = { inputs: [spec('x', ['batch', 4])], outputs: [spec('y', ['batch', 4])] };
    assert.equal(hasDynamicBatchAxis(withBatchAxis(rows, 'none')), false);
    const fixed = { inputs: [spec('x', [3])], outputs: [spec('y', ['n'])] };
    assert.equal(hasDynamicBatchAxis(withBatchAxis(fixed, 'first')), false);
    assert.equal(firstAxisProblem(fixed), "input 'x' has a fixed dim 0 (3)");
    assert.equal(firstAxisProblem({ inputs: [spec('x', ['n'])], outputs: [spec('y', [])] }), "output 'y' is a scalar (no dims)");
    assert.equal(firstAxisProblem(ids), undefined);
  });

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

  test('false when dim 0 is not one batch axis: a vector input, another symbol on an output, inputs of different lengths', () => {
    const spec = (name: string, shape: (number | string)[]) => ({ name, type: 'float32' as const, shape });
    // x − mean(x), a shape to fill: [n] is one request's values, not n rows.
    assert.equal(hasDynamicBatchAxis({ inputs: [spec('x', ['n'])], outputs: [spec('y', ['n'])] }), false);
    assert.equal(hasDynamicBatchAxis({ inputs: [spec('shape', ['rank'])], outputs: [spec('y', ['d0', 'd1'])] }), false);
    // Transpose [n, k] → [k, n]; a [n, 2] + sum of b [m, 2].
    assert.equal(hasDynamicBatchAxis({ inputs: [spec('x', ['n', 'k'])], outputs: [spec('y', ['k', 'n'])] }), false);
    assert.equal(hasDynamicBatchAxis({ inputs: [spec('a', ['n', 2]), spec('b', ['m', 2])], outputs: [spec('y', ['n', 2])] }), false);
    // No inputs: nothing to stack.
    assert.equal(hasDynamicBatchAxis({ inputs: [], outputs: [spec('y', ['n', 2])] }), false);
  });

  test('a vector input beside [batch, k] is rows when it names the batch symbol itself', () => {
    const spec = (name: string, shape: (number | string)[]) => ({ name, type: 'float32' as const, shape });
    assert.equal(hasDynamicBatchAxis({ inputs: [spec('x', ['batch', 4]), spec('w', ['batch'])], outputs: [spec('y', ['batch'])] }), true);
    assert.equal(hasDynamicBatchAxis({ inputs: [spec('x', ['batch', 4]), spec('shape', [-1])], outputs: [spec('y', ['batch', 2])] }), false);
    assert.equal(hasDynamicBatchAxis({ inputs: [spec('x', ['dynamic', 4]), spec('w', ['dynamic'])], outputs: [spec('y', ['dynamic'])] }), false);
    assert.equal(hasDynamicBatchAxis({ inputs: [spec('x', ['batch', 4]), spec('k', [])], outputs: [spec('y', ['batch'])] }), false);
  });

  test('an unnamed dynamic dim matches the batch symbol', () => {
    const spec = (name: string, shape: (number | string)[]) => ({ name, type: 'float32' as const, shape });
    assert.equal(hasDynamicBatchAxis({ inputs: [spec('x', ['dynamic', 4])], outputs: [spec('y', ['batch', 2]), spec('z', [-1])] }), true);
    assert.equal(hasDynamicBatchAxis({ inputs: [spec('x', [-1, 4])], outputs: [spec('y', [-1, 2])] }), true);
  });

  test('isSymbolic', () => {
    assert.equal(isSymbolic('batch'), true);
    assert.equal(isSymbolic(-1), true);
    assert.equal(isSymbolic(0), false);
    assert.equal(isSymbolic(4), false);
  });
});
