import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { NamedTensors } from '@inferrer/core';
import { concatInputs, splitOutputs, stackKey } from '@inferrer/runtime';

const req = (rows: number, start: number): NamedTensors => ({
  a: { type: 'float32', dims: [rows, 2], data: Float32Array.from({ length: rows * 2 }, (_, i) => start + i) },
  b: { type: 'int64', dims: [rows, 1], data: BigInt64Array.from({ length: rows }, (_, i) => BigInt(start * 10 + i)) },
});

describe('stackKey', () => {
  test('equal for the same names, types and non-batch dims, whatever the rows', () => {
    assert.equal(stackKey(req(1, 0)), stackKey(req(5, 100)));
    assert.equal(stackKey(req(1, 0)), 'a:float32:2;b:int64:1;');
  });

  test('differs for another row shape, type or name', () => {
    const base = stackKey({ x: { type: 'float32', dims: [1, 4], data: new Float32Array(4) } });
    assert.notEqual(base, stackKey({ x: { type: 'float32', dims: [1, 5], data: new Float32Array(5) } }));
    assert.notEqual(base, stackKey({ x: { type: 'float64', dims: [1, 4], data: new Float64Array(4) } }));
    assert.notEqual(base, stackKey({ y: { type: 'float32', dims: [1, 4], data: new Float32Array(4) } }));
    assert.notEqual(
      stackKey({ x: { type: 'float32', dims: [1, 2, 6], data: new Float32Array(12) } }),
      stackKey({ x: { type: 'float32', dims: [1, 6, 2], data: new Float32Array(12) } }),
    );
  });
});

describe('concatInputs', () => {
  test('one request passes through untouched', () => {
    const one = req(2, 0);
    assert.equal(concatInputs([one], [2]), one);
  });

  test('stacks every input along dim 0 into fresh arrays', () => {
    const parts = [req(1, 0), req(2, 10), req(3, 20)];
    const out = concatInputs(parts, [1, 2, 3]);
    assert.deepEqual(out.a!.dims, [6, 2]);
    assert.deepEqual(out.b!.dims, [6, 1]);
    assert.ok(out.a!.data instanceof Float32Array);
    assert.ok(out.b!.data instanceof BigInt64Array);
    assert.deepEqual(Array.from(out.a!.data as Float32Array), [0, 1, 10, 11, 12, 13, 20, 21, 22, 23, 24, 25]);
    assert.deepEqual(Array.from(out.b!.data as BigInt64Array), [0n, 100n, 101n, 200n, 201n, 202n]);
    assert.notEqual((out.a!.data as Float32Array).buffer, (parts[0]!.a!.data as Float32Array).buffer);
    // The originals are left as they were.
    assert.deepEqual(Array.from(parts[1]!.a!.data as Float32Array), [10, 11, 12, 13]);
  });

  test('stacks string tensors', () => {
    const out = concatInputs([{ s: { type: 'string', dims: [1], data: ['a'] } }, { s: { type: 'string', dims: [2], data: ['b', 'c'] } }], [1, 2]);
    assert.deepEqual(out.s, { type: 'string', dims: [3], data: ['a', 'b', 'c'] });
  });
});

describe('splitOutputs', () => {
  test('a split of a concat gives back the originals', () => {
    const parts = [req(1, 0), req(2, 10), req(3, 20)];
    const rows = [1, 2, 3];
    const back = splitOutputs(concatInputs(parts, rows), rows)!;
    assert.equal(back.length, 3);
    for (let i = 0; i < parts.length; i++) {
      for (const name of ['a', 'b']) {
        assert.equal(back[i]![name]!.type, parts[i]![name]!.type);
        assert.deepEqual(back[i]![name]!.dims, parts[i]![name]!.dims);
        assert.deepEqual(Array.from(back[i]![name]!.data as ArrayLike<unknown>), Array.from(parts[i]![name]!.data as ArrayLike<unknown>));
      }
    }
  });

  test('splits without copying: each part is a view of the batch output', () => {
    const out = { y: { type: 'float32' as const, dims: [3, 2], data: new Float32Array([1, 2, 3, 4, 5, 6]) } };
    const [p0, p1] = splitOutputs(out, [1, 2])!;
    assert.equal((p1!.y!.data as Float32Array).buffer, out.y.data.buffer);
    assert.deepEqual(Array.from(p0!.y!.data as Float32Array), [1, 2]);
    assert.deepEqual(p1!.y!.dims, [2, 2]);
    assert.deepEqual(Array.from(p1!.y!.data as Float32Array), [3, 4, 5, 6]);
  });

  test('splits rank-1 outputs and string outputs', () => {
    const parts = splitOutputs(
      {
        label: { type: 'int64', dims: [3], data: new BigInt64Array([2n, 0n, 1n]) },
        name: { type: 'string', dims: [3, 1], data: ['virginica', 'setosa', 'versicolor'] },
      },
      [2, 1],
    )!;
    assert.deepEqual(Array.from(parts[0]!.label!.data as BigInt64Array), [2n, 0n]);
    assert.deepEqual(parts[1]!.name, { type: 'string', dims: [1, 1], data: ['versicolor'] });
  });

  test('one request gets the outputs as they are', () => {
    const out = { y: { type: 'float32' as const, dims: [], data: new Float32Array([1]) } };
    assert.deepEqual(splitOutputs(out, [4]), [out]);
  });

  test('undefined when an output does not keep the batch axis', () => {
    const rows = [1, 2];
    assert.equal(splitOutputs({ y: { type: 'float32', dims: [2, 2], data: new Float32Array(4) } }, rows), undefined);
    assert.equal(splitOutputs({ y: { type: 'float32', dims: [], data: new Float32Array(1) } }, rows), undefined);
    assert.equal(
      splitOutputs(
        {
          ok: { type: 'float32', dims: [3], data: new Float32Array(3) },
          total: { type: 'float32', dims: [1], data: new Float32Array(1) },
        },
        rows,
      ),
      undefined,
    );
  });
});
