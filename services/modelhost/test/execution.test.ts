import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { maxSlots } from '../src/execution.ts';

const MiB = 1024 * 1024;

describe('maxSlots', () => {
  const base = { cpus: 8, sessionThreads: 8, budgetBytes: 4096 * MiB, slotBytes: 100 * MiB, limitBytes: 0 };

  test('one slot per core when memory is plentiful, and no more than the shared runtime threads', () => {
    assert.equal(maxSlots(base), 8);
    assert.equal(maxSlots({ ...base, sessionThreads: 3 }), 3);
    assert.equal(maxSlots({ ...base, sessionThreads: 0 }), 8, '0: a runtime thread per slot, no cap');
  });

  test('no more sessions than the memory budget and MODEL_MAX_MEMORY_MB hold', () => {
    assert.equal(maxSlots({ ...base, budgetBytes: 350 * MiB }), 3);
    assert.equal(maxSlots({ ...base, limitBytes: 250 * MiB }), 2);
  });

  test('at least one slot, even where one session does not fit (the budget refuses that load)', () => {
    assert.equal(maxSlots({ ...base, budgetBytes: 50 * MiB }), 1);
    assert.equal(maxSlots({ ...base, slotBytes: 0 }), 8, 'no expected cost: cores only');
  });
});
