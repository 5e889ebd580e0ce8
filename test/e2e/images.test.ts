/**
 * Images through the real cluster: multipart files and v2 BYTES in, labels and boxes out, driven by STAC
 * MLM items; bad images refused with a clear 4xx that leaves the store and the workers as they were; models
 * imported by URL from an allow-listed local server (EOTDL-style).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DEMO, REPO, type TestCluster, api, snapshotStore, stagingLeftovers, startTestCluster } from '../helpers/cluster.ts';
import { metricSum, until } from '../helpers/metrics.ts';

const IMAGES = path.join(REPO, 'test/fixtures/images');
const DETECTOR = path.join(REPO, 'test/fixtures/detector');
const truth = JSON.parse(await readFile(path.join(IMAGES, 'images.json'), 'utf8')) as { digits: Record<string, number> };
const scenes = JSON.parse(await readFile(path.join(DETECTOR, 'scenes.json'), 'utf8')) as Record<string, { objects: { label: string; box: number[] }[] }>;
const digitsItem = JSON.parse(await readFile(path.join(IMAGES, 'digits.stac.json'), 'utf8')) as Record<string, unknown>;
const shapesItem = JSON.parse(await readFile(path.join(DETECTOR, 'shapes.stac.json'), 'utf8')) as Record<string, unknown>;
const shapesOnnx = await readFile(path.join(DETECTOR, 'shapes.onnx'));

/** The EOTDL stand-in: a STAC item and its asset, a redirect off the allowlist, an item whose asset is missing. */
const seenKeys: (string | undefined)[] = [];
const origin = http.createServer((req, res) => {
  seenKeys.push(req.headers['x-api-key'] as string | undefined);
  const port = (origin.address() as { port: number }).port;
  if (req.url === '/items/shapes.json') return void res.writeHead(200, { 'content-type': 'application/geo+json' }).end(JSON.stringify(shapesItem));
  if (req.url === '/items/shapes.onnx') return void res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(shapesOnnx);
  if (req.url === '/items/moved.json') return void res.writeHead(302, { location: '/items/shapes.json' }).end();
  if (req.url === '/items/elsewhere.json') return void res.writeHead(302, { location: `http://localhost:${port}/items/shapes.json` }).end();
  if (req.url === '/items/no-asset.json')
    return void res.writeHead(200).end(JSON.stringify({ ...shapesItem, assets: { model: { href: 'gone.onnx', roles: ['mlm:model'] } } }));
  res.writeHead(404).end('not found');
});

let c: TestCluster;
let allowed: string;
before(async () => {
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  allowed = `127.0.0.1:${(origin.address() as { port: number }).port}`;
  c = await startTestCluster({
    modelhostEnv: { MAX_IMAGES_PER_REQUEST: '16' },
    // The fake STAC server is on loopback, which imports may reach only when a range allows it.
    inferrerEnv: { MODEL_IMPORT_ENABLED: 'true', MODEL_IMPORT_ALLOWED_HOSTS: allowed, MODEL_IMPORT_ALLOWED_CIDRS: '127.0.0.0/8', EOTDL_API_KEY: 'test-key' },
  });
  // The digits CNN with its STAC item sent as a file field, the detector with its item inside metadata.
  const form = new FormData();
  form.append('path', new Blob([await readFile(path.join(DEMO, 'digits.onnx'))]), 'digits.onnx');
  form.append('stac', new Blob([JSON.stringify(digitsItem)], { type: 'application/json' }), 'item.json');
  form.append('metadata', JSON.stringify({ description: 'digits with a STAC MLM item' }));
  const up = await api(c.url, '/api/v1/models/digits-img', { method: 'PUT', body: form });
  assert.equal(up.status, 201, JSON.stringify(up.body));
  const det = new FormData();
  det.append('path', new Blob([shapesOnnx]), 'shapes.onnx');
  det.append('metadata', JSON.stringify({ stac: shapesItem }));
  const up2 = await api(c.url, '/api/v1/models/shapes', { method: 'PUT', body: det });
  assert.equal(up2.status, 201, JSON.stringify(up2.body));
});
after(async () => {
  await c?.close();
  origin.close();
});

async function files(names: string[], dir = IMAGES): Promise<FormData> {
  const form = new FormData();
  for (const n of names) form.append('file', new Blob([await readFile(path.join(dir, n))]), n);
  return form;
}

function iou(a: number[], b: number[]): number {
  const ix = Math.max(0, Math.min(a[2]!, b[2]!) - Math.max(a[0]!, b[0]!));
  const iy = Math.max(0, Math.min(a[3]!, b[3]!) - Math.max(a[1]!, b[1]!));
  return (ix * iy) / ((a[2]! - a[0]!) * (a[3]! - a[1]!) + (b[2]! - b[0]!) * (b[3]! - b[1]!) - ix * iy);
}

describe('metadata', () => {
  test('the model description and v2 metadata show the STAC item and the image pipeline it drives', async () => {
    const m = (await api(c.url, '/api/v1/models/digits-img')).body.model;
    assert.equal(m.stac.properties['mlm:name'], 'digits-cnn');
    assert.equal(m.version_details[0].stac.id, 'digits-cnn');
    assert.deepEqual(
      { ...m.image_pipeline.image, scale: undefined },
      {
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
        scale: undefined,
        offset: [0],
      },
    );
    assert.equal(m.image_pipeline.task.kind, 'classification');
    const v2 = (await api(c.url, '/v2/models/shapes')).body;
    assert.equal(v2.stac.properties['mlm:tasks'][0], 'object-detection');
  });
});

describe('classification', () => {
  test('one PNG: top-5 labels in the YOLO tutorial shape, a structured form, the request id as uid, preprocess timing', async () => {
    const r = await api(c.url, '/api/v1/models/digits-img/prediction', { method: 'POST', body: await files(['digit_7.png']) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.task, 'classification');
    assert.equal(r.body.data.length, 5);
    assert.equal(r.body.data[0][0], '7');
    assert.ok(r.body.data[0][1] > 0.99);
    assert.equal(r.body.uid, r.headers.get('x-request-id'));
    assert.equal(r.body.predictions[0].file, 'digit_7.png');
    assert.deepEqual([r.body.predictions[0].width, r.body.predictions[0].height], [32, 32]);
    assert.equal(r.body.predictions[0].classes[0].label, '7');
    assert.match(r.headers.get('server-timing') ?? '', /preprocess;dur=[\d.]+, queue;dur=[\d.]+, compute;dur=[\d.]+/);
    assert.equal(r.body.outputs, undefined);
  });

  test('several files are one batch: every format, EXIF rotation, grey, RGB and RGBA, in order; top_k and raw', async () => {
    const names = Object.keys(truth.digits)
      .filter((n) => !n.startsWith('batch_'))
      .concat(['batch_1.png', 'batch_6.png', 'batch_8.png']);
    const r = await api(c.url, '/api/v1/models/digits-img/prediction?top_k=2&raw=true', { method: 'POST', body: await files(names) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.headers.get('x-inferrer-batch'), `requests=1;rows=${names.length}`);
    assert.deepEqual(
      r.body.data.map((d: [string, number][]) => d[0]![0]),
      names.map((n) => String(truth.digits[n])),
    );
    for (const d of r.body.data) assert.equal(d.length, 2);
    assert.deepEqual(
      r.body.predictions.map((p: { file: string }) => p.file),
      names,
    );
    assert.deepEqual(
      r.body.outputs.label,
      names.map((n) => truth.digits[n]),
    );
    assert.equal(r.body.outputs.probabilities.length, names.length);
  });

  test('images sent together travel in groups to the modelhosts, and each is answered as it is alone', async () => {
    // The Inferrer groups small predictions that arrive together; a multipart image in a group once
    // reached the modelhost as a member it refused (404 ROUTE_NOT_FOUND): under load most images failed.
    const names = ['digit_3.jpg', 'digit_7.png', 'digit_0.webp', 'digit_5.tiff'];
    const bodies = await Promise.all(names.map((n) => files([n])));
    const n = 48;
    const post = (k: number, id: string) =>
      api(c.url, '/api/v1/models/digits-img/prediction?top_k=1', { method: 'POST', body: bodies[k % names.length]!, headers: { 'x-request-id': id } });
    // Open the connections first, so that the measured burst reaches the Inferrer together.
    await Promise.all(Array.from({ length: n }, (_, k) => post(k, `warm-${k}`)));
    const groupsBefore = await metricSum(c.url, 'inferrer_upstream_group_size_count');
    const membersBefore = await metricSum(c.url, 'inferrer_upstream_group_size_sum');
    const answers = await Promise.all(Array.from({ length: n }, (_, k) => post(k, `together-${k}`)));
    for (const [k, r] of answers.entries()) {
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.uid, `together-${k}`);
      assert.equal(r.body.data[0][0], String(truth.digits[names[k % names.length]!]));
      assert.equal(r.body.predictions[0].file, names[k % names.length]);
    }
    const groups = (await metricSum(c.url, 'inferrer_upstream_group_size_count')) - groupsBefore;
    const members = (await metricSum(c.url, 'inferrer_upstream_group_size_sum')) - membersBefore;
    assert.equal(members, n, 'every image went upstream exactly once');
    assert.ok(groups < n, `${n} images sent together went in fewer upstream requests (${groups})`);
  });

  test('a model without a STAC item takes images by its graph and labels (the demo digits)', async () => {
    const r = await api(c.url, '/api/v1/models/digits/prediction?top_k=1', { method: 'POST', body: await files(['digit_0.webp']) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.task, 'classification');
    assert.equal(r.body.data.length, 1);
  });

  test('v2 BYTES carry encoded images: base64 in JSON and raw bytes in the binary extension', async () => {
    const png = await readFile(path.join(IMAGES, 'digit_7.png'));
    const jpg = await readFile(path.join(IMAGES, 'digit_3.jpg'));
    const j = await api(c.url, '/v2/models/digits-img/infer', {
      json: {
        inputs: [{ name: 'image', shape: [2], datatype: 'BYTES', data: [png.toString('base64'), { b64: jpg.toString('base64') }] }],
        outputs: [{ name: 'label' }],
      },
    });
    assert.equal(j.status, 200, JSON.stringify(j.body));
    assert.deepEqual(j.body.outputs[0].data, [7, 3]);
    const header = Buffer.from(
      JSON.stringify({
        inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', parameters: { binary_data_size: 4 + png.length } }],
        outputs: [{ name: 'label' }],
      }),
    );
    const len = Buffer.alloc(4);
    len.writeUInt32LE(png.length);
    const b = await api(c.url, '/v2/models/digits-img/infer', {
      method: 'POST',
      body: Buffer.concat([header, len, png]),
      headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) },
    });
    assert.equal(b.status, 200, JSON.stringify(b.body));
    assert.deepEqual(b.body.outputs[0].data, [7]);
  });
});

describe('detection', () => {
  test('boxes in the original image pixels, after letterbox, NMS and thresholds, match the known ones', async () => {
    const names = Object.keys(scenes);
    const r = await api(c.url, '/api/v1/models/shapes/prediction', {
      method: 'POST',
      body: await files(
        names.map((n) => `scenes/${n}`),
        DETECTOR,
      ),
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.task, 'detection');
    names.forEach((n, i) => {
      const got = r.body.data[i] as [string, number, number[]][];
      const want = scenes[n]!.objects;
      assert.equal(got.length, want.length, `${n}: ${JSON.stringify(got)}`);
      for (const w of want) {
        const match = got.find((g) => g[0] === w.label && iou(g[2], w.box) >= 0.5);
        assert.ok(match, `${n}: ${w.label} ${JSON.stringify(w.box)} found in ${JSON.stringify(got)}`);
        assert.ok(match![1] >= 0.5);
      }
      const p = r.body.predictions[i];
      assert.equal(p.detections.length, want.length);
      assert.deepEqual(Object.keys(p.detections[0].box), ['x1', 'y1', 'x2', 'y2']);
    });
  });

  test('one image answers the tutorial shape {"data": [[label, score, [x1, y1, x2, y2]], …], "uid"}; thresholds from the query', async () => {
    const r = await api(c.url, '/api/v1/models/shapes/prediction', { method: 'POST', body: await files(['scenes/scene_192x128.png'], DETECTOR) });
    assert.equal(r.status, 200);
    assert.equal(r.body.data.length, 3);
    const [label, score, box] = r.body.data[0];
    assert.equal(typeof label, 'string');
    assert.ok(score > 0.5 && score <= 1);
    assert.equal(box.length, 4);
    assert.match(r.body.uid, /.+/);
    const strict = await api(c.url, '/api/v1/models/shapes/prediction?score_threshold=0.9999&raw=true', {
      method: 'POST',
      body: await files(['scenes/scene_192x128.png'], DETECTOR),
    });
    assert.ok(strict.body.data.length < 3);
    assert.deepEqual(strict.body.outputs.output0[0].length, 64);
  });
});

describe('bad images: a clear 4xx, the store unchanged, the workers still serving', () => {
  const cases: { what: string; model: string; body: () => Promise<FormData | string>; type?: string; status: number; code: string }[] = [
    { what: 'a file that is not an image', model: 'digits-img', body: () => files(['not_an_image.jpg']), status: 400, code: 'INVALID_IMAGE' },
    { what: 'a truncated JPEG', model: 'digits-img', body: () => files(['truncated.jpg']), status: 400, code: 'INVALID_IMAGE' },
    {
      what: 'a pixel bomb (PNG claiming 50000×50000)',
      model: 'digits-img',
      body: () => files(['digit_7.png', 'bomb.png']),
      status: 413,
      code: 'IMAGE_TOO_LARGE',
    },
    {
      what: 'more files than MAX_IMAGES_PER_REQUEST',
      model: 'digits-img',
      body: () => files(Array.from({ length: 17 }, () => 'digit_7.png')),
      status: 413,
      code: 'TOO_MANY_IMAGES',
    },
    { what: 'images for a model without an image input', model: 'iris', body: () => files(['digit_7.png']), status: 400, code: 'NOT_AN_IMAGE_MODEL' },
    {
      what: 'an image under an unexpected field name',
      model: 'digits-img',
      body: async () => {
        const f = new FormData();
        f.append('picture', new Blob([await readFile(path.join(IMAGES, 'digit_7.png'))]), 'x.png');
        return f;
      },
      status: 400,
      code: 'INVALID_REQUEST',
    },
    {
      what: 'a form without a file',
      model: 'digits-img',
      body: async () => {
        const f = new FormData();
        f.append('note', 'hi');
        return f;
      },
      status: 400,
      code: 'INVALID_REQUEST',
    },
    {
      // Once this ended the modelhost (an unheard 'error' on the file's stream), and nginx passed the
      // request on to the next one.
      what: 'a form that ends inside its file (no closing boundary)',
      model: 'digits-img',
      body: async () => '--b\r\ncontent-disposition: form-data; name="file"; filename="x.png"\r\ncontent-type: image/png\r\n\r\nnot all of it',
      type: 'multipart/form-data; boundary=b',
      status: 400,
      code: 'INVALID_REQUEST',
    },
    {
      // The same under a field that is skipped (the fuzzing found it ended the modelhost too).
      what: 'a form that ends inside a file under an unexpected field',
      model: 'digits-img',
      body: async () => '--b\r\ncontent-disposition: form-data; name="path"; filename="x.png"\r\n\r\n',
      type: 'multipart/form-data; boundary=b',
      status: 400,
      code: 'INVALID_REQUEST',
    },
    {
      // busboy names no field for name="": that once threw in the modelhost, answered with a TypeError's text.
      what: 'a file under an empty field name',
      model: 'digits-img',
      body: async () => '--b\r\ncontent-disposition: form-data; name=""; filename="x.png"\r\n\r\nxx\r\n--b--\r\n',
      type: 'multipart/form-data; boundary=b',
      status: 400,
      code: 'INVALID_REQUEST',
    },
    {
      what: 'an image sent as image/png (not multipart)',
      model: 'digits-img',
      body: async () => (await readFile(path.join(IMAGES, 'digit_7.png'))).toString('latin1'),
      type: 'image/png',
      status: 400,
      code: 'INVALID_JSON',
    },
  ];
  for (const k of cases) {
    test(k.what, async () => {
      const before = await snapshotStore(c.modelDir);
      const body = await k.body();
      const r = await api(c.url, `/api/v1/models/${k.model}/prediction`, { method: 'POST', body, ...(k.type ? { headers: { 'content-type': k.type } } : {}) });
      assert.equal(r.status, k.status, JSON.stringify(r.body));
      assert.equal(r.body.error.code, k.code, JSON.stringify(r.body));
      assert.equal(r.body.http_status.code, k.status);
      assert.doesNotMatch(r.body.error.message, /Cannot read|undefined|TypeError/, 'no internal error text');
      assert.deepEqual(await snapshotStore(c.modelDir), before);
      const ok = await api(c.url, '/api/v1/models/digits-img/prediction?top_k=1', { method: 'POST', body: await files(['digit_7.png']) });
      assert.equal(ok.status, 200);
      assert.equal(ok.body.data[0][0], '7');
    });
  }

  test('a client that goes away mid-form is let go: the modelhost logs the request instead of holding it open', async () => {
    const m = c.modelhosts[0]!;
    const url = new URL(m.url);
    const head = '--b\r\ncontent-disposition: form-data; name="file"; filename="x.png"\r\ncontent-type: image/png\r\n\r\n';
    const req = http.request({
      host: url.hostname,
      port: url.port,
      method: 'POST',
      path: '/v1/models/digits-img/predict-images',
      headers: { 'content-type': 'multipart/form-data; boundary=b', 'content-length': '100000', 'x-request-id': 'gone-mid-form' },
    });
    req.on('error', () => {});
    req.write(head);
    await new Promise((r) => setTimeout(r, 200));
    req.destroy();
    // The request is logged with a status once its client went away.
    await until('the modelhost logged the request', async () => c.jsonLogs(m.id).some((l) => l.reqId === 'gone-mid-form' && l.status !== undefined), 5000);
  });

  test('a STAC item that disagrees with the graph is refused at upload and nothing is stored', async () => {
    const before = await snapshotStore(c.modelDir);
    const item = structuredClone(digitsItem) as { properties: { 'mlm:input': { input: { shape: number[] } }[] } };
    item.properties['mlm:input'][0]!.input.shape = [-1, 3, 8, 8];
    const form = new FormData();
    form.append('path', new Blob([await readFile(path.join(DEMO, 'digits.onnx'))]), 'digits.onnx');
    form.append('metadata', JSON.stringify({ stac: item }));
    const r = await api(c.url, '/api/v1/models/digits-bad', { method: 'PUT', body: form });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'INVALID_STAC_ITEM');
    assert.match(r.body.error.message, /shape \[-1,3,8,8\].*'image' has \[-1,1,8,8\]/);
    assert.deepEqual(await snapshotStore(c.modelDir), before);
    assert.deepEqual(await stagingLeftovers(c.modelDir), []);
  });
});

describe('import by URL (EOTDL)', () => {
  test('a STAC item and its ONNX asset from an allowed host become a model that answers images; the API key is sent', async () => {
    seenKeys.length = 0;
    const r = await api(c.url, '/api/v1/models/imported/import', {
      json: { url: `http://${allowed}/items/moved.json`, metadata: { config: { preload: true } } },
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.source.item, `http://${allowed}/items/shapes.json`);
    assert.equal(r.body.source.asset, `http://${allowed}/items/shapes.onnx`);
    assert.equal(r.body.model.stac.id, 'tiny-yolo-shapes');
    assert.match(r.body.model.description, /Tiny YOLO/);
    assert.deepEqual(seenKeys, ['test-key', 'test-key', 'test-key']);
    const p = await api(c.url, '/api/v1/models/imported/prediction', { method: 'POST', body: await files(['scenes/scene_64x64.png'], DETECTOR) });
    assert.equal(p.status, 200, JSON.stringify(p.body));
    assert.equal(p.body.data.length, 3);
  });

  const refusals: { what: string; url: () => string; status: number; code: string }[] = [
    {
      what: 'a host outside the allowlist',
      url: () => `http://localhost:${allowed.split(':')[1]}/items/shapes.json`,
      status: 403,
      code: 'IMPORT_HOST_NOT_ALLOWED',
    },
    { what: 'a redirect to a host outside the allowlist', url: () => `http://${allowed}/items/elsewhere.json`, status: 403, code: 'IMPORT_HOST_NOT_ALLOWED' },
    { what: 'a file: URL', url: () => 'file:///etc/passwd', status: 403, code: 'IMPORT_HOST_NOT_ALLOWED' },
    { what: 'a missing item', url: () => `http://${allowed}/items/nothing.json`, status: 502, code: 'IMPORT_FETCH_FAILED' },
    { what: 'a missing asset', url: () => `http://${allowed}/items/no-asset.json`, status: 502, code: 'IMPORT_FETCH_FAILED' },
  ];
  for (const k of refusals) {
    test(`refused: ${k.what}, nothing stored`, async () => {
      const before = await snapshotStore(c.modelDir);
      const r = await api(c.url, '/api/v1/models/refused/import', { json: { url: k.url() } });
      assert.equal(r.status, k.status, JSON.stringify(r.body));
      assert.equal(r.body.error.code, k.code);
      assert.deepEqual(await snapshotStore(c.modelDir), before);
      assert.deepEqual(await stagingLeftovers(c.modelDir), []);
    });
  }
});
