import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InferrerError, parseModelName, parseVersion } from '@inferrer/core';

/** Asserts fn throws INVALID_MODEL_NAME and returns the error for further checks. */
function refused(fn: () => unknown): InferrerError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof InferrerError, `expected an InferrerError, got ${String(caught)}`);
  assert.equal(caught.code, 'INVALID_MODEL_NAME');
  return caught;
}

describe('parseModelName', () => {
  test('strips a .onnx suffix, in any case', () => {
    assert.equal(parseModelName('iris.onnx'), 'iris');
    assert.equal(parseModelName('iris.ONNX'), 'iris');
    assert.equal(parseModelName('iris'), 'iris');
  });

  test('maps every name to one stored name: parsing a parsed name changes nothing', () => {
    for (const raw of ['iris', 'iris.onnx', 'Iris.ONNX', 'a.onnx1', 'onnx', 'x.onnxy'])
      assert.equal(parseModelName(parseModelName(raw)), parseModelName(raw), raw);
  });

  test('refuses a name that ends in .onnx twice, in any case', () => {
    for (const raw of ['zz.onnx.onnx', 'iris.ONNX.onnx', 'a.onnx.Onnx']) {
      const err = refused(() => parseModelName(raw));
      assert.match(err.message, /may end in "\.onnx" only once/, raw);
    }
  });

  test('keeps letters, digits, dots, underscores and dashes', () => {
    assert.equal(parseModelName('Iris_v2-final.1'), 'Iris_v2-final.1');
    assert.equal(parseModelName('7up'), '7up');
  });

  test('accepts 128 characters and refuses 129', () => {
    assert.equal(parseModelName('a'.repeat(128)), 'a'.repeat(128));
    refused(() => parseModelName('a'.repeat(129)));
  });

  test('refuses ../x and names the problem', () => {
    const err = refused(() => parseModelName('../x'));
    assert.match(err.message, /^model name "\.\.\/x" is not allowed: use 1-128 letters, digits/);
    assert.deepEqual(err.details, { got: '../x', length: 4 });
  });

  test('refuses the empty name with its own message', () => {
    const err = refused(() => parseModelName(''));
    assert.equal(err.message, 'the model name is empty');
  });

  test('refuses a missing name', () => {
    const err = refused(() => parseModelName(undefined));
    assert.equal(err.message, 'the model name is empty');
    assert.deepEqual(err.details, { got: null });
  });

  test('refuses 300 characters and shortens the echo to 64', () => {
    const raw = 'b'.repeat(300);
    const err = refused(() => parseModelName(raw));
    assert.equal(err.details.got, `${'b'.repeat(64)}…`);
    assert.equal(err.details.length, 300);
    assert.ok(err.message.length < 250, err.message);
  });

  for (const [what, raw] of [
    ['a slash', 'a/b'],
    ['a backslash', 'a\\b'],
    ['NUL', 'a\0b'],
    ['a dotted parent inside', 'a..b'],
    ['a leading dot', '.hidden'],
    ['a leading dash', '-rf'],
    ['only the suffix', '.onnx'],
    ['a space', 'my model'],
    ['a non-ASCII letter', 'modèle'],
  ] as const) {
    test(`refuses ${what}`, () => {
      refused(() => parseModelName(raw));
    });
  }

  test('refuses non-strings', () => {
    refused(() => parseModelName(42));
  });
});

describe('parseVersion', () => {
  test('accepts positive integers as numbers and decimal strings', () => {
    assert.equal(parseVersion(1), 1);
    assert.equal(parseVersion(42), 42);
    assert.equal(parseVersion('7'), 7);
    assert.equal(parseVersion('123456789'), 123456789);
  });

  for (const raw of [0, -1, 1.5, Number.NaN, '0', '01', '-1', '1.0', '1e3', '', 'v1', '1234567890', null, undefined]) {
    test(`refuses ${typeof raw === 'string' ? JSON.stringify(raw) : String(raw)}`, () => {
      const err = refused(() => parseVersion(raw));
      assert.equal(err.message, `version ${JSON.stringify(String(raw).slice(0, 32))} is not a positive integer`);
    });
  }
});
