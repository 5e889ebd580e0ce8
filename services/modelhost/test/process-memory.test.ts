import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { memoryRoom } from '../src/process-memory.ts';

describe('memoryRoom', () => {
  test('the ceiling less the data segment now (VmData)', () => {
    const room = memoryRoom(1024 ** 3, () => 'Name:\tnode\nVmPeak:\t 9000000 kB\nVmData:\t  307200 kB\nVmStk:\t 132 kB\n');
    assert.equal(room(), 1024 ** 3 - 300 * 1024 ** 2);
  });

  test('unlimited where it cannot be read', () => {
    assert.equal(
      memoryRoom(1024, () => {
        throw new Error('ENOENT');
      })(),
      Number.POSITIVE_INFINITY,
    );
    assert.equal(memoryRoom(1024, () => 'Name:\tnode\n')(), Number.POSITIVE_INFINITY);
  });

  test('this process: below the ceiling by at least its heap', () => {
    const room = memoryRoom(64 * 1024 ** 3)();
    if (process.platform === 'linux') assert.ok(room < 64 * 1024 ** 3 - process.memoryUsage().heapUsed, String(room));
  });
});
