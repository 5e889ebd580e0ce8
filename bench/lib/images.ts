/**
 * Part 3: images through the cluster. JPEGs posted as multipart files to `…/prediction` at 16 clients, for
 * the digits CNN (32×32 JPEG → 8×8 grey) and a ResNet-50-sized model (640×480 JPEG → centre crop 224×224,
 * ImageNet normalisation), each driven by its STAC MLM item. While the load runs, a side client samples
 * the modelhost's Server-Timing (preprocess = decode + resize + normalise, queue, compute) to show where
 * the time goes.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import type { BenchOptions } from './options.ts';
import { startBenchCluster } from './cluster.ts';
import { type LoadResult, runLoad } from './load.ts';
import { CACHE_DIR, REPO_ROOT } from './paths.ts';
import { ensureResnet50 } from './resnet50.ts';
import { fmt, fmtMs, table } from './table.ts';

export interface ImagesRun {
  model: string;
  image: string;
  imageBytes: number;
  load: LoadResult;
  /** Mean ms per request on the modelhost, from Server-Timing samples taken during the load. */
  timing: { samples: number; preprocessMs: number; queueMs: number; computeMs: number; batchRows: number };
  /** preprocess ÷ (preprocess + compute): the share of worker time spent decoding and resizing. */
  preprocessShare: number;
}

export interface ImagesResult {
  clients: number;
  balancer: string;
  modelhosts: number;
  runs: ImagesRun[];
  notable: { service: string; line: string }[];
}

const BOUNDARY = 'inferrer-bench-boundary';

function multipart(name: string, bytes: Buffer): Buffer {
  return Buffer.concat([
    Buffer.from(`--${BOUNDARY}\r\ncontent-disposition: form-data; name="file"; filename="${name}"\r\ncontent-type: image/jpeg\r\n\r\n`),
    bytes,
    Buffer.from(`\r\n--${BOUNDARY}--\r\n`),
  ]);
}

/** A 640×480 photo-like JPEG (smooth gradients and shapes; noise would make an unrealistically large file). */
async function photo(): Promise<Buffer> {
  const w = 640;
  const h = 480;
  const px = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      const d = Math.hypot(x - 320, y - 240);
      px[i] = (x * 255) / w;
      px[i + 1] = (y * 255) / h;
      px[i + 2] = d < 150 ? 220 : 128 + 100 * Math.sin(x / 17) * Math.cos(y / 23);
    }
  }
  return sharp(px, { raw: { width: w, height: h, channels: 3 } })
    .jpeg({ quality: 90 })
    .toBuffer();
}

function resnetItem(): Record<string, unknown> {
  return {
    type: 'Feature',
    stac_version: '1.0.0',
    stac_extensions: ['https://stac-extensions.github.io/mlm/v1.4.0/schema.json'],
    id: 'resnet50-bench',
    properties: {
      'mlm:name': 'resnet50-bench',
      'mlm:architecture': 'ResNet-50',
      'mlm:tasks': ['classification'],
      'mlm:input': [
        {
          name: 'input',
          bands: ['red', 'green', 'blue'],
          input: { shape: [-1, 3, 224, 224], dim_order: ['batch', 'channel', 'height', 'width'], data_type: 'float32' },
          resize_type: 'crop',
          value_scaling: [{ type: 'min-max', minimum: 0, maximum: 255 }],
          norm_type: 'z-score',
          statistics: [
            { mean: 0.485, stddev: 0.229 },
            { mean: 0.456, stddev: 0.224 },
            { mean: 0.406, stddev: 0.225 },
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
    assets: {},
  };
}

function parseTiming(header: string | null): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of (header ?? '').split(',')) {
    const m = /^\s*(\w+);dur=([\d.]+)/.exec(part);
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

export async function runImages(opts: BenchOptions, log: (line: string) => void): Promise<ImagesResult> {
  const clients = opts.resnet.clients;
  const warmupS = opts.quick ? 2 : 4;
  const durationS = opts.quick ? 6 : 12;
  const resnet = await ensureResnet50(CACHE_DIR);
  const digitsItem = JSON.parse(await readFile(path.join(REPO_ROOT, 'test/fixtures/images/digits.stac.json'), 'utf8')) as unknown;
  const variants = [
    {
      name: 'digits-img',
      file: path.join(REPO_ROOT, 'models/demo/digits.onnx'),
      stac: digitsItem,
      image: 'digit_3.jpg (32×32)',
      bytes: await readFile(path.join(REPO_ROOT, 'test/fixtures/images/digit_3.jpg')),
      maxBatchSize: 32,
    },
    { name: 'resnet50-img', file: resnet.file, stac: resnetItem(), image: 'photo.jpg (640×480)', bytes: await photo(), maxBatchSize: 8 },
  ];
  log(`starting a cluster with ${opts.modelhosts} modelhosts and ${variants.map((v) => v.name).join(', ')} preloaded …`);
  const bc = await startBenchCluster({
    modelhosts: opts.modelhosts,
    models: variants.map((v) => ({
      name: v.name,
      file: v.file,
      description: `${v.name} (bench)`,
      config: { preload: true, batching: { max_batch_size: v.maxBatchSize } },
      stac: v.stac,
    })),
  });
  try {
    const runs: ImagesRun[] = [];
    for (const v of variants) {
      const body = multipart(v.image.split(' ')[0]!, v.bytes);
      const url = `${bc.url}/api/v1/models/${v.name}/prediction?top_k=1`;
      const headers = { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` };
      const check = await fetch(url, { method: 'POST', headers, body: new Uint8Array(body) });
      const text = await check.text();
      if (check.status !== 200) throw new Error(`${v.name} answered ${check.status}: ${text.slice(0, 300)}`);
      const samples: Record<string, number>[] = [];
      let sampling = false;
      let sampler: Promise<void> | undefined;
      const load = await runLoad(
        { url, method: 'POST', headers, body: body.toString('base64'), bodyEncoding: 'base64', connections: clients, warmupS, durationS, timeoutS: 30 },
        () => {
          sampling = true;
          sampler = (async () => {
            const end = performance.now() + durationS * 1000 * 0.9;
            while (sampling && performance.now() < end) {
              const r = await fetch(url, { method: 'POST', headers, body: new Uint8Array(body) });
              await r.arrayBuffer();
              if (r.status !== 200) continue;
              const batch = /rows=(\d+)/.exec(r.headers.get('x-inferrer-batch') ?? '');
              samples.push({ ...parseTiming(r.headers.get('server-timing')), rows: Number(batch?.[1] ?? 1) });
            }
          })();
        },
      );
      sampling = false;
      await sampler;
      const mean = (k: string): number => samples.reduce((s, x) => s + (x[k] ?? 0), 0) / Math.max(1, samples.length);
      const timing = { samples: samples.length, preprocessMs: mean('preprocess'), queueMs: mean('queue'), computeMs: mean('compute'), batchRows: mean('rows') };
      // compute is per batch; a request's share of it is compute ÷ rows in its batch.
      const computePerImage = timing.computeMs / Math.max(1, timing.batchRows);
      const run: ImagesRun = {
        model: v.name,
        image: v.image,
        imageBytes: v.bytes.length,
        load,
        timing,
        preprocessShare: timing.preprocessMs / (timing.preprocessMs + computePerImage),
      };
      runs.push(run);
      log(
        `  ${v.name}: ${fmt(load.rps, 1)} images/s, p50 ${fmtMs(load.p50)} ms, p99 ${fmtMs(load.p99)} ms, errors ${load.errors}; per request on the worker: preprocess ${fmtMs(timing.preprocessMs)} ms, queue ${fmtMs(timing.queueMs)} ms, compute ${fmtMs(timing.computeMs)} ms for ${fmt(timing.batchRows, 1)} rows (${samples.length} samples)`,
      );
    }
    return { clients, balancer: bc.cluster.balancer.description, modelhosts: opts.modelhosts, runs, notable: bc.notable };
  } finally {
    await bc.stop();
  }
}

export function imagesTable(r: ImagesResult): string {
  return table(
    ['model', 'image', 'images/s', 'p50 ms', 'p99 ms', 'errors', 'preprocess ms', 'compute ms (batch)', 'rows/batch', 'decode+resize share'],
    r.runs.map((x) => [
      x.model,
      `${x.image}, ${(x.imageBytes / 1024).toFixed(1)} KiB`,
      fmt(x.load.rps, 1),
      fmtMs(x.load.p50),
      fmtMs(x.load.p99),
      x.load.errors,
      fmtMs(x.timing.preprocessMs),
      fmtMs(x.timing.computeMs),
      fmt(x.timing.batchRows, 1),
      `${(x.preprocessShare * 100).toFixed(1)} %`,
    ]),
    ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
  );
}
