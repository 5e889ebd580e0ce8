import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { InferrerError, type ModelSignature } from '@inferrer/core';
import { MODEL_FILE, ModelStore, type ModelStoreOptions } from '@inferrer/model-store';
import { inspectModel } from '@inferrer/runtime';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const IRIS = path.join(ROOT, 'models/demo/iris.onnx');
const DIABETES = path.join(ROOT, 'models/demo/diabetes.onnx');
const FIXTURES = path.join(ROOT, 'test/fixtures/models');

let tmp: string;
let root: string;

beforeEach(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'inferrer-store-'));
  root = path.join(tmp, 'models');
});
afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function openStore(opts: ModelStoreOptions = {}): Promise<ModelStore> {
  const store = new ModelStore(root, opts);
  await store.init();
  return store;
}

/** Copies `src` into a fresh staging folder of the store, as an upload would arrive. */
async function stage(store: ModelStore, src: string, name = 'upload.bin'): Promise<string> {
  const dir = await store.stagingDir();
  const file = path.join(dir, name);
  await copyFile(src, file);
  return file;
}

async function sha256(file: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(file))
    .digest('hex');
}

/** Everything a reader can see, to compare before and after a refused write. */
async function snapshot(store: ModelStore): Promise<{ list: unknown; generation: number; entries: string[]; staging: string[]; trash: string[] }> {
  return {
    list: await store.list(),
    generation: await store.generation(),
    entries: (await readdir(root)).sort(),
    staging: await readdir(path.join(root, '.staging')),
    trash: await readdir(path.join(root, '.trash')),
  };
}

/** The pid of a process that has just exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0']);
  await new Promise((r) => child.once('exit', r));
  return child.pid!;
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

describe('ModelStore: init', () => {
  test('creates .staging, .trash and generation 0', async () => {
    const store = await openStore();
    assert.deepEqual((await readdir(root)).sort(), ['.generation', '.staging', '.trash']);
    assert.equal(await store.generation(), 0);
    assert.deepEqual(await store.list(), []);
  });

  test('a store that was never initialised reads as empty', async () => {
    const store = new ModelStore(path.join(tmp, 'nowhere'));
    assert.deepEqual(await store.list(), []);
    assert.equal(await store.generation(), 0);
    await assert.rejects(store.get('iris'), { code: 'MODEL_NOT_FOUND' });
  });

  test('a staging folder this store holds survives sweeps, however old', async () => {
    const store = await openStore({ leaseMs: 50 });
    const held = await store.stagingDir();
    const longAgo = new Date(Date.now() - 2 * 3_600_000);
    await utimes(held, longAgo, longAgo);
    assert.deepEqual(await store.sweep(), []);
    assert.equal(await exists(held), true);
    await store.discard(held);
    assert.equal(await exists(held), false);
  });

  test('leftovers of a writer on this host that is gone are reclaimed at once, at init', async () => {
    await openStore();
    const dead = await deadPid();
    const host = os
      .hostname()
      .replace(/[^A-Za-z0-9.-]/g, '-')
      .slice(0, 64);
    const staging = path.join(root, '.staging', `${host}~${dead}~upload`);
    const trash = path.join(root, '.trash', `${host}~${dead}~iris-x`);
    const alive = path.join(root, '.staging', `${host}~${process.ppid}~upload`);
    for (const d of [staging, trash, alive]) await mkdir(path.join(d, '1'), { recursive: true });
    const removed = await new ModelStore(root).init();
    assert.deepEqual(removed.sort(), [path.join('.staging', `${host}~${dead}~upload`), path.join('.trash', `${host}~${dead}~iris-x`)]);
    assert.equal(await exists(alive), true, 'a live process on this host still holds its folder');
  });

  test('other leftovers (other hosts, older names, temporary files) go once untouched for a lease', async () => {
    const store = await openStore({ leaseMs: 60_000 });
    await store.put('iris', await stage(store, IRIS));
    const paths = [
      path.join(root, '.staging', 'other-host~1~upload'),
      path.join(root, '.staging', '0b8c1f8e-legacy'),
      path.join(root, '.trash', 'iris-0b8c1f8e'),
      path.join(root, `.generation.${'0'.repeat(8)}-0000-0000-0000-${'0'.repeat(12)}.tmp`),
      path.join(root, 'iris', `model.json.${'1'.repeat(8)}-1111-1111-1111-${'1'.repeat(12)}.tmp`),
    ];
    for (const p of paths) {
      if (p.endsWith('.tmp')) await writeFile(p, 'x');
      else await mkdir(p, { recursive: true });
    }
    assert.deepEqual(await store.sweep(), [], 'fresh: another writer may be at work');
    const removed = await store.sweep(Date.now() + 61_000);
    assert.deepEqual(removed.sort(), paths.map((p) => path.relative(root, p)).sort());
    assert.equal((await store.get('iris')).default_version, 1, 'the model itself is untouched');
    assert.deepEqual((await readdir(path.join(root, 'iris'))).sort(), ['1', 'model.json']);
  });

  test('keeps an existing generation', async () => {
    const store = await openStore();
    await store.put('iris', await stage(store, IRIS));
    await new ModelStore(root).init();
    assert.equal(await store.generation(), 1);
  });
});

describe('ModelStore: put, get, resolve, list', () => {
  test('the first put creates version 1 as the default', async () => {
    const store = await openStore();
    const file = await stage(store, IRIS);
    const r = await store.put('iris', file, { description: 'iris MLP', labels: ['setosa', 'versicolor', 'virginica'], config: { instances: 2 } });
    assert.equal(r.created, true);
    assert.equal(r.version.version, 1);
    assert.equal(r.record.name, 'iris');
    assert.equal(r.record.default_version, 1);
    assert.equal(r.record.description, 'iris MLP');
    assert.deepEqual(r.record.labels, ['setosa', 'versicolor', 'virginica']);
    assert.deepEqual(r.record.config, { instances: 2 });
    assert.equal(r.version.file, MODEL_FILE);
    assert.equal(r.version.bytes, (await stat(IRIS)).size);
    assert.equal(r.version.sha256, await sha256(IRIS));
    assert.deepEqual(r.version.onnx, {
      ir_version: 7,
      opsets: [{ domain: '', version: 13 }],
      producer: 'pytorch 1.13.0',
      operators: ['ai.onnx:ArgMax', 'ai.onnx:Div', 'ai.onnx:Gemm', 'ai.onnx:Relu', 'ai.onnx:Softmax', 'ai.onnx:Sub'],
      nodes: 7,
    });
    // Without a validator there is no signature.
    assert.deepEqual(r.version.inputs, []);
    assert.equal(await exists(path.dirname(file)), false, 'the staging folder is gone');
    assert.deepEqual(await readdir(path.join(root, '.staging')), []);
  });

  test('get and resolve read the record back; .onnx names the same model', async () => {
    const store = await openStore();
    const { record } = await store.put('iris.onnx', await stage(store, IRIS));
    assert.deepEqual(await store.get('iris'), record);
    assert.deepEqual(await store.get('iris.onnx'), record);
    const resolved = await store.resolve('iris');
    assert.equal(resolved.file, path.join(root, 'iris', '1', MODEL_FILE));
    assert.equal(resolved.version.version, 1);
    assert.equal(await sha256(resolved.file), await sha256(IRIS));
    assert.deepEqual(JSON.parse(await readFile(path.join(root, 'iris', 'model.json'), 'utf8')), record);
  });

  test('list returns every model by name and skips folders that are not models', async () => {
    const store = await openStore();
    await store.put('iris', await stage(store, IRIS));
    await store.put('diabetes', await stage(store, DIABETES));
    await mkdir(path.join(root, 'not-a-model'));
    const names = (await store.list()).map((r) => r.name);
    assert.deepEqual(names, ['diabetes', 'iris']);
  });

  test('unknown models and versions name what is missing', async () => {
    const store = await openStore();
    await assert.rejects(store.get('ghost'), { code: 'MODEL_NOT_FOUND', message: 'model ghost not found', details: { model: 'ghost' } });
    await store.put('iris', await stage(store, IRIS));
    await assert.rejects(store.resolve('iris', 4), {
      code: 'VERSION_NOT_FOUND',
      message: 'model iris version 4 not found',
      details: { model: 'iris', version: 4, versions: [1] },
    });
  });

  test('a second put creates version 2 and makes it the default', async () => {
    const store = await openStore();
    await store.put('iris', await stage(store, IRIS), { description: 'first', config: { instances: 2 } });
    const r = await store.put('iris', await stage(store, DIABETES));
    assert.equal(r.created, false);
    assert.equal(r.version.version, 2);
    assert.equal(r.record.default_version, 2);
    assert.deepEqual(
      r.record.versions.map((v) => v.version),
      [1, 2],
    );
    assert.equal(r.record.description, 'first', 'the description is kept');
    assert.deepEqual(r.record.config, { instances: 2 }, 'the config is kept');
    assert.equal((await store.resolve('iris')).version.version, 2);
    assert.equal(await sha256((await store.resolve('iris')).file), await sha256(DIABETES));
    assert.equal(await sha256((await store.resolve('iris', 1)).file), await sha256(IRIS));
  });

  test('make_default: false adds a version without switching to it', async () => {
    const store = await openStore();
    await store.put('iris', await stage(store, IRIS));
    const r = await store.put('iris', await stage(store, IRIS), { make_default: false });
    assert.equal(r.version.version, 2);
    assert.equal(r.record.default_version, 1);
    assert.equal((await store.resolve('iris')).version.version, 1);
  });

  test('the validator sees the staged file and the merged config; its signature is recorded', async () => {
    const seen: { file: string; config: unknown; bytes: number }[] = [];
    const sig: ModelSignature = {
      inputs: [{ name: 'input', type: 'float32', shape: ['batch', 4] }],
      outputs: [{ name: 'label', type: 'int64', shape: ['batch'] }],
    };
    const store = await openStore({
      validate: async (file, config) => {
        seen.push({ file, config, bytes: (await stat(file)).size });
        return sig;
      },
    });
    await store.put('iris', await stage(store, IRIS), { config: { instances: 2 } });
    const r = await store.put('iris', await stage(store, IRIS), { config: { preload: true } });
    assert.equal(seen.length, 2);
    assert.equal(path.basename(seen[0]!.file), MODEL_FILE);
    assert.equal(path.dirname(path.dirname(seen[0]!.file)), path.join(root, '.staging'));
    assert.equal(seen[0]!.bytes, (await stat(IRIS)).size);
    assert.deepEqual(seen[1]!.config, { instances: 2, preload: true });
    assert.deepEqual(r.version.inputs, sig.inputs);
    assert.deepEqual(r.version.outputs, sig.outputs);
  });

  test('the real runtime validator records the model signature', async () => {
    const store = await openStore({ validate: (file) => inspectModel(file) });
    const r = await store.put('iris', await stage(store, IRIS));
    assert.deepEqual(r.version.inputs, [{ name: 'input', type: 'float32', shape: ['batch', 4] }]);
    assert.deepEqual(r.version.outputs, [
      { name: 'label', type: 'int64', shape: ['batch'] },
      { name: 'probabilities', type: 'float32', shape: ['batch', 3] },
    ]);
  });
});

describe('ModelStore: update and remove', () => {
  test('update changes description, config, labels and default version', async () => {
    const store = await openStore();
    await store.put('iris', await stage(store, IRIS), { description: 'v1', config: { instances: 2 } });
    await store.put('iris', await stage(store, IRIS));
    const rec = await store.update('iris', { description: 'the iris MLP', default_version: 1, config: { preload: true }, labels: ['a', 'b', 'c'] });
    assert.equal(rec.description, 'the iris MLP');
    assert.equal(rec.default_version, 1);
    assert.deepEqual(rec.config, { instances: 2, preload: true });
    assert.deepEqual(rec.labels, ['a', 'b', 'c']);
    assert.deepEqual(await store.get('iris'), rec);
    assert.equal((await store.resolve('iris')).version.version, 1);
  });

  test('model_description is an alias of description', async () => {
    const store = await openStore();
    await store.put('iris', await stage(store, IRIS), { model_description: 'from FRACTAL' });
    assert.equal((await store.get('iris')).description, 'from FRACTAL');
    assert.equal((await store.update('iris', { model_description: 'changed' })).description, 'changed');
  });

  test('an unknown default version is VERSION_NOT_FOUND and changes nothing', async () => {
    const store = await openStore();
    await store.put('iris', await stage(store, IRIS));
    const before = await snapshot(store);
    await assert.rejects(store.update('iris', { default_version: 7, description: 'never' }), {
      code: 'VERSION_NOT_FOUND',
      message: 'model iris version 7 not found',
      details: { model: 'iris', version: 7 },
    });
    assert.deepEqual(await snapshot(store), before);
  });

  test('updating a missing model is MODEL_NOT_FOUND', async () => {
    const store = await openStore();
    await assert.rejects(store.update('ghost', { description: 'x' }), { code: 'MODEL_NOT_FOUND', message: 'model ghost not found' });
  });

  test('remove takes the whole model out of sight', async () => {
    const store = await openStore();
    await store.put('iris', await stage(store, IRIS));
    await store.put('iris', await stage(store, IRIS));
    await store.put('diabetes', await stage(store, DIABETES));
    await store.remove('iris.onnx');
    await assert.rejects(store.get('iris'), { code: 'MODEL_NOT_FOUND' });
    assert.equal(await exists(path.join(root, 'iris')), false);
    assert.deepEqual(
      (await store.list()).map((r) => r.name),
      ['diabetes'],
    );
    await assert.rejects(store.remove('iris'), { code: 'MODEL_NOT_FOUND' });
    // The name can be used again, starting over at version 1.
    const again = await store.put('iris', await stage(store, IRIS));
    assert.equal(again.created, true);
    assert.equal(again.version.version, 1);
  });

  test('the generation goes up by one on every write and not on refusals', async () => {
    const store = await openStore();
    const seen = [await store.generation()];
    await store.put('iris', await stage(store, IRIS));
    seen.push(await store.generation());
    await store.put('iris', await stage(store, IRIS));
    seen.push(await store.generation());
    await store.update('iris', { description: 'x' });
    seen.push(await store.generation());
    // Patches that change nothing write nothing: the same description, and a rollback with no canary.
    await store.update('iris', { description: 'x' });
    await store.update('iris', { traffic: {} });
    await assert.rejects(store.update('iris', { default_version: 9 }));
    await assert.rejects(store.put('iris', await stage(store, path.join(FIXTURES, 'not_onnx.onnx'))));
    seen.push(await store.generation());
    await store.remove('iris');
    seen.push(await store.generation());
    assert.deepEqual(seen, [0, 1, 2, 3, 3, 4]);
    assert.equal((await readFile(path.join(root, '.generation'), 'utf8')).trim(), '4');
  });
});

describe('ModelStore: refused uploads leave the store as it was', () => {
  async function refusedPut(store: ModelStore, src: string, name = 'iris'): Promise<InferrerError> {
    await store.put('iris', await stage(store, IRIS), { description: 'kept' });
    const before = await snapshot(store);
    const file = await stage(store, src);
    let caught: unknown;
    try {
      await store.put(name, file);
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof InferrerError, `expected an InferrerError, got ${String(caught)}`);
    assert.deepEqual(await snapshot(store), before);
    assert.equal(await exists(path.dirname(file)), false, 'the staging folder is removed');
    const allowed = new Set(['.staging', '.trash', '.generation', '.write.lock', 'iris']);
    for (const e of await readdir(root)) assert.ok(allowed.has(e), `unexpected ${e} in the store`);
    assert.deepEqual(await readdir(path.join(root, 'iris')), ['1', 'model.json']);
    return caught;
  }

  test('a text file is INVALID_MODEL', async () => {
    const store = await openStore();
    const err = await refusedPut(store, path.join(FIXTURES, 'not_onnx.onnx'));
    assert.equal(err.code, 'INVALID_MODEL');
    assert.match(err.message, /^the file does not parse as an ONNX model/);
  });

  test('external data outside the folder is INVALID_MODEL', async () => {
    const store = await openStore();
    const err = await refusedPut(store, path.join(FIXTURES, 'external_escape.onnx'));
    assert.equal(err.code, 'INVALID_MODEL');
    assert.equal(err.message, 'the model refers to external data outside its folder ("../../../../etc/passwd")');
  });

  test('a new model that fails leaves no folder behind', async () => {
    const store = await openStore();
    const file = await stage(store, path.join(FIXTURES, 'not_onnx.onnx'));
    await assert.rejects(store.put('fresh', file), { code: 'INVALID_MODEL' });
    assert.deepEqual((await readdir(root)).sort(), ['.generation', '.staging', '.trash']);
    assert.deepEqual(await readdir(path.join(root, '.staging')), []);
    await assert.rejects(store.get('fresh'), { code: 'MODEL_NOT_FOUND' });
  });

  test('a validator that throws keeps its error and changes nothing', async () => {
    let calls = 0;
    const store = await openStore({
      validate: async () => {
        calls++;
        if (calls > 1) throw new InferrerError('INVALID_MODEL', 'ONNX Runtime cannot create a session for this model: boom');
        return { inputs: [], outputs: [] };
      },
    });
    const err = await refusedPut(store, DIABETES);
    assert.equal(calls, 2);
    assert.equal(err.code, 'INVALID_MODEL');
    assert.equal(err.message, 'ONNX Runtime cannot create a session for this model: boom');
  });

  test('the real runtime validator refuses not_onnx and external_escape', async () => {
    const store = await openStore({ validate: (file) => inspectModel(file) });
    const err = await refusedPut(store, path.join(FIXTURES, 'not_onnx.onnx'));
    assert.equal(err.code, 'INVALID_MODEL');
    const file = await stage(store, path.join(FIXTURES, 'external_escape.onnx'));
    await assert.rejects(store.put('iris', file), { code: 'INVALID_MODEL' });
    assert.deepEqual(
      (await store.get('iris')).versions.map((v) => v.version),
      [1],
    );
  });

  test('a bad name is INVALID_MODEL_NAME and the staging folder is removed', async () => {
    const store = await openStore();
    const err = await refusedPut(store, IRIS, '../x');
    assert.equal(err.code, 'INVALID_MODEL_NAME');
  });

  test('a file outside the staging folders is refused and its folder left alone', async () => {
    const store = await openStore();
    const outside = path.join(tmp, 'elsewhere');
    await mkdir(outside);
    await copyFile(IRIS, path.join(outside, 'model.onnx'));
    await writeFile(path.join(outside, 'keep.txt'), 'mine');
    await assert.rejects(store.put('iris', path.join(outside, 'model.onnx')), {
      code: 'INTERNAL',
      message: 'uploads must be written into a staging folder of this store',
    });
    assert.deepEqual((await readdir(outside)).sort(), ['keep.txt', 'model.onnx']);
    assert.deepEqual(await store.list(), []);
  });

  test('MODEL_CONFLICT when another writer holds the lock too long; the upload is cleaned up', async () => {
    const store = await openStore({ lockWaitMs: 200 });
    // proper-lockfile's lock is a fresh folder; a live writer keeps its mtime current.
    await mkdir(path.join(root, '.write.lock'));
    const file = await stage(store, IRIS);
    await assert.rejects(store.put('iris', file), { code: 'MODEL_CONFLICT', message: 'another writer holds the model store lock; retry' });
    await assert.rejects(store.update('iris', { description: 'x' }), { code: 'MODEL_CONFLICT' });
    assert.equal(await exists(path.dirname(file)), false);
    await rm(path.join(root, '.write.lock'), { recursive: true });
    await store.put('iris', await stage(store, IRIS));
    assert.equal((await store.get('iris')).default_version, 1);
  });
});

describe('ModelStore: names', () => {
  for (const bad of ['../x', '', 'a/b', 'a\0b', 'x'.repeat(300), '..']) {
    test(`refuses ${JSON.stringify(bad.length > 20 ? `${bad.slice(0, 8)}…(${bad.length})` : bad)} everywhere`, async () => {
      const store = await openStore();
      const expected = { code: 'INVALID_MODEL_NAME' };
      await assert.rejects(store.get(bad), expected);
      await assert.rejects(store.resolve(bad), expected);
      await assert.rejects(store.update(bad, { description: 'x' }), expected);
      await assert.rejects(store.remove(bad), expected);
      await assert.rejects(store.put(bad, await stage(store, IRIS)), expected);
      assert.deepEqual((await readdir(root)).sort(), ['.generation', '.staging', '.trash']);
      assert.deepEqual(await readdir(path.join(root, '.staging')), [], 'the staging folder is removed');
      assert.equal(await exists(path.join(tmp, 'x')), false);
    });
  }
});

describe('ModelStore: one stored name per model name', () => {
  test('a name that ends in .onnx twice is refused everywhere and stores nothing', async () => {
    const store = await openStore();
    await store.put('iris', await stage(store, IRIS));
    const before = await snapshot(store);
    for (const bad of ['zz.onnx.onnx', 'iris.onnx.onnx']) {
      await assert.rejects(store.put(bad, await stage(store, IRIS)), { code: 'INVALID_MODEL_NAME' });
      await assert.rejects(store.remove(bad), { code: 'INVALID_MODEL_NAME' });
      await assert.rejects(store.get(bad), { code: 'INVALID_MODEL_NAME' });
    }
    assert.deepEqual(await snapshot(store), before);
  });

  test('what put stores, get, update and remove find by the same name, with or without .onnx', async () => {
    const store = await openStore();
    const r = await store.put('a.b.onnx', await stage(store, IRIS));
    assert.equal(r.record.name, 'a.b');
    assert.equal((await store.get(r.record.name)).name, 'a.b');
    assert.equal((await store.update('a.b.ONNX', { description: 'd' })).description, 'd');
    await store.remove(r.record.name);
    assert.deepEqual(await store.list(), []);
  });

  test('list skips folders no name maps to (written by older versions)', async () => {
    const store = await openStore();
    await store.put('iris', await stage(store, IRIS));
    await mkdir(path.join(root, 'zz.onnx', '1'), { recursive: true });
    await writeFile(path.join(root, 'zz.onnx', 'model.json'), JSON.stringify({ ...(await store.get('iris')), name: 'zz.onnx' }));
    assert.deepEqual(
      (await store.list()).map((m) => m.name),
      ['iris'],
    );
  });
});

describe('ModelStore: a full volume', () => {
  let mounted: string | undefined;
  afterEach(() => {
    if (mounted) execFileSync('umount', [mounted]);
    mounted = undefined;
  });

  /** A 1 MiB tmpfs holding the store, filled to the last byte after `prepare`; undefined where mount is not allowed. */
  async function fullStore(t: { skip(reason: string): void }, prepare: (store: ModelStore) => Promise<void>): Promise<ModelStore | undefined> {
    const dir = path.join(tmp, 'volume');
    await mkdir(dir);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { stdio: 'ignore' });
    } catch {
      t.skip('mounting a tmpfs needs root with CAP_SYS_ADMIN');
      return undefined;
    }
    mounted = dir;
    root = path.join(dir, 'models');
    const store = await openStore();
    await prepare(store);
    await writeFile(path.join(dir, 'filler'), Buffer.alloc(1024 * 1024)).catch(() => {});
    await assert.rejects(writeFile(path.join(dir, 'probe'), 'x'), { code: 'ENOSPC' });
    return store;
  }

  test('update, setProfile and put answer STORAGE_FULL and change nothing; no temporary files stay', async (t) => {
    let staged = '';
    const store = await fullStore(t, async (s) => {
      await s.put('iris', await stage(s, IRIS));
      staged = await stage(s, IRIS); // arrived before the volume filled up
    });
    if (!store) return;
    const before = { ...(await snapshot(store)), staging: [] };
    await assert.rejects(store.update('iris', { description: 'changed' }), { code: 'STORAGE_FULL' });
    await assert.rejects(store.requestCapture('iris', 1, 10), { code: 'STORAGE_FULL' });
    await assert.rejects(store.put('iris', staged), { code: 'STORAGE_FULL' });
    assert.deepEqual(await snapshot(store), before, 'nothing changed, and the refused upload is gone from staging');
    assert.deepEqual((await readdir(path.join(root, 'iris'))).sort(), ['1', 'model.json']);
  });

  test('remove succeeds on a full volume: the model is gone and the generation moves, both or neither', async (t) => {
    const store = await fullStore(t, async (s) => {
      await s.put('iris', await stage(s, IRIS));
      await s.put('diabetes', await stage(s, DIABETES));
    });
    if (!store) return;
    const generation = await store.generation();
    await store.remove('iris');
    assert.equal(await store.generation(), generation + 1);
    assert.deepEqual(
      (await store.list()).map((m) => m.name),
      ['diabetes'],
    );
    await assert.rejects(store.get('iris'), { code: 'MODEL_NOT_FOUND' });
    // The space it held comes back: a write that did not fit now does.
    for (let i = 0; i < 50 && (await readdir(path.join(root, '.trash'))).length > 0; i++) await new Promise((r) => setTimeout(r, 20));
    await store.update('diabetes', { description: 'fits now' });
  });
});

describe('ModelStore: concurrent writers', () => {
  test('8 concurrent puts of one model get versions 1..8, each exactly once (real validator)', async () => {
    const store = await openStore({ validate: (file) => inspectModel(file) });
    const files = await Promise.all(Array.from({ length: 8 }, () => stage(store, IRIS)));
    const results = await Promise.all(files.map((f, i) => store.put('iris', f, { description: `upload ${i}` })));
    assert.deepEqual(
      results.map((r) => r.version.version).sort((a, b) => a - b),
      [1, 2, 3, 4, 5, 6, 7, 8],
    );
    assert.equal(results.filter((r) => r.created).length, 1);
    const rec = await store.get('iris');
    assert.deepEqual(
      rec.versions.map((v) => v.version),
      [1, 2, 3, 4, 5, 6, 7, 8],
    );
    assert.equal(rec.default_version, 8);
    assert.equal(await store.generation(), 8);
    assert.deepEqual((await readdir(path.join(root, 'iris'))).sort(), ['1', '2', '3', '4', '5', '6', '7', '8', 'model.json']);
    for (const v of rec.versions) {
      assert.deepEqual(v.inputs, [{ name: 'input', type: 'float32', shape: ['batch', 4] }]);
      assert.equal(await sha256((await store.resolve('iris', v.version)).file), v.sha256);
    }
    assert.deepEqual(await readdir(path.join(root, '.staging')), []);
  });

  test('concurrent puts of different models and an update all land', async () => {
    const store = await openStore();
    await store.put('iris', await stage(store, IRIS));
    const names = ['a', 'b', 'c', 'd'];
    await Promise.all([
      ...names.map(async (n) => store.put(n, await stage(store, DIABETES))),
      store.update('iris', { description: 'updated' }),
      (async () => store.put('iris', await stage(store, IRIS)))(),
    ]);
    assert.deepEqual(
      (await store.list()).map((r) => r.name),
      ['a', 'b', 'c', 'd', 'iris'],
    );
    const iris = await store.get('iris');
    assert.equal(iris.description, 'updated');
    assert.deepEqual(
      iris.versions.map((v) => v.version),
      [1, 2],
    );
    assert.equal(await store.generation(), 7);
  });
});
