/** STAC MLM items: parsed, checked against the ONNX graph, resolved into the image pipeline; stored with the version. */
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import type { ModelSignature } from '@inferrer/core';
import { ModelStore, STAC_FILE, checkStacAgainstSignature, parseStacItem, resolvePipeline } from '../src/index.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DIGITS_ITEM = JSON.parse(await readFile(path.join(ROOT, 'test/fixtures/images/digits.stac.json'), 'utf8')) as Record<string, any>;
const SHAPES_ITEM = JSON.parse(await readFile(path.join(ROOT, 'test/fixtures/detector/shapes.stac.json'), 'utf8')) as Record<string, any>;
const DIGITS_SIG: ModelSignature = {
  inputs: [{ name: 'image', type: 'float32', shape: ['batch', 1, 8, 8] }],
  outputs: [
    { name: 'label', type: 'int64', shape: ['batch'] },
    { name: 'probabilities', type: 'float32', shape: ['batch', 10] },
  ],
};
const RESNET_SIG: ModelSignature = {
  inputs: [{ name: 'input', type: 'float32', shape: ['batch', 3, 224, 224] }],
  outputs: [{ name: 'logits', type: 'float32', shape: ['batch', 1000] }],
};
const code = (c: string, re?: RegExp) => (err: unknown) => (err as { code?: string }).code === c && (!re || re.test((err as Error).message));
const edit = (fn: (item: Record<string, any>) => void): Record<string, any> => {
  const item = structuredClone(DIGITS_ITEM);
  fn(item);
  return item;
};

describe('parse and check', () => {
  test('the committed items parse and agree with their graphs', () => {
    checkStacAgainstSignature(parseStacItem(DIGITS_ITEM), DIGITS_SIG);
    checkStacAgainstSignature(parseStacItem(SHAPES_ITEM), {
      inputs: [{ name: 'images', type: 'float32', shape: ['batch', 3, 64, 64] }],
      outputs: [{ name: 'output0', type: 'float32', shape: ['batch', 64, 8] }],
    });
  });

  test('missing required fields and wrong types are named', () => {
    assert.throws(() => parseStacItem({ type: 'Feature' }), code('INVALID_STAC_ITEM', /stac_version.*id|id.*stac_version/s));
    assert.throws(() => parseStacItem(edit((i) => delete i.properties['mlm:input'])), code('INVALID_STAC_ITEM', /properties\.mlm:input/));
    assert.throws(
      () => parseStacItem(edit((i) => (i.properties['mlm:input'][0].input.shape = 'big'))),
      code('INVALID_STAC_ITEM', /mlm:input\.0\.input\.shape/),
    );
  });

  test('shapes, data types and class counts that disagree with the graph are refused', () => {
    const check = (i: Record<string, any>) => () => checkStacAgainstSignature(parseStacItem(i), DIGITS_SIG);
    assert.throws(check(edit((i) => (i.properties['mlm:input'][0].input.shape = [-1, 1, 8, 9]))), code('INVALID_STAC_ITEM', /\[-1,1,8,9\]/));
    assert.throws(check(edit((i) => (i.properties['mlm:input'][0].input.data_type = 'uint8'))), code('INVALID_STAC_ITEM', /data_type uint8.*float32/));
    assert.throws(check(edit((i) => i.properties['mlm:output'][1]['classification:classes'].pop())), code('INVALID_STAC_ITEM', /9 classes.*10 scores/));
    assert.throws(
      check(edit((i) => (i.properties['mlm:input'][0].resize_type = 'wrap-inverse-map'))),
      code('INVALID_STAC_ITEM', /resize_type 'wrap-inverse-map'/),
    );
    assert.throws(check(edit((i) => i.properties['mlm:input'].push(i.properties['mlm:input'][0]))), code('INVALID_STAC_ITEM', /2 inputs but the model has 1/));
  });
});

describe('resolvePipeline', () => {
  test('ImageNet-style: value_scaling 0..255 then z-score statistics per band, BGR band order, centre crop', () => {
    const item = parseStacItem({
      ...DIGITS_ITEM,
      properties: {
        ...DIGITS_ITEM.properties,
        'mlm:input': [
          {
            name: 'input',
            bands: ['blue', 'green', 'red'],
            input: { shape: [-1, 3, 224, 224], dim_order: ['batch', 'channel', 'height', 'width'], data_type: 'float32' },
            resize_type: 'crop',
            value_scaling: [{ type: 'min-max', minimum: 0, maximum: 255 }],
            norm_type: 'z-score',
            statistics: [
              { mean: 0.406, stddev: 0.225 },
              { mean: 0.456, stddev: 0.224 },
              { mean: 0.485, stddev: 0.229 },
            ],
          },
        ],
        'mlm:output': [
          {
            name: 'logits',
            tasks: ['classification'],
            result: { shape: [-1, 1000], dim_order: ['batch', 'class'], data_type: 'float32' },
            'inferrer:activation': 'softmax',
          },
        ],
      },
    });
    checkStacAgainstSignature(item, RESNET_SIG);
    const p = resolvePipeline(RESNET_SIG, item, undefined);
    assert.equal(p.image!.order, 'bgr');
    assert.equal(p.image!.resize, 'crop');
    // pixel 255 in the first model channel (blue): (1 - 0.406) / 0.225
    assert.ok(Math.abs(255 * p.image!.scale[0]! + p.image!.offset[0]! - (1 - 0.406) / 0.225) < 1e-9);
    assert.ok(Math.abs(p.image!.offset[2]! - -0.485 / 0.229) < 1e-9);
    assert.deepEqual(p.task, { kind: 'classification', output: 'logits', activation: 'softmax' });
  });

  test('NHWC from dim_order; detection settings from inferrer:detection; graph defaults without an item', () => {
    const nhwc: ModelSignature = {
      inputs: [{ name: 'x', type: 'uint8', shape: [-1, 32, 48, 3] }],
      outputs: [{ name: 'scores', type: 'float32', shape: [-1, 3] }],
    };
    const g = resolvePipeline(nhwc, undefined, ['a', 'b', 'c']);
    assert.deepEqual(
      { layout: g.image!.layout, h: g.image!.height, w: g.image!.width, c: g.image!.channels, scale: g.image!.scale[0] },
      { layout: 'NHWC', h: 32, w: 48, c: 3, scale: 1 / 255 },
    );
    assert.deepEqual(g.task, { kind: 'classification', output: 'scores', activation: 'none', labels: ['a', 'b', 'c'] });
    const d = resolvePipeline(
      { inputs: [{ name: 'images', type: 'float32', shape: ['batch', 3, 64, 64] }], outputs: [{ name: 'output0', type: 'float32', shape: ['batch', 64, 8] }] },
      parseStacItem(SHAPES_ITEM),
      undefined,
    );
    assert.deepEqual(d.task, {
      kind: 'detection',
      output: 'output0',
      format: 'yolov5',
      normalized: false,
      scoreThreshold: 0.5,
      iouThreshold: 0.45,
      maxDetections: 300,
      activation: 'none',
      labels: ['square', 'circle', 'triangle'],
    });
    assert.equal(d.image!.resize, 'pad');
    assert.equal(resolvePipeline({ inputs: [{ name: 'input', type: 'float32', shape: ['batch', 4] }], outputs: [] }, undefined, undefined).image, undefined);
  });
});

describe('the store keeps the item with the version', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  test('put writes stac-item.json beside model.onnx and into the version record; a bad item stores nothing', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-stac-'));
    dirs.push(dir);
    const store = new ModelStore(dir, { validate: async () => DIGITS_SIG });
    await store.init();
    const stage = async () => {
      const f = path.join(await store.stagingDir(), 'model.onnx');
      await copyFile(path.join(ROOT, 'models/demo/digits.onnx'), f);
      return f;
    };
    const r = await store.put('digits', await stage(), { stac: DIGITS_ITEM });
    assert.equal(r.version.stac?.id, 'digits-cnn');
    assert.deepEqual((await readdir(path.join(dir, 'digits', '1'))).sort(), ['model.onnx', STAC_FILE]);
    assert.equal(JSON.parse(await readFile(path.join(dir, 'digits', '1', STAC_FILE), 'utf8')).id, 'digits-cnn');
    const before = await readFile(path.join(dir, 'digits', 'model.json'), 'utf8');
    await assert.rejects(
      store.put('digits', await stage(), { stac: edit((i) => (i.properties['mlm:input'][0].input.shape = [-1, 3, 8, 8])) }),
      code('INVALID_STAC_ITEM'),
    );
    assert.equal(await readFile(path.join(dir, 'digits', 'model.json'), 'utf8'), before);
    assert.deepEqual(await readdir(path.join(dir, '.staging')), []);
  });
});
