import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { InferrerError, PARTED_BODY_BYTES, joinParts, parseJson, readBodyParts, readStream } from '@inferrer/core';

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

describe('readBodyParts', () => {
  /** A body of `n` bytes (a repeating pattern) in chunks of `chunk` bytes. */
  const body = (n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => i % 251));
  const inChunks = (b: Buffer, chunk: number): Readable =>
    Readable.from(Array.from({ length: Math.ceil(b.length / chunk) }, (_, i) => b.subarray(i * chunk, (i + 1) * chunk)));

  test('a large declared body comes in parts of 1 MiB that each own their memory, the bytes in order', async () => {
    const b = body(PARTED_BODY_BYTES + 0.5 * 1024 * 1024 + 7);
    const parts = await readBodyParts(inChunks(b, 65_536 - 3), 64 * 1024 * 1024, b.length);
    assert.deepEqual(
      parts.map((p) => p.length),
      [...Array.from({ length: PARTED_BODY_BYTES / (1024 * 1024) }, () => 1024 * 1024), 0.5 * 1024 * 1024 + 7],
    );
    for (const p of parts) assert.ok(p.byteOffset === 0 && p.byteLength === p.buffer.byteLength, 'the part owns its buffer (it can move to another thread)');
    assert.ok(joinParts(parts).equals(b));
  });

  test('a small or undeclared body comes as one part, read as readStream reads it', async () => {
    assert.deepEqual((await readBodyParts(chunks('ab', 'cd'), 100, 4)).map(String), ['abcd']);
    assert.deepEqual((await readBodyParts(chunks('ab', 'cd'), 100)).map(String), ['abcd']);
    const one = [Buffer.from('x')];
    assert.equal(joinParts(one), one[0]);
  });

  test('over the limit, or not the declared length, is refused', async () => {
    await assert.rejects(readBodyParts(chunks('x'), PARTED_BODY_BYTES, PARTED_BODY_BYTES + 1), { code: 'BODY_TOO_LARGE' });
    const b = body(PARTED_BODY_BYTES + 10);
    await assert.rejects(readBodyParts(inChunks(b, 1000), 1e9, b.length + 1), {
      code: 'INVALID_REQUEST',
      message: `the request body has ${b.length} bytes, not the ${b.length + 1} its Content-Length says`,
    });
    await assert.rejects(readBodyParts(inChunks(b, 1000), 1e9, b.length - 1), {
      code: 'INVALID_REQUEST',
      message: `the request body is longer than the ${b.length - 1} bytes its Content-Length says`,
    });
  });
});
