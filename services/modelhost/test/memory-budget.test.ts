import assert from 'node:assert/strict';
import os from 'node:os';
import { describe, test } from 'node:test';
import type { VersionRecord } from '@inferrer/model-store';
import { MemoryBudget, type Resident, defaultBudget, memoryLimit } from '../src/memory-budget.ts';

const MiB = 1024 * 1024;

describe('memoryLimit', () => {
  const files = (map: Record<string, string>) => (f: string): string => {
    if (f in map) return map[f]!;
    throw new Error('ENOENT');
  };

  test('cgroup v2 limit, then v1, else the host', () => {
    assert.deepEqual(memoryLimit(files({ '/sys/fs/cgroup/memory.max': '2147483648\n' })), { bytes: 2 * 1024 * MiB, source: 'cgroup' });
    assert.deepEqual(memoryLimit(files({ '/sys/fs/cgroup/memory/memory.limit_in_bytes': '536870912' })), { bytes: 512 * MiB, source: 'cgroup' });
    // No limit: v2 says "max", v1 a number near 2^63.
    assert.deepEqual(memoryLimit(files({ '/sys/fs/cgroup/memory.max': 'max\n', '/sys/fs/cgroup/memory/memory.limit_in_bytes': '9223372036854771712' })), { bytes: os.totalmem(), source: 'host' });
    assert.deepEqual(memoryLimit(files({})), { bytes: os.totalmem(), source: 'host' });
  });

  test('the default budget is 70 % of the limit less the worker, at least 64 MiB', () => {
    assert.equal(defaultBudget(1000 * MiB, 100 * MiB), 600 * MiB);
    assert.equal(defaultBudget(100 * MiB, 90 * MiB), 64 * MiB);
  });
});

describe('MemoryBudget', () => {
  const version = (bytes: number, memory?: number): VersionRecord => ({ bytes, ...(memory === undefined ? {} : { validation: { memory_bytes: memory, ms: 1 } }) }) as VersionRecord;

  test('a version costs at least what validation measured (times its instances), else twice its file plus 1 MiB', () => {
    const b = new MemoryBudget(100 * MiB);
    assert.equal(b.floor(version(10 * MiB, 3 * MiB), 2), 6 * MiB);
    assert.equal(b.floor(version(10 * MiB), 1), 21 * MiB);
  });

  test('a load counts what it measured, never less than the floor; the next load of the version expects the last measurement', () => {
    const b = new MemoryBudget(100 * MiB);
    const v = version(MiB, 2 * MiB);
    assert.equal(b.expected('m@1', v, 1), 2 * MiB);
    // Memory an unloaded model gave back is reused: the process did not grow.
    assert.equal(b.measured('m@1', v, 1, 0), 2 * MiB);
    assert.equal(b.measured('m@1', v, 1, 5 * MiB), 5 * MiB);
    assert.equal(b.expected('m@1', v, 1), 5 * MiB);
    assert.equal(b.expected('m@1', v, 2), 4 * MiB, 'instances are measured apart');
  });

  test('victims: idle models, least recently used first, preload ones last, never pinned, leased or busy ones', () => {
    const b = new MemoryBudget(10 * MiB);
    const m = (name: string, lastUsed: number, extra: Partial<Resident & { busy: boolean }> = {}) => ({ name, costBytes: 2 * MiB, lastUsed, leases: 0, pinned: false, preload: false, busy: false, ...extra });
    const models = [m('a', 5), m('b', 1, { preload: true }), m('c', 2), m('d', 3, { pinned: true }), m('e', 0, { leases: 1 }), m('f', 4, { busy: true })];
    const names = (v: typeof models | undefined) => v?.map((x) => x.name);
    assert.deepEqual(names(b.victims(models, 12 * MiB, 0, (x) => x.busy)), ['c']);
    assert.deepEqual(names(b.victims(models, 12 * MiB, 3 * MiB, (x) => x.busy)), ['c', 'a', 'b']);
    assert.equal(b.victims(models, 12 * MiB, 7 * MiB, (x) => x.busy), undefined, 'the rest are pinned, held or busy');
    assert.deepEqual(names(b.victims(models, 4 * MiB, 2 * MiB, (x) => x.busy)), [], 'it fits');
    assert.deepEqual(names(b.victims(models, 4 * MiB, 2 * MiB, (x) => x.busy, 2)), ['c', 'a'], 'a count to free as well');
  });
});
