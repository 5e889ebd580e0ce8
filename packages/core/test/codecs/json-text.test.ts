import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_JSON_DEPTH, checkJsonDepth, jsonDepthExceededAt, parseInferenceJson, parseJson } from '@inferrer/core';

const nested = (depth: number, leaf = '1'): string => '['.repeat(depth) + leaf + ']'.repeat(depth);

describe('JSON nesting depth', () => {
  test('counts arrays and objects, not brackets inside strings', () => {
    assert.equal(jsonDepthExceededAt('[[1],{"a":[2]}]', 3), -1);
    assert.equal(jsonDepthExceededAt('[[1],{"a":[2]}]', 2), 10);
    assert.equal(jsonDepthExceededAt('["[[[[", "\\"[[[["]', 1), -1);
    assert.equal(jsonDepthExceededAt(nested(5), 5), -1);
    assert.equal(jsonDepthExceededAt(nested(6), 5), 5);
  });

  test('100,000 nested arrays are measured without recursion and refused', () => {
    assert.throws(() => checkJsonDepth(nested(100_000)), {
      code: 'INVALID_REQUEST',
      message: `the JSON nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels (at character ${MAX_JSON_DEPTH})`,
    });
  });

  test('parseJson refuses text nested deeper than MAX_JSON_DEPTH and parses what fits', () => {
    assert.throws(() => parseJson(`{"data": ${nested(100_000)}}`), { code: 'INVALID_REQUEST' });
    assert.deepEqual(parseJson(nested(MAX_JSON_DEPTH - 1)), JSON.parse(nested(MAX_JSON_DEPTH - 1)));
  });

  test('parseInferenceJson checks the depth when asked, and always on the lossless path (it recurses)', () => {
    assert.throws(() => parseInferenceJson(nested(100, '1'), { maxDepth: 10 }), { code: 'INVALID_REQUEST' });
    // A long integer takes the lossless parser, which would overflow the stack on deep text.
    assert.throws(() => parseInferenceJson(nested(100_000, '12345678901234567890')), { code: 'INVALID_REQUEST' });
    assert.deepEqual(parseInferenceJson(nested(3, '12345678901234567890')), [[[12345678901234567890n]]]);
    // The native parser does not recurse: without maxDepth, deep text parses (the decoders check the rank).
    assert.ok(Array.isArray(parseInferenceJson(nested(100_000))));
  });
});
