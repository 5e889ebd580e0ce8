import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fmtRatio } from '../../bench/lib/table.ts';

describe('bench summary ratios', () => {
  test('two decimals, unless they would round a ratio onto the other side of its target', () => {
    // A full run's 19.7 / 21.9 images/s against ≥ 0.90 printed "0.90" beside FAIL.
    assert.equal(fmtRatio(19.7 / 21.9, 0.9, true), '0.8995');
    assert.equal(fmtRatio(0.89996, 0.9, true), '0.89996');
    assert.equal(fmtRatio(0.8712, 0.9, true), '0.87');
    assert.equal(fmtRatio(0.9, 0.9, true), '0.90');
    assert.equal(fmtRatio(0.9031, 0.9, true), '0.90');
    // At most: 2.004 against ≤ 2 fails and must not print as 2.00.
    assert.equal(fmtRatio(2.004, 2, false), '2.004');
    assert.equal(fmtRatio(1.96, 2, false), '1.96');
  });
});
