import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { identityChainModel, tileModel, tripCountLoopModel } from '../../../test/helpers/costly-models.ts';
import { inlineRefusal, maxSlots } from '../src/execution.ts';

const IRIS = path.join(import.meta.dirname, '../../../models/demo/iris.onnx');

const MiB = 1024 * 1024;

describe('maxSlots', () => {
  const base = { cpus: 8, sessionThreads: 8, budgetBytes: 4096 * MiB, slotBytes: 100 * MiB, limitBytes: 0 };

  test('one slot per core when memory is plentiful, and no more than the shared runtime threads', () => {
    assert.equal(maxSlots(base), 8);
    assert.equal(maxSlots({ ...base, sessionThreads: 3 }), 3);
    assert.equal(maxSlots({ ...base, sessionThreads: 0 }), 8, '0: a runtime thread per slot, no cap');
  });

  test('no more sessions than the memory budget and MODEL_MAX_MEMORY_MB hold', () => {
    assert.equal(maxSlots({ ...base, budgetBytes: 350 * MiB }), 3);
    assert.equal(maxSlots({ ...base, limitBytes: 250 * MiB }), 2);
  });

  test('at least one slot, even where one session does not fit (the budget refuses that load)', () => {
    assert.equal(maxSlots({ ...base, budgetBytes: 50 * MiB }), 1);
    assert.equal(maxSlots({ ...base, slotBytes: 0 }), 8, 'no expected cost: cores only');
  });
});

describe("inlineRefusal: which cheap models may run on the worker's own thread", () => {
  test('a plain graph may; loops, shapes from values, unknown domains, other providers and big files may not', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'inline-refusal-'));
    try {
      assert.equal(await inlineRefusal(IRIS, ['cpu']), undefined, 'operators read from the file');
      assert.equal(await inlineRefusal(IRIS, ['cpu'], { operators: ['ai.onnx:Gemm', 'ai.onnx:Relu'], nodes: 2 }), undefined);
      assert.equal(await inlineRefusal(IRIS, ['cuda', 'cpu']), 'it runs on cuda, cpu');
      assert.equal(
        await inlineRefusal(IRIS, ['cpu'], { operators: ['ai.onnx:Gemm', 'ai.onnx:Loop'], nodes: 2 }),
        "its graph uses Loop, whose work can grow with the request's values",
        "the record's operators decide",
      );
      assert.equal(
        await inlineRefusal(IRIS, ['cpu'], { operators: ['ai.onnx:Gemm', 'com.microsoft:FusedMatMul'], nodes: 2 }),
        'its graph uses operators of com.microsoft, whose cost is not known here',
      );

      const loop = path.join(dir, 'loop.onnx');
      await writeFile(loop, tripCountLoopModel());
      assert.equal(await inlineRefusal(loop, ['cpu']), "its graph uses Loop, whose work can grow with the request's values");
      const tile = path.join(dir, 'tile.onnx');
      await writeFile(tile, tileModel());
      assert.equal(await inlineRefusal(tile, ['cpu']), "its graph uses Tile, whose work can grow with the request's values");
      assert.equal(
        await inlineRefusal(IRIS, ['cpu'], { operators: ['ai.onnx:Identity'], nodes: 600 }),
        "its graph has 600 nodes, over 500 (creating it would hold the worker's thread too long)",
      );
      const chain = path.join(dir, 'chain.onnx');
      await writeFile(chain, identityChainModel(501));
      assert.match((await inlineRefusal(chain, ['cpu']))!, /^its graph has 501 nodes, over 500/, 'counted from the file where the record has no count');
      // The same path with other contents (a model deleted and uploaded again): read again.
      await copyFile(IRIS, loop);
      assert.equal(await inlineRefusal(loop, ['cpu']), undefined);

      const big = path.join(dir, 'big.onnx');
      await copyFile(IRIS, big);
      await truncate(big, 9 * 1024 * 1024);
      assert.match((await inlineRefusal(big, ['cpu'], { operators: ['ai.onnx:Gemm'], nodes: 1 }))!, /^its file is 9 MB, over 8 MB/);
      const garbage = path.join(dir, 'garbage.onnx');
      await writeFile(garbage, Buffer.from([0xff, 0xff, 0xff]));
      assert.equal(await inlineRefusal(garbage, ['cpu']), 'its graph could not be parsed');
      assert.equal(await inlineRefusal(path.join(dir, 'missing.onnx'), ['cpu']), 'its file could not be read (ENOENT)');
      // What the record keeps (size, graph) decides without a call on the file.
      assert.equal(await inlineRefusal(path.join(dir, 'missing.onnx'), ['cpu'], { bytes: 4096, operators: ['ai.onnx:Gemm'], nodes: 1 }), undefined);
      assert.match((await inlineRefusal(IRIS, ['cpu'], { bytes: 9 * 1024 * 1024, operators: ['ai.onnx:Gemm'], nodes: 1 }))!, /^its file is 9 MB/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
