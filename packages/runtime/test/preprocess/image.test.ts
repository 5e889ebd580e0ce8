/** Image pre-processing with real sharp on the committed test images (test/fixtures/images, make_images.py). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import sharp from 'sharp';
import type { ImageInputSpec } from '@inferrer/core';
import { OnnxSession, classify, imagesToTensor, plan, probeImage, toOriginal } from '../../src/index.ts';
import { DIGITS, ROOT } from '../fixtures.ts';

const IMAGES = path.join(ROOT, 'test/fixtures/images');
const img = (name: string): Buffer => readFileSync(path.join(IMAGES, name));
const truth = JSON.parse(readFileSync(path.join(IMAGES, 'images.json'), 'utf8')) as { digits: Record<string, number> };

/** What digits.stac.json resolves to. */
const DIGITS_SPEC: ImageInputSpec = {
  input: 'image',
  layout: 'NCHW',
  height: 8,
  width: 8,
  channels: 1,
  order: 'gray',
  type: 'float32',
  resize: 'stretch',
  kernel: 'nearest',
  padValue: 114,
  scale: [1 / 255],
  offset: [0],
};

const code = (c: string) => (err: unknown) => (err as { code?: string }).code === c;

describe('probeImage', () => {
  test('reads format and upright size from the header of every format', async () => {
    assert.deepEqual(await probeImage(img('digit_7.png'), 0), { format: 'png', width: 32, height: 32 });
    assert.equal((await probeImage(img('digit_3.jpg'), 0)).format, 'jpeg');
    assert.equal((await probeImage(img('digit_0.webp'), 0)).format, 'webp');
    assert.equal((await probeImage(img('digit_5.tiff'), 0)).format, 'tiff');
    const scene = readFileSync(path.join(ROOT, 'test/fixtures/detector/scenes/scene_192x128.png'));
    assert.deepEqual(await probeImage(scene, 0), { format: 'png', width: 192, height: 128 });
  });

  test('refuses a pixel bomb from its header, fast, without decoding it', async () => {
    const started = performance.now();
    await assert.rejects(probeImage(img('bomb.png'), 3), (err: unknown) => {
      const e = err as { code: string; message: string; details: Record<string, unknown> };
      assert.equal(e.code, 'IMAGE_TOO_LARGE');
      assert.match(e.message, /image 3 is 50000×50000/);
      assert.deepEqual(e.details, { image: 3, width: 50000, height: 50000, limit: 50_000_000 });
      return true;
    });
    await assert.rejects(imagesToTensor([img('digit_7.png'), img('bomb.png')], DIGITS_SPEC), code('IMAGE_TOO_LARGE'));
    assert.ok(performance.now() - started < 2000);
  });

  test('refuses what is not an image, a truncated JPEG and formats other than the four', async () => {
    await assert.rejects(probeImage(img('not_an_image.jpg'), 0), code('INVALID_IMAGE'));
    await assert.rejects(imagesToTensor([img('truncated.jpg')], DIGITS_SPEC), code('INVALID_IMAGE'));
    const gif = await sharp({ create: { width: 4, height: 4, channels: 3, background: '#fff' } })
      .gif()
      .toBuffer();
    await assert.rejects(probeImage(gif, 0), (err: unknown) => code('INVALID_IMAGE')(err) && /gif; send JPEG, PNG, WebP or TIFF/.test((err as Error).message));
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>');
    await assert.rejects(probeImage(svg, 0), code('INVALID_IMAGE'));
  });
});

describe('imagesToTensor', () => {
  test('every committed digit (PNG, JPEG, WebP, TIFF, RGB, RGBA, EXIF-rotated) is classified as the digit it shows', async () => {
    const names = Object.keys(truth.digits);
    const { tensor, transforms } = await imagesToTensor(names.map(img), DIGITS_SPEC);
    assert.deepEqual(tensor.dims, [names.length, 1, 8, 8]);
    for (const v of tensor.data as Float32Array) assert.ok(v >= 0 && v <= 1);
    assert.deepEqual(transforms[0], { width: 32, height: 32, scaleX: 0.25, scaleY: 0.25, padX: 0, padY: 0 });
    const session = await OnnxSession.load(DIGITS, {});
    try {
      const out = await session.run({ image: tensor });
      const top = classify(out.outputs.probabilities!, { kind: 'classification', output: 'probabilities', activation: 'none' }, 1);
      assert.deepEqual(
        top.map((r) => Number(r[0]!.label)),
        names.map((n) => truth.digits[n]),
      );
    } finally {
      await session.dispose();
    }
  });

  test('EXIF orientation 6 is honoured: the tensor is the stored pixels turned 90° clockwise', async () => {
    const bytes = img('digit_9_exif6.jpg');
    const { tensor } = await imagesToTensor([bytes], DIGITS_SPEC);
    const stored = await sharp(bytes).toColourspace('b-w').resize(8, 8, { kernel: 'nearest' }).raw().toBuffer();
    const d = tensor.data as Float32Array;
    let worst = 0;
    for (let r = 0; r < 8; r++) for (let c = 0; c < 8; c++) worst = Math.max(worst, Math.abs(d[r * 8 + c]! - stored[(7 - c) * 8 + r]! / 255));
    assert.ok(worst < 0.1, `largest difference ${worst}`);
  });

  test('layout NHWC, BGR order and a per-channel affine scale land exactly where they should', async () => {
    // 2×1 image: red then blue pixel.
    const png = await sharp(Buffer.from([255, 0, 0, 0, 0, 255]), { raw: { width: 2, height: 1, channels: 3 } })
      .png()
      .toBuffer();
    const spec: ImageInputSpec = {
      ...DIGITS_SPEC,
      input: 'x',
      layout: 'NHWC',
      height: 1,
      width: 2,
      channels: 3,
      order: 'bgr',
      scale: [1, 2, 3],
      offset: [0, 0, -1],
    };
    const { tensor } = await imagesToTensor([png], spec);
    assert.deepEqual(tensor.dims, [1, 1, 2, 3]);
    // pixel 0 (r=255,g=0,b=0) → [b*1, g*2, r*3 - 1]; pixel 1 (b=255) → [255, 0, -1]
    assert.deepEqual([...(tensor.data as Float32Array)], [0, 0, 764, 255, 0, -1]);
    const nchw = await imagesToTensor([png], { ...spec, layout: 'NCHW', order: 'rgb', scale: [1, 1, 1], offset: [0, 0, 0] });
    assert.deepEqual(nchw.tensor.dims, [1, 3, 1, 2]);
    assert.deepEqual([...(nchw.tensor.data as Float32Array)], [255, 0, 0, 0, 0, 255]);
    const u8 = await imagesToTensor([png], { ...spec, type: 'uint8', layout: 'NCHW', order: 'rgb', scale: [0.5, 1, 1], offset: [0, 0, 0] });
    assert.ok(u8.tensor.data instanceof Uint8Array);
    assert.deepEqual([...u8.tensor.data], [128, 0, 0, 0, 0, 255]);
  });

  test('grey models take colour images as luminance; RGB models take grey images as three equal channels', async () => {
    const rgb = await imagesToTensor([img('digit_4_rgb.png')], DIGITS_SPEC);
    const gray = await imagesToTensor([img('digit_4_rgb.png')], {
      ...DIGITS_SPEC,
      channels: 3,
      order: 'rgb',
      scale: [1 / 255, 1 / 255, 1 / 255],
      offset: [0, 0, 0],
    });
    const g = gray.tensor.data as Float32Array;
    for (let i = 0; i < 64; i++) {
      assert.equal(g[i], g[64 + i]);
      assert.ok(Math.abs(g[i]! - (rgb.tensor.data as Float32Array)[i]!) < 0.01);
    }
  });

  test('letterbox (pad) keeps the aspect ratio, pads with the pad value and maps boxes back', async () => {
    const p = plan(192, 128, { width: 64, height: 64, resize: 'pad' });
    assert.deepEqual({ w: p.resizeW, h: p.resizeH, left: p.left, top: p.top }, { w: 64, h: 43, left: 0, top: 10 });
    assert.deepEqual(toOriginal([0, 10, 64, 53], p.transform), [0, 0, 192, 128]);
    const scene = readFileSync(path.join(ROOT, 'test/fixtures/detector/scenes/scene_192x128.png'));
    const spec: ImageInputSpec = {
      ...DIGITS_SPEC,
      input: 'images',
      height: 64,
      width: 64,
      channels: 3,
      order: 'rgb',
      resize: 'pad',
      kernel: 'linear',
      scale: [1 / 255, 1 / 255, 1 / 255],
      offset: [0, 0, 0],
    };
    const { tensor, transforms } = await imagesToTensor([scene], spec);
    const d = tensor.data as Float32Array;
    for (const row of [0, 9, 53, 63]) for (const c of [0, 1, 2]) assert.equal(d[c * 4096 + row * 64 + 30], Math.fround(114 / 255), `row ${row} is padding`);
    assert.deepEqual(transforms[0], p.transform);
  });

  test('centre crop covers the input and maps boxes back with a negative offset', () => {
    const p = plan(200, 100, { width: 50, height: 50, resize: 'crop' });
    assert.deepEqual({ w: p.resizeW, h: p.resizeH, left: p.left, top: p.top }, { w: 100, h: 50, left: 25, top: 0 });
    assert.deepEqual(toOriginal([0, 0, 50, 50], p.transform), [50, 0, 150, 100]);
  });
});
