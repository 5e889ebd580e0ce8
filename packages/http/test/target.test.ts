import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseTarget } from '../src/target.ts';

describe('parseTarget', () => {
  test('splits path and query, decoding each segment once', () => {
    assert.deepEqual(parseTarget('/api/v1/models/iris?x=1'), { segments: ['api', 'v1', 'models', 'iris'], path: '/api/v1/models/iris', query: 'x=1' });
    assert.deepEqual(parseTarget('/').segments, []);
    assert.deepEqual(parseTarget('/%61pi/ir%69s').segments, ['api', 'iris']);
    assert.equal(parseTarget('/%61pi/ir%69s').path, '/api/iris');
    assert.deepEqual(parseTarget('/a/%2541').segments, ['a', '%41'], 'decoded exactly once');
  });

  test('%2F stays inside its segment; dots, empty segments and ; are kept as they are', () => {
    assert.deepEqual(parseTarget('/api/v1%2Fmodels').segments, ['api', 'v1/models']);
    assert.equal(parseTarget('/api/v1%2Fmodels').path, '/api/v1%2Fmodels');
    assert.deepEqual(parseTarget('/a/%2e%2e/b').segments, ['a', '..', 'b']);
    assert.deepEqual(parseTarget('//a/').segments, ['', 'a', '']);
    assert.deepEqual(parseTarget('/a;x=1').segments, ['a;x=1']);
  });

  test('an invalid encoding or a target that is not a path is INVALID_REQUEST', () => {
    for (const t of ['/api/%', '/v2/models/%E0%A4%A/infer', '/%zz', '/%C0']) {
      assert.throws(
        () => parseTarget(t),
        (e: { code: string; message: string }) => e.code === 'INVALID_REQUEST' && /percent-encoding/.test(e.message),
        t,
      );
    }
    assert.throws(() => parseTarget('http://example.com/x'), { code: 'INVALID_REQUEST' });
    assert.throws(() => parseTarget('*'), { code: 'INVALID_REQUEST' });
    assert.throws(() => parseTarget(`/${'a'.repeat(9000)}`), { code: 'INVALID_REQUEST' });
  });
});
