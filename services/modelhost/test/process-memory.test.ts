import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
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

  test('a heap that shrinks is not read as native memory while V8 unmaps its pages', async (t) => {
    const read = nativeResidentReader();
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const MiB = 1024 ** 2;
    const naive = (): number => {
      const m = process.memoryUsage();
      return m.rss - m.heapTotal;
    };
    let garbage: { n: number; list: number[] }[] | undefined = [];
    for (let i = 0; i < 1_500_000; i++) garbage.push({ n: i, list: [i, i] });
    // The reader reads the heap's size every quarter second: it has seen it grown.
    await new Promise((r) => setTimeout(r, 400));
    const [before, naiveBefore] = [read(), naive()];
    garbage = undefined;
    gc();
    const [after, naiveAfter] = [read(), naive()];
    t.diagnostic(
      `heap less resident: ${((naiveAfter - naiveBefore) / MiB).toFixed(0)} MiB more just after the collection; this reader ${((after - before) / MiB).toFixed(0)}`,
    );
    assert.ok(after - before < 16 * MiB, `${((after - before) / MiB).toFixed(0)} MiB more native memory after a collection that freed only JavaScript objects`);
  });
});
