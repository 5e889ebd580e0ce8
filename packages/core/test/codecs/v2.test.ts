import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ModelSignature, decodeV1Body, decodeV2Request } from '@inferrer/core';

const ID_F32: ModelSignature = {
  inputs: [{ name: 'x', type: 'float32', shape: ['batch', 3] }],
  outputs: [{ name: 'y', type: 'float32', shape: ['batch', 3] }],
};
const ID_I64: ModelSignature = { inputs: [{ name: 'x', type: 'int64', shape: ['batch', 3] }], outputs: [{ name: 'y', type: 'int64', shape: ['batch', 3] }] };
const ID_STR: ModelSignature = { inputs: [{ name: 'x', type: 'string', shape: ['batch', 3] }], outputs: [{ name: 'y', type: 'string', shape: ['batch', 3] }] };

const json = (o: unknown): Buffer => Buffer.from(JSON.stringify(o));
const text = (s: string): Buffer => Buffer.from(s);

/** Binary BYTES elements: 4-byte little-endian length, then the bytes. */
function bytesElements(parts: Buffer[]): Buffer {
  return Buffer.concat(
    parts.flatMap((p) => {
      const len = Buffer.alloc(4);
      len.writeUInt32LE(p.length);
      return [len, p];
    }),
  );
}

describe('decodeV2Request: nesting', () => {
  test('data nested deeper than the rank is refused by the rank, even 100,000 levels deep', () => {
    const deep = `${'['.repeat(100_000)}1${']'.repeat(100_000)}`;
    assert.throws(() => decodeV2Request(text(`{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":${deep}}]}`), undefined, ID_F32), {
      code: 'INVALID_INPUT',
      message: "input 'x' nests lists deeper than its rank allows (at most 2 levels)",
    });
    // Nested as the shape says, or flat: both fine.
    assert.deepEqual(
      Array.from(
        decodeV2Request(json({ inputs: [{ name: 'x', shape: [1, 3], datatype: 'FP32', data: [[1, 2, 3]] }] }), undefined, ID_F32).inputs.x!
          .data as Float32Array,
      ),
      [1, 2, 3],
    );
  });

  test('deep text with a long integer (the lossless parser recurses) is a 400, not a stack overflow', () => {
    const deep = `${'['.repeat(100_000)}12345678901234567890${']'.repeat(100_000)}`;
    assert.throws(() => decodeV2Request(text(`{"inputs":[{"name":"x","shape":[1,3],"datatype":"INT64","data":[${deep}]}]}`), undefined, ID_I64), {
      code: 'INVALID_REQUEST',
      message: /deeper than 64 levels/,
    });
  });
});

describe('decodeV2Request: values out of range', () => {
  test('1e400 for FP32 names the input and the flat index', () => {
    assert.throws(() => decodeV2Request(text('{"inputs":[{"name":"x","shape":[2,3],"datatype":"FP32","data":[[1,2,3],[4,1e400,6]]}]}'), undefined, ID_F32), {
      code: 'INVALID_INPUT',
      message: /^input 'x' element 4: a number beyond 1.8e308 is out of range for FP32/,
    });
  });

  test('a 300-digit integer for INT64 is refused; 2^63-1 is kept exactly', () => {
    assert.throws(
      () => decodeV2Request(text(`{"inputs":[{"name":"x","shape":[1,3],"datatype":"INT64","data":[1,${'9'.repeat(300)},3]}]}`), undefined, ID_I64),
      {
        code: 'INVALID_INPUT',
        message: "input 'x' element 1: 99999999999999999999…(300 characters) is out of range for INT64 [-9223372036854775808, 9223372036854775807]",
      },
    );
    const ok = decodeV2Request(
      text('{"inputs":[{"name":"x","shape":[1,3],"datatype":"INT64","data":[9223372036854775807,-9223372036854775808,1]}]}'),
      undefined,
      ID_I64,
    );
    assert.deepEqual(Array.from(ok.inputs.x!.data as BigInt64Array), [9223372036854775807n, -9223372036854775808n, 1n]);
  });
});

describe('decodeV2Request: outputs', () => {
  test('the same output asked for twice is a 400', () => {
    const outputs = Array.from({ length: 100_000 }, () => ({ name: 'y' }));
    assert.throws(() => decodeV2Request(json({ inputs: [{ name: 'x', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }], outputs }), undefined, ID_F32), {
      code: 'INVALID_REQUEST',
      message: `output 'y' is asked for more than once in "outputs"`,
      details: { output: 'y' },
    });
  });
});

describe('decodeV2Request: BYTES elements must be text the runtime can carry', () => {
  test('JSON: a NUL character or an unpaired surrogate is refused, naming the element', () => {
    assert.throws(() => decodeV2Request(json({ inputs: [{ name: 'x', shape: [1, 3], datatype: 'BYTES', data: ['a', 'b\u0000c', 'd'] }] }), undefined, ID_STR), {
      code: 'INVALID_INPUT',
      message: /^input 'x' element 1: a BYTES element holds a NUL byte/,
    });
    assert.throws(() => decodeV2Request(text('{"inputs":[{"name":"x","shape":[1,3],"datatype":"BYTES","data":["a","b","\\ud800"]}]}'), undefined, ID_STR), {
      code: 'INVALID_INPUT',
      message: /^input 'x' element 2: a BYTES element holds an unpaired surrogate/,
    });
  });

  test('binary: a NUL byte or bytes that are not UTF-8 are refused, naming the element; UTF-8 text passes', () => {
    const send = (parts: Buffer[]) => {
      const bin = bytesElements(parts);
      const head = json({ inputs: [{ name: 'x', shape: [1, 3], datatype: 'BYTES', parameters: { binary_data_size: bin.length } }] });
      return decodeV2Request(Buffer.concat([head, bin]), head.length, ID_STR);
    };
    assert.throws(() => send([Buffer.from('a'), Buffer.from([0x61, 0xff, 0x62]), Buffer.from('c')]), {
      code: 'INVALID_INPUT',
      message: /^input 'x' element 1: a BYTES element holds bytes that are not valid UTF-8/,
    });
    assert.throws(() => send([Buffer.from('a'), Buffer.from('b'), Buffer.from([0x61, 0, 0x62])]), {
      code: 'INVALID_INPUT',
      message: /^input 'x' element 2: a BYTES element holds a NUL byte/,
    });
    assert.deepEqual(send([Buffer.from('a'), Buffer.from('é😀'), Buffer.from('')]).inputs.x!.data, ['a', 'é😀', '']);
  });
});

describe('decodeV1Body', () => {
  const IRIS: ModelSignature = {
    inputs: [{ name: 'input', type: 'float32', shape: ['batch', 4] }],
    outputs: [{ name: 'label', type: 'int64', shape: ['batch'] }],
  };

  test('parses the body as inference JSON (bare NaN accepted) and decodes it', () => {
    const d = decodeV1Body(Buffer.from('{"values": [1, NaN, 3, 4]}'), IRIS);
    assert.equal(d.rows, 1);
    assert.ok(Number.isNaN((d.inputs.input!.data as Float32Array)[1]));
  });

  test('100,000 nested arrays are a 400 naming the input and its rank', () => {
    const deep = `${'['.repeat(100_000)}1${']'.repeat(100_000)}`;
    assert.throws(() => decodeV1Body(Buffer.from(`{"values": ${deep}}`), IRIS), {
      code: 'INVALID_INPUT',
      message: "input 'input' nests lists deeper than its rank allows (at most 2 levels)",
    });
  });

  test('1e400 for an FP32 input is a 400 naming the element', () => {
    assert.throws(() => decodeV1Body(Buffer.from('{"values": [[1, 2, 3, 4], [5, 6, 7, 1e400]]}'), IRIS), {
      code: 'INVALID_INPUT',
      message: /^input 'input' element 7: a number beyond 1.8e308 is out of range for FP32/,
    });
  });
});

describe('decodeV2Request: schedule policy parameters', () => {
  const x = { name: 'x', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] };
  const decode = (parameters: unknown) => decodeV2Request(json({ inputs: [x], parameters }), undefined, ID_F32);

  test('priority 1 or 2 and a timeout in microseconds are kept; 0 or absent leaves the defaults', () => {
    const d = decode({ priority: 2, timeout: 250_000 });
    assert.equal(d.priority, 2);
    assert.equal(d.timeoutUs, 250_000);
    assert.equal(decode({ priority: 1 }).priority, 1);
    for (const parameters of [{ priority: 0, timeout: 0 }, {}]) {
      const plain = decode(parameters);
      assert.equal('priority' in plain, false, JSON.stringify(parameters));
      assert.equal('timeoutUs' in plain, false, JSON.stringify(parameters));
    }
  });

  test('the same parameters in a binary request header are read too', () => {
    const header = json({
      inputs: [{ name: 'x', shape: [1, 3], datatype: 'FP32', parameters: { binary_data_size: 12 } }],
      parameters: { priority: 2, timeout: 5 },
    });
    const d = decodeV2Request(Buffer.concat([header, Buffer.from(new Float32Array([1, 2, 3]).buffer)]), header.length, ID_F32);
    assert.equal(d.priority, 2);
    assert.equal(d.timeoutUs, 5);
  });

  test('a priority outside 0..2 or not a whole number, or a negative or fractional timeout, is a 400 naming it', () => {
    for (const priority of [3, -1, 1.5, '2', true]) {
      assert.throws(
        () => decode({ priority }),
        {
          code: 'INVALID_REQUEST',
          message: /^"parameters.priority" must be 0 \(the default level\), 1 or 2; got /,
          details: { parameter: 'priority', expected: [0, 2] },
        },
        JSON.stringify(priority),
      );
    }
    for (const timeout of [-1, 0.5, '100', 2 ** 60]) {
      assert.throws(
        () => decode({ timeout }),
        { code: 'INVALID_REQUEST', message: /^"parameters.timeout" must be a whole number of microseconds; got /, details: { parameter: 'timeout' } },
        JSON.stringify(timeout),
      );
    }
  });
});
