import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { V2_DATATYPES, datatypeOfOrt, datatypeOfV2, elementCount } from '@inferrer/core';

describe('datatypes', () => {
  test('v2 and ORT names map to the same entry', () => {
    assert.equal(datatypeOfV2('FP32'), datatypeOfOrt('float32'));
    assert.equal(datatypeOfV2('INT64')!.bigint, true);
    assert.equal(datatypeOfV2('FP16')!.array, Uint16Array);
    assert.equal(datatypeOfV2('BYTES')!.ort, 'string');
    assert.equal(datatypeOfV2('fp32'), undefined);
    assert.equal(datatypeOfOrt('complex64'), undefined);
    assert.equal(V2_DATATYPES.length, 13);
  });

  test('elementCount', () => {
    assert.equal(elementCount([]), 1);
    assert.equal(elementCount([2, 1, 8, 8]), 128);
    assert.equal(elementCount([3, 0]), 0);
  });
});
