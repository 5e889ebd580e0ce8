import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { httpStatusBody } from '@inferrer/core';

describe('httpStatusBody', () => {
  test('names and describes known codes like Python http.HTTPStatus', () => {
    assert.deepEqual(httpStatusBody(503), { code: 503, description: 'The server cannot process the request due to a high load', name: 'SERVICE_UNAVAILABLE' });
    assert.deepEqual(httpStatusBody(418), { code: 418, description: 'Unknown status', name: 'UNKNOWN' });
  });
});
