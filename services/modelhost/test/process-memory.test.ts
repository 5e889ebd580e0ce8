import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { memoryRoom, nativeResidentReader } from '../src/process-memory.ts';

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

describe('nativeResidentReader', () => {
  test("reads what Node reads, and follows memory taken and given back outside V8's heap", () => {
    const read = nativeResidentReader();
    const node = (): number => {
      const m = process.memoryUsage();
      return m.rss - m.heapTotal;
    };
    const MiB = 1024 ** 2;
    assert.ok(Math.abs(read() - node()) < 4 * MiB, `${read()} against ${node()}`);
    const before = read();
    // Resizable: resize(0) gives the pages back at once, not at V8's next collection.
    const held = new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer & { resize(n: number): void })(64 * MiB, {
      maxByteLength: 64 * MiB,
    });
    new Uint8Array(held).fill(1);
    const grew = read() - before;
    assert.ok(grew > 60 * MiB && grew < 70 * MiB, `grew ${grew / MiB} MiB`);
    held.resize(0);
    assert.ok(read() - before < 8 * MiB, `${(read() - before) / MiB} MiB after giving it back`);
  });
});
