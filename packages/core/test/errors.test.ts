import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ERROR_CODES, type ErrorCode, InferrerError, STATUS_OF_KIND, fromWire, isErrorCode, redactPaths, statusOf, toInferrerError } from '@inferrer/core';

describe('InferrerError', () => {
  test('carries code, kind from the catalogue, details and retryAfter', () => {
    const err = new InferrerError('QUEUE_FULL', 'the queue for model iris is full', { model: 'iris', limit: 4 }, { retryAfter: 2 });
    assert.equal(err.name, 'InferrerError');
    assert.equal(err.code, 'QUEUE_FULL');
    assert.equal(err.kind, 'unavailable');
    assert.equal(err.message, 'the queue for model iris is full');
    assert.deepEqual(err.details, { model: 'iris', limit: 4 });
    assert.equal(err.retryAfter, 2);
    assert.ok(err instanceof Error);
  });

  test('leaves retryAfter out of the wire form when not given', () => {
    const err = new InferrerError('MODEL_NOT_FOUND', 'model iris not found', { model: 'iris' });
    assert.equal(err.retryAfter, undefined);
    assert.deepEqual(err.toJSON(), { code: 'MODEL_NOT_FOUND', kind: 'not_found', message: 'model iris not found', details: { model: 'iris' } });
  });

  test('keeps the cause', () => {
    const cause = new Error('disk on fire');
    const err = new InferrerError('INTERNAL', 'internal error', {}, { cause });
    assert.equal(err.cause, cause);
  });
});

describe('statusOf', () => {
  const table: [ErrorCode, number][] = [
    ['INVALID_REQUEST', 400],
    ['INVALID_JSON', 400],
    ['INVALID_INPUT', 400],
    ['INVALID_MODEL_NAME', 400],
    ['INVALID_MODEL', 400],
    ['UNSUPPORTED_MEDIA_TYPE', 415],
    ['MODEL_NOT_FOUND', 404],
    ['VERSION_NOT_FOUND', 404],
    ['ROUTE_NOT_FOUND', 404],
    ['MODEL_CONFLICT', 409],
    ['BODY_TOO_LARGE', 413],
    ['MODEL_TOO_LARGE', 413],
    ['MODEL_TOO_COSTLY', 413],
    ['UNAUTHORIZED', 401],
    ['FORBIDDEN', 403],
    ['RATE_LIMITED', 429],
    ['QUEUE_FULL', 503],
    ['MODEL_NOT_READY', 503],
    ['MODEL_LOAD_FAILED', 503],
    ['SERVER_DRAINING', 503],
    ['UPSTREAM_UNAVAILABLE', 502],
    ['METRICS_UNAVAILABLE', 503],
    ['DEADLINE_EXCEEDED', 504],
    ['REQUEST_CANCELLED', 499],
    ['PROVIDER_UNAVAILABLE', 501],
    ['INFERENCE_FAILED', 500],
    ['INFERENCE_TOO_COSTLY', 413],
    ['OUTPUT_TOO_LARGE', 413],
    ['STORAGE_FULL', 507],
    ['INTERNAL', 500],
    ['INVALID_IMAGE', 400],
    ['NOT_AN_IMAGE_MODEL', 400],
    ['INVALID_STAC_ITEM', 400],
    ['IMAGE_TOO_LARGE', 413],
    ['TOO_MANY_IMAGES', 413],
    ['IMPORT_DISABLED', 403],
    ['IMPORT_HOST_NOT_ALLOWED', 403],
    ['IMPORT_FETCH_FAILED', 502],
    ['INVALID_ARCHIVE', 400],
    ['JOB_NOT_FOUND', 404],
    ['JOB_TOO_LARGE', 413],
    ['QUOTA_EXCEEDED', 429],
    ['JOBS_UNAVAILABLE', 503],
    ['INVALID_PROFILE', 400],
    ['PROFILE_NOT_FOUND', 404],
    ['BODY_TOO_SLOW', 408],
    ['TOO_MANY_BODIES', 429],
    ['TOO_MANY_CONNECTIONS', 429],
  ];

  for (const [code, status] of table) {
    test(`${code} → ${status}`, () => {
      assert.equal(statusOf(new InferrerError(code, 'x')), status);
    });
  }

  test('the table above covers every code in the catalogue', () => {
    assert.deepEqual(table.map(([c]) => c).sort(), Object.keys(ERROR_CODES).sort());
  });

  test('every kind has a 4xx or 5xx status', () => {
    for (const [kind, status] of Object.entries(STATUS_OF_KIND)) {
      assert.ok(status >= 400 && status <= 599, `${kind} → ${status}`);
    }
    assert.ok(Object.isFrozen(STATUS_OF_KIND));
  });
});

describe('isErrorCode', () => {
  test('knows catalogue codes only', () => {
    assert.equal(isErrorCode('MODEL_NOT_FOUND'), true);
    assert.equal(isErrorCode('ENOENT'), false);
    assert.equal(isErrorCode('toString'), false);
    assert.equal(isErrorCode(42), false);
  });
});

describe('fromWire', () => {
  test('round-trips an error through JSON text', () => {
    const sent = new InferrerError('QUEUE_FULL', 'the queue for this model is full (4 requests waiting)', { limit: 4 }, { retryAfter: 1 });
    const got = fromWire(JSON.parse(JSON.stringify(sent)));
    assert.ok(got instanceof InferrerError);
    assert.equal(got.code, 'QUEUE_FULL');
    assert.equal(got.kind, 'unavailable');
    assert.equal(got.message, sent.message);
    assert.deepEqual(got.details, { limit: 4 });
    assert.equal(got.retryAfter, 1);
    assert.deepEqual(got.toJSON(), sent.toJSON());
  });

  test('takes the kind from the catalogue, not from the body', () => {
    const got = fromWire({ code: 'MODEL_NOT_FOUND', kind: 'internal', message: 'model iris not found', details: { model: 'iris' } });
    assert.equal(got.kind, 'not_found');
    assert.equal(statusOf(got), 404);
  });

  test('non-object details become {}', () => {
    const got = fromWire({ code: 'INVALID_INPUT', message: 'bad', details: 'nope' });
    assert.deepEqual(got.details, {});
  });

  for (const [what, body] of [
    ['an unknown code', { code: 'E_WHATEVER', message: 'x' }],
    ['a missing message', { code: 'MODEL_NOT_FOUND' }],
    ['a string', 'MODEL_NOT_FOUND'],
    ['null', null],
  ] as const) {
    test(`${what} becomes INTERNAL`, () => {
      const got = fromWire(body);
      assert.equal(got.code, 'INTERNAL');
      assert.equal(got.message, 'upstream answered with an unrecognised error');
    });
  }
});

describe('file paths never reach a client', () => {
  test('ONNX Runtime messages lose the staging path and its own source paths, and keep the rest', () => {
    const err = new InferrerError(
      'INVALID_MODEL',
      'ONNX Runtime cannot create a session for this model: Load model from /tmp/x/models/.staging/h~1~u/model.onnx failed:/onnxruntime_src/onnxruntime/core/graph/model.cc:180 Unsupported model IR version: 99',
    );
    assert.equal(err.message, 'ONNX Runtime cannot create a session for this model: Load model from <path> failed:<path> Unsupported model IR version: 99');
  });

  test('details are redacted too, at any depth', () => {
    const err = new InferrerError('INVALID_MODEL', 'x', { location: '/etc/passwd', nested: { list: ['(/root/a.onnx)', 3] }, n: 1 });
    assert.deepEqual(err.details, { location: '<path>', nested: { list: ['(<path>)', 3] }, n: 1 });
    assert.deepEqual(fromWire(err.toJSON()).details, err.details);
  });

  test('file URLs and Windows paths go; routes, URLs and fractions stay', () => {
    assert.equal(redactPaths('file:///srv/m.onnx and C:\\models\\m.onnx'), '<path> and <path>');
    for (const kept of [
      'PUT it to /api/v1/models/iris/versions/1/profile',
      'GET /help lists the routes',
      'https://api.eotdl.com/a/item.json answered 404',
      'model name "../x"',
      'a/b, 3/4 and / 2',
      'GET / answers',
    ]) {
      assert.equal(redactPaths(kept), kept);
    }
    assert.equal(redactPaths('no route GET /etc/passwd; GET /help lists the routes'), 'no route GET <path>; GET /help lists the routes');
  });
});

describe('toInferrerError', () => {
  test('returns an InferrerError unchanged', () => {
    const err = new InferrerError('INVALID_INPUT', 'bad input');
    assert.equal(toInferrerError(err), err);
  });

  test('hides the message of an unknown error but keeps it as the cause', () => {
    const raw = new Error('ENOENT: open /srv/secret/path/model.onnx');
    const err = toInferrerError(raw);
    assert.equal(err.code, 'INTERNAL');
    assert.equal(err.message, 'internal error');
    assert.equal(JSON.stringify(err.toJSON()).includes('secret'), false);
    assert.deepEqual(err.details, {});
    assert.equal(err.cause, raw);
  });

  test('an Error with a foreign code (fs) is INTERNAL', () => {
    const raw = Object.assign(new Error('no such file'), { code: 'ENOENT' });
    assert.equal(toInferrerError(raw).code, 'INTERNAL');
  });

  test('an InferrerError-shaped object from another copy of the library keeps its code', () => {
    const foreign = { name: 'InferrerError', code: 'VERSION_NOT_FOUND', message: 'model iris version 3 not found', details: { version: 3 } };
    const err = toInferrerError(foreign);
    assert.ok(err instanceof InferrerError);
    assert.equal(err.code, 'VERSION_NOT_FOUND');
    assert.equal(err.message, 'model iris version 3 not found');
    assert.deepEqual(err.details, { version: 3 });
  });

  test('non-errors (strings, undefined) become INTERNAL', () => {
    assert.equal(toInferrerError('boom').code, 'INTERNAL');
    assert.equal(toInferrerError(undefined).message, 'internal error');
  });
});
