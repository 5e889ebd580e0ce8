import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { InferrerError, parseJson, readStream } from '@inferrer/core';

const chunks = (...parts: string[]): Readable => Readable.from(parts.map((p) => Buffer.from(p)));

describe('readStream', () => {
  test('joins the chunks of a body under the limit', async () => {
    const buf = await readStream(chunks('{"values":', '[1,2,', '3]}'), 100);
    assert.equal(buf.toString('utf8'), '{"values":[1,2,3]}');
  });

  test('a body of exactly the limit is accepted', async () => {
    const buf = await readStream(chunks('abcd', 'efgh'), 8);
    assert.equal(buf.toString(), 'abcdefgh');
  });

  test('one byte over the limit is BODY_TOO_LARGE with limit and size so far', async () => {
    await assert.rejects(readStream(chunks('abcd', 'efghi'), 8), {
      code: 'BODY_TOO_LARGE',
      kind: 'too_large',
      message: 'the request body is larger than the limit of 8 bytes',
      details: { limit: 8, got: 9 },
    });
  });

  test('stops reading as soon as the limit is crossed', async () => {
    const stream = new PassThrough();
    const p = readStream(stream, 4);
    stream.write(Buffer.from('123'));
    stream.write(Buffer.from('456'));
    await assert.rejects(p, { code: 'BODY_TOO_LARGE' });
    assert.equal(stream.isPaused(), true);
    assert.equal(stream.listenerCount('data'), 0);
    assert.equal(stream.listenerCount('end'), 0);
    stream.destroy();
  });

  test('a declared length over the limit is refused before reading', async () => {
    const stream = new PassThrough();
    await assert.rejects(readStream(stream, 10, 11), { code: 'BODY_TOO_LARGE', details: { limit: 10, got: 11 } });
    assert.equal(stream.listenerCount('data'), 0);
    stream.destroy();
  });

  test('a stream error is INVALID_REQUEST naming the cause', async () => {
    const stream = new PassThrough();
    const p = readStream(stream, 100);
    stream.write(Buffer.from('12'));
    stream.destroy(new Error('socket hang up'));
    await assert.rejects(p, { code: 'INVALID_REQUEST', message: 'the request body could not be read: socket hang up' });
  });

  test('an aborted request is INVALID_REQUEST', async () => {
    const stream = new PassThrough();
    const p = readStream(stream, 100);
    stream.emit('aborted');
    await assert.rejects(p, { code: 'INVALID_REQUEST', message: 'the client closed the connection before the body was complete' });
    stream.destroy();
  });

  test('an empty body is an empty buffer', async () => {
    const buf = await readStream(Readable.from([]), 10);
    assert.equal(buf.length, 0);
  });
});

describe('parseJson', () => {
  test('parses buffers and strings', () => {
    assert.deepEqual(parseJson(Buffer.from('{"values":[1]}')), { values: [1] });
    assert.deepEqual(parseJson('[1,2]'), [1, 2]);
  });

  test('an empty body is INVALID_JSON asking for an object', () => {
    assert.throws(() => parseJson(''), { code: 'INVALID_JSON', message: 'the body is empty; send a JSON object' });
  });

  test('broken JSON is INVALID_JSON with the parser message', () => {
    assert.throws(
      () => parseJson('{"values": [1,'),
      (err: unknown) => err instanceof InferrerError && err.code === 'INVALID_JSON' && err.message.startsWith('the body is not valid JSON: '),
    );
  });
});
