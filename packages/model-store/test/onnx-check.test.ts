import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import onnxProto from 'onnx-proto';
import { checkOnnxFile } from '@inferrer/model-store';
import { onnxOperators } from '@inferrer/model-store/onnx-check';
import { tripCountLoopModel } from '../../../test/helpers/costly-models.ts';

const { onnx } = onnxProto;

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const IRIS = path.join(ROOT, 'models/demo/iris.onnx');
const FIXTURES = path.join(ROOT, 'test/fixtures/models');

let tmp: string;
before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'inferrer-onnx-check-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/**
 * external_escape.onnx with its 22-byte external-data location swapped for another of the same length
 * (a protobuf string of equal length, so no other byte moves).
 */
async function withLocation(location: string): Promise<string> {
  assert.equal(Buffer.byteLength(location), 22, 'the location must keep the length of ../../../../etc/passwd');
  const bytes = await readFile(path.join(FIXTURES, 'external_escape.onnx'));
  const at = bytes.indexOf(Buffer.from('location\x12\x16../../../../etc/passwd', 'latin1'));
  assert.ok(at > 0);
  const out = Buffer.from(bytes);
  out.write(location, at + 'location\x12\x16'.length, 'latin1');
  const file = path.join(tmp, `${location.replace(/[^a-z]/gi, '_')}.onnx`);
  await writeFile(file, out);
  return file;
}

describe('checkOnnxFile', () => {
  test('reads the facts of a real model', async () => {
    const facts = await checkOnnxFile(IRIS, path.dirname(IRIS));
    assert.deepEqual(facts, {
      irVersion: 7,
      opsets: [{ domain: '', version: 13 }],
      producer: 'pytorch 1.13.0',
      externalData: [],
      operators: ['ai.onnx:ArgMax', 'ai.onnx:Div', 'ai.onnx:Gemm', 'ai.onnx:Relu', 'ai.onnx:Softmax', 'ai.onnx:Sub'],
      nodes: 7,
    });
  });

  test("operators: a subgraph's count, and a node's own domain", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'onnx-ops-'));
    try {
      const file = path.join(dir, 'loop.onnx');
      await writeFile(file, tripCountLoopModel());
      assert.deepEqual(await onnxOperators(file), { operators: ['ai.onnx:Add', 'ai.onnx:Identity', 'ai.onnx:Loop'], nodes: 3 });
      const custom = onnx.ModelProto.decode(await readFile(IRIS));
      custom.graph!.node!.push(onnx.NodeProto.create({ opType: 'FusedMatMul', domain: 'com.microsoft', input: ['a', 'b'], output: ['c'] }));
      await writeFile(file, onnx.ModelProto.encode(custom).finish());
      assert.deepEqual(
        (await checkOnnxFile(file, dir)).operators.filter((o) => !o.startsWith('ai.onnx:')),
        ['com.microsoft:FusedMatMul'],
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a text file is INVALID_MODEL: it does not parse', async () => {
    await assert.rejects(checkOnnxFile(path.join(FIXTURES, 'not_onnx.onnx'), FIXTURES), {
      code: 'INVALID_MODEL',
      message: /^the file does not parse as an ONNX model: /,
    });
  });

  test('a protobuf with no graph is INVALID_MODEL', async () => {
    const file = path.join(tmp, 'empty.onnx');
    await writeFile(file, Buffer.from([0x08, 0x07])); // ir_version = 7 and nothing else
    await assert.rejects(checkOnnxFile(file, tmp), {
      code: 'INVALID_MODEL',
      message: 'the file is not an ONNX model: it has no graph, nodes or opset imports',
    });
  });

  test('external data that climbs out of the folder is INVALID_MODEL naming the location', async () => {
    await assert.rejects(checkOnnxFile(path.join(FIXTURES, 'external_escape.onnx'), FIXTURES), {
      code: 'INVALID_MODEL',
      message: 'the model refers to external data outside its folder ("../../../../etc/passwd")',
      details: { location: '../../../../etc/passwd' },
    });
  });

  test('an absolute external data path is INVALID_MODEL', async () => {
    const file = await withLocation('/tmp/aaaaaaaaaaaaaaaaa');
    // Refused, and the absolute path is not echoed back (error bodies carry no file paths).
    await assert.rejects(checkOnnxFile(file, tmp), { code: 'INVALID_MODEL', details: { location: '<path>' } });
  });

  test('a path that dips into a subfolder and back out is INVALID_MODEL', async () => {
    const file = await withLocation('a/../../outside_WW.bin');
    await assert.rejects(checkOnnxFile(file, tmp), { code: 'INVALID_MODEL', details: { location: 'a/../../outside_WW.bin' } });
  });

  test('external data inside the folder is accepted and listed', async () => {
    const file = await withLocation('external_weights_W.bin');
    const facts = await checkOnnxFile(file, tmp);
    assert.deepEqual(facts.externalData, ['external_weights_W.bin']);
    assert.equal(facts.producer, 'inferrer-fixtures 1');
  });

  test('a path that stays inside through ./ and ../ is accepted', async () => {
    const file = await withLocation('sub/../inside_WWW.binx');
    assert.deepEqual((await checkOnnxFile(file, tmp)).externalData, ['sub/../inside_WWW.binx']);
  });

  test('a sibling folder that shares the prefix is outside', async () => {
    // <tmp>/m-evil starts with <tmp>/m as a string but is another folder.
    const file = await withLocation('../m-evil/weights_W.bin'.slice(0, 22));
    await assert.rejects(checkOnnxFile(file, path.join(tmp, 'm')), { code: 'INVALID_MODEL', details: { location: '../m-evil/weights_W.bi' } });
  });
});
