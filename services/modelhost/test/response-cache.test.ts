import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { NamedTensors } from '@inferrer/core';
import { ENTRY_OVERHEAD_BYTES, MAX_CACHED_INPUT_BYTES, ResponseCache } from '../src/response-cache.ts';

const v1 = { name: 'm', version: 1, sha256: 'aa' };
const f32 = (values: number[], dims = [1, values.length]): NamedTensors => ({ x: { type: 'float32', dims, data: Float32Array.from(values) } });

describe('response cache keys', () => {
  test('the same tensor gives the same key whatever array holds it (a view into a larger body, or its own)', () => {
    const c = new ResponseCache(1 << 20);
    const body = new Uint8Array(64);
    const view = new Float32Array(body.buffer, 16, 4);
    view.set([1, 2, 3, 4]);
    const a = c.key(v1, { x: { type: 'float32', dims: [1, 4], data: view } });
    const b = c.key(v1, f32([1, 2, 3, 4]));
    assert.ok(a, 'a key');
    assert.equal(a, b);
  });

  test('another version, another file of the same version, other dims, type, name or bytes: another key', () => {
    const c = new ResponseCache(1 << 20);
    const base = c.key(v1, f32([1, 2, 3, 4]))!;
    const others = [
      c.key({ ...v1, version: 2 }, f32([1, 2, 3, 4])),
      c.key({ ...v1, sha256: 'bb' }, f32([1, 2, 3, 4])),
      c.key({ ...v1, name: 'n' }, f32([1, 2, 3, 4])),
      c.key(v1, f32([1, 2, 3, 4], [2, 2])),
      c.key(v1, { x: { type: 'int32', dims: [1, 4], data: new Int32Array(new Float32Array([1, 2, 3, 4]).buffer) } }),
      c.key(v1, { y: f32([1, 2, 3, 4]).x! }),
      c.key(v1, f32([1, 2, 3, 5])),
    ];
    for (const k of others) assert.notEqual(k, base);
    assert.equal(new Set(others).size, others.length);
  });

  test('string tensors are framed: ["ab", "c"] and ["a", "bc"] differ', () => {
    const c = new ResponseCache(1 << 20);
    const s = (data: string[]): NamedTensors => ({ s: { type: 'string', dims: [data.length], data } });
    assert.notEqual(c.key(v1, s(['ab', 'c'])), c.key(v1, s(['a', 'bc'])));
    assert.equal(c.key(v1, s(['ab', 'c'])), c.key(v1, s(['ab', 'c'])));
  });

  test('inputs larger than MAX_CACHED_INPUT_BYTES are not looked up', () => {
    const c = new ResponseCache(1 << 20);
    const n = MAX_CACHED_INPUT_BYTES / 4 + 1;
    assert.equal(c.key(v1, { x: { type: 'float32', dims: [1, n], data: new Float32Array(n) } }), undefined);
  });
});

describe('response cache entries', () => {
  test('an entry is a copy: the batch buffer it came from can change afterwards', () => {
    const c = new ResponseCache(1 << 20);
    const batch = new Float32Array([1, 2, 3, 4, 5, 6]);
    const out: NamedTensors = { y: { type: 'float32', dims: [1, 3], data: batch.subarray(3) } };
    assert.ok(c.set('k', v1, out));
    batch.fill(0);
    const got = c.get('k')!;
    assert.deepEqual([...(got.y!.data as Float32Array)], [4, 5, 6]);
    assert.equal((got.y!.data as Float32Array).buffer.byteLength, 12, 'only the row is kept, not the whole batch');
  });

  test('the bound holds: least recently used entries go first, and evictions are reported', () => {
    const entry = ENTRY_OVERHEAD_BYTES + 1 + 4000 + 1 + 64;
    const c = new ResponseCache(entry * 3 + 10);
    const evicted: number[] = [];
    c.onEvict = (_m, v) => evicted.push(v);
    const out = (): NamedTensors => ({ y: { type: 'float32', dims: [1, 1000], data: new Float32Array(1000) } });
    for (const k of ['a', 'b', 'c']) assert.ok(c.set(k, v1, out()));
    assert.equal(c.entries, 3);
    assert.ok(c.get('a'), 'a is now the most recently used');
    c.set('d', { ...v1, version: 7 }, out());
    assert.equal(c.entries, 3);
    assert.ok(c.bytes <= c.maxBytes, 'within the bound');
    assert.equal(c.get('b'), undefined, 'b was the least recently used');
    assert.ok(c.get('a') && c.get('c') && c.get('d'), 'the others stay');
    assert.deepEqual(evicted, [1]);
  });

  test('an answer larger than the whole bound is not kept', () => {
    const c = new ResponseCache(2000);
    assert.equal(c.set('big', v1, { y: { type: 'float32', dims: [1, 1000], data: new Float32Array(1000) } }), false);
    assert.equal(c.entries, 0);
  });

  test('purge drops one version and keeps the rest', () => {
    const c = new ResponseCache(1 << 20);
    c.set('a', v1, f32([1]));
    c.set('b', { ...v1, version: 2 }, f32([2]));
    c.set('c', { ...v1, name: 'other' }, f32([3]));
    assert.equal(c.purge('m', 1), 1);
    assert.equal(c.get('a'), undefined);
    assert.ok(c.get('b') && c.get('c'));
  });
});
