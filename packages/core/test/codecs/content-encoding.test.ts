import assert from 'node:assert/strict';
import { test } from 'node:test';
import zlib from 'node:zlib';
import { MAX_INFLATE_RATIO, MIN_INFLATE_BYTES, decodeContent, encodeContent, inflateLimit, pickCoding } from '../../src/codecs/content-encoding.ts';

const text = Buffer.from('{"inputs": []}'.repeat(100));

test('identity, gzip, x-gzip, zlib deflate and raw deflate bodies inflate to the original', async () => {
  assert.equal(await decodeContent(text, undefined, 1e6), text);
  assert.equal(await decodeContent(text, 'identity', 1e6), text);
  assert.deepEqual(await decodeContent(zlib.gzipSync(text), 'gzip', 1e6), text);
  assert.deepEqual(await decodeContent(zlib.gzipSync(text), 'X-Gzip', 1e6), text);
  assert.deepEqual(await decodeContent(zlib.deflateSync(text), 'deflate', 1e6), text);
  assert.deepEqual(await decodeContent(zlib.deflateRawSync(text), 'deflate', 1e6), text);
});

test('corrupt data, an unknown coding and a body inflating past the limit are refused with their codes', async () => {
  await assert.rejects(decodeContent(Buffer.from('nope'), 'gzip', 1e6), { code: 'INVALID_REQUEST' });
  await assert.rejects(decodeContent(Buffer.from('x'), 'deflate', 1e6), { code: 'INVALID_REQUEST' });
  await assert.rejects(decodeContent(text, 'br', 1e6), { code: 'UNSUPPORTED_MEDIA_TYPE' });
  await assert.rejects(decodeContent(text, 'gzip, gzip', 1e6), { code: 'UNSUPPORTED_MEDIA_TYPE' });
  await assert.rejects(decodeContent(zlib.gzipSync(Buffer.alloc(10_000)), 'gzip', 9_999), { code: 'BODY_TOO_LARGE' });
  assert.equal((await decodeContent(zlib.gzipSync(Buffer.alloc(10_000)), 'gzip', 10_000)).length, 10_000);
});

test('Accept-Encoding picks the preferred of gzip and deflate by q-value', () => {
  assert.equal(pickCoding(undefined), undefined);
  assert.equal(pickCoding('gzip'), 'gzip');
  assert.equal(pickCoding('deflate, gzip'), 'gzip');
  assert.equal(pickCoding('gzip;q=0.5, deflate'), 'deflate');
  assert.equal(pickCoding('br'), undefined);
  assert.equal(pickCoding('gzip;q=0'), undefined);
  assert.equal(pickCoding('*'), 'gzip');
  assert.equal(pickCoding('*;q=0.1, gzip;q=0'), 'deflate');
  assert.equal(pickCoding('identity'), undefined);
});

test('answers compress and inflate back', async () => {
  assert.deepEqual(zlib.gunzipSync(await encodeContent(text, 'gzip')), text);
  assert.deepEqual(zlib.inflateSync(await encodeContent(text, 'deflate')), text);
});

test('inflateLimit: a ratio of the compressed size, a floor for small bodies, never past the body limit', () => {
  assert.equal(inflateLimit(100, 64e6), MIN_INFLATE_BYTES);
  assert.equal(inflateLimit(1e6, 64e6), 1e6 * MAX_INFLATE_RATIO);
  assert.equal(inflateLimit(10e6, 64e6), 64e6);
  assert.equal(inflateLimit(100, 1000), 1000);
});
