import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type FrameHeader, FrameReader, decodeFrames, encodeFrame } from '@inferrer/core';

function collect(limits?: { maxHeaderBytes: number; maxBodyBytes: number }): { reader: FrameReader; frames: { header: FrameHeader; body: string }[] } {
  const frames: { header: FrameHeader; body: string }[] = [];
  const reader = new FrameReader((header, body) => frames.push({ header, body: body.toString('utf8') }), limits);
  return { reader, frames };
}

describe('frames', () => {
  test('a frame round-trips its header fields and body, and the header carries the body length', () => {
    const [f] = decodeFrames(encodeFrame({ path: '/v1/models/iris/predict', headers: { 'x-request-id': 'a' } }, '{"values":[1,2,3,4]}'));
    assert.deepEqual(f!.header, { path: '/v1/models/iris/predict', headers: { 'x-request-id': 'a' }, length: 20 });
    assert.equal(f!.body.toString(), '{"values":[1,2,3,4]}');
  });

  test('binary bodies, empty bodies and multi-byte text keep their exact bytes', () => {
    const bin = Buffer.from([0, 255, 1, 254, 0]);
    const frames = decodeFrames(Buffer.concat([encodeFrame({ i: 0 }, bin), encodeFrame({ i: 1 }, ''), encodeFrame({ i: 2, note: 'é✓' }, 'ünïcødé')]));
    assert.deepEqual(
      frames.map((f) => f.header.i),
      [0, 1, 2],
    );
    assert.deepEqual(frames[0]!.body, bin);
    assert.equal(frames[1]!.body.length, 0);
    assert.equal(frames[2]!.header.note, 'é✓');
    assert.equal(frames[2]!.body.toString('utf8'), 'ünïcødé');
    assert.equal(frames[2]!.header.length, Buffer.byteLength('ünïcødé'));
  });

  test('frames split across chunks at every byte boundary come out whole and in order', () => {
    const whole = Buffer.concat([encodeFrame({ i: 0 }, 'first body'), encodeFrame({ i: 1 }, 'second'), encodeFrame({ i: 2 }, '')]);
    for (let cut = 0; cut <= whole.length; cut++) {
      const { reader, frames } = collect();
      reader.push(whole.subarray(0, cut));
      reader.push(whole.subarray(cut));
      assert.deepEqual(
        frames.map((f) => [f.header.i, f.body]),
        [
          [0, 'first body'],
          [1, 'second'],
          [2, ''],
        ],
        `cut at ${cut}`,
      );
      assert.equal(reader.partial, false);
    }
    // One byte at a time.
    const { reader, frames } = collect();
    for (const b of whole) reader.push(Buffer.from([b]));
    assert.equal(frames.length, 3);
  });

  test('partial says a stream stopped mid-frame; decodeFrames refuses such a body', () => {
    const whole = encodeFrame({ i: 0 }, 'abcdef');
    const { reader, frames } = collect();
    reader.push(whole.subarray(0, whole.length - 1));
    assert.equal(frames.length, 0);
    assert.equal(reader.partial, true);
    assert.throws(() => decodeFrames(whole.subarray(0, 3)), { code: 'INVALID_REQUEST', message: /middle of a frame/ });
  });

  test('malformed frames are INVALID_REQUEST naming the problem', () => {
    const lengthOnly = (n: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(n);
      return b;
    };
    const withHeader = (json: string): Buffer => Buffer.concat([lengthOnly(Buffer.byteLength(json)), Buffer.from(json)]);
    assert.throws(() => decodeFrames(lengthOnly(0)), { code: 'INVALID_REQUEST', message: /frame header must be 1 to 65536 bytes/ });
    assert.throws(() => decodeFrames(lengthOnly(2 ** 31)), { code: 'INVALID_REQUEST', message: /frame header must be 1 to/ });
    assert.throws(() => decodeFrames(withHeader('{not json')), { code: 'INVALID_REQUEST', message: /not valid JSON/ });
    assert.throws(() => decodeFrames(withHeader('[1,2]')), { code: 'INVALID_REQUEST', message: /must be a JSON object/ });
    assert.throws(() => decodeFrames(withHeader('{"length":-1}')), { code: 'INVALID_REQUEST', message: /length must be an integer/ });
    assert.throws(() => decodeFrames(withHeader('{"length":1.5}')), { code: 'INVALID_REQUEST', message: /length must be an integer/ });
    assert.throws(() => decodeFrames(withHeader('{}')), { code: 'INVALID_REQUEST', message: /length must be an integer/ });
  });

  test('a body over the limit is refused from its header, before the bytes arrive', () => {
    const { reader } = collect({ maxHeaderBytes: 100, maxBodyBytes: 10 });
    const frame = encodeFrame({ i: 0 }, 'x'.repeat(11));
    assert.throws(() => reader.push(frame.subarray(0, frame.length - 10)), { code: 'INVALID_REQUEST', message: /from 0 to 10/ });
  });
});
