import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ModelSignature, NamedTensors } from '@inferrer/core';
import { knownOutputBytes } from '../src/output-size.ts';

const feeds = (dims: number[]): NamedTensors => ({ x: { type: 'float32', dims, data: new Float32Array(dims.reduce((a, b) => a * b, 1)) } });

describe('knownOutputBytes', () => {
  test('a symbol an input binds and fixed dims give the size; the largest output is named', () => {
    const sig: ModelSignature = {
      inputs: [{ name: 'x', type: 'float32', shape: ['batch', 1] }],
      outputs: [
        { name: 'y', type: 'float32', shape: ['batch', 100_000] },
        { name: 'n', type: 'int64', shape: ['batch'] },
      ],
    };
    const size = knownOutputBytes(sig, feeds([1000, 1]));
    assert.equal(size.bytes, 1000 * 100_000 * 4 + 1000 * 8);
    assert.deepEqual(size.largest, { name: 'y', dims: [1000, 100_000], bytes: 400_000_000 });
    // Only what is fetched counts.
    assert.equal(knownOutputBytes(sig, feeds([1000, 1]), ['n']).bytes, 8000);
  });

  test('an output with a dim nothing binds (chosen by values, unnamed, -1) or of strings is not counted', () => {
    const sig: ModelSignature = {
      inputs: [{ name: 'x', type: 'float32', shape: ['batch', 'dynamic'] }],
      outputs: [
        { name: 'a', type: 'float32', shape: ['d0', 'd1'] },
        { name: 'b', type: 'float32', shape: ['batch', 'dynamic'] },
        { name: 'c', type: 'float32', shape: [-1, 4] },
        { name: 's', type: 'string', shape: ['batch'] },
        { name: 'k', type: 'uint8', shape: [3, 'batch'] },
      ],
    };
    const size = knownOutputBytes(sig, feeds([5, 7]));
    assert.equal(size.bytes, 15);
    assert.equal(size.largest?.name, 'k');
    assert.equal(knownOutputBytes({ inputs: sig.inputs, outputs: sig.outputs.slice(0, 3) }, feeds([5, 7])).largest, undefined);
  });
});
