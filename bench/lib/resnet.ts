/**
 * Part 2: ResNet-50 at 16 clients through the cluster, with batching on and off, against the best
 * in-process onnxruntime-node setting found by a sweep over batch size × slots × intra-op threads, run
 * before and after the cluster runs (the best figure of either: noise on a shared machine only lowers it).
 * Requests carry one 1×3×224×224 image, the same pre-serialised body every time: as FRACTAL v1 JSON (batching on
 * and off), and as Open Inference Protocol v2 JSON and v2 binary (batching on), so the protocols compare in one run.
 */
import os from 'node:os';
import * as ort from 'onnxruntime-node';
import type { BenchOptions } from './options.ts';
import { type BatchStats, batchStats, clusterPids, diffStats, startBenchCluster } from './cluster.ts';
import type { LoadResult } from './load.ts';
import { type CpuBill, measure } from './measure.ts';
import { CACHE_DIR } from './paths.ts';
import { type BuiltModel, ensureResnet50 } from './resnet50.ts';
import { type SweepPoint, sweepInProcess } from './resnet-inprocess.ts';
import { fmt, fmtMs, fmtRps, table, verdict } from './table.ts';

const IMAGE = 3 * 224 * 224;

export type Protocol = 'v1 JSON' | 'v2 JSON' | 'v2 binary';

export interface ResnetClusterRun {
  model: string;
  protocol: Protocol;
  batching: 'on' | 'off';
  maxBatchSize: number;
  load: LoadResult;
  cpu?: CpuBill;
  /** cluster images/s ÷ best in-process images/s. */
  ratio: number;
  rowsPerBatch: number;
  perModelhost: Record<string, number>;
  /** 1.3 × clients ÷ throughput, ms. */
  fairBoundMs: number;
  fairOk: boolean;
}

export interface ResnetResult {
  model: BuiltModel;
  bodyBytes: number;
  /** What decoding one v1 body costs on this machine (JSON.parse + Float32Array), ms. */
  decodeMs: { jsonParse: number; toFloat32: number };
  sweep: SweepPoint[];
  /** The same sweep again after the cluster runs, so the two bracket the cluster runs in time. */
  sweepAfter: SweepPoint[];
  /** The setting with the highest images/s in either sweep (noise only ever lowers throughput). */
  best: SweepPoint;
  /** best.imagesPerS: the denominator of the ratios. */
  inProcessImagesPerS: number;
  clients: number;
  balancer: string;
  modelhosts: number;
  modelhostSettings: string;
  /** Largest |cluster − in-process| over the 1000 logits of the check request. */
  maxAbsDiff: number;
  runs: ResnetClusterRun[];
  notable: { service: string; line: string }[];
}

/** A deterministic image in the range of normalised pixels, as 3-decimal JSON numbers (a realistic client). */
export function imageBody(): { body: string; pixels: Float32Array } {
  const parts = new Array<string>(IMAGE);
  const pixels = new Float32Array(IMAGE);
  let a = 12345;
  for (let i = 0; i < IMAGE; i++) {
    a = (Math.imul(a, 1103515245) + 12345) >>> 0;
    const s = (((a >>> 8) / 16777216) * 4 - 2).toFixed(3);
    parts[i] = s;
    pixels[i] = Number(s);
  }
  return { body: `{"values":[${parts.join(',')}]}`, pixels };
}

/** The same image as an Open Inference Protocol JSON body. */
export function v2JsonBody(pixels: Float32Array): string {
  const parts = new Array<string>(pixels.length);
  for (let i = 0; i < pixels.length; i++) parts[i] = String(pixels[i]);
  return `{"inputs":[{"name":"input","shape":[1,3,224,224],"datatype":"FP32","data":[${parts.join(',')}]}]}`;
}

/** The same image with the binary tensor extension: a JSON header, then the raw float32 bytes. */
export function v2BinaryBody(pixels: Float32Array): { body: Buffer; headerLength: number } {
  const header = Buffer.from(`{"inputs":[{"name":"input","shape":[1,3,224,224],"datatype":"FP32","parameters":{"binary_data_size":${pixels.byteLength}}}],"outputs":[{"name":"logits","parameters":{"binary_data":true}}]}`);
  return { body: Buffer.concat([header, Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength)]), headerLength: header.length };
}

function timeIt(fn: () => unknown, times = 5): number {
  fn();
  const t = performance.now();
  for (let i = 0; i < times; i++) fn();
  return (performance.now() - t) / times;
}

export async function runResnet(opts: BenchOptions, log: (line: string) => void): Promise<ResnetResult> {
  const o = opts.resnet;
  const model = await ensureResnet50(CACHE_DIR);
  log(
    model.built
      ? `built ResNet-50 (${(model.parameters / 1e6).toFixed(2)} M parameters, ${(model.bytes / 1e6).toFixed(0)} MB) in ${model.buildSeconds.toFixed(1)} s → ${model.file}`
      : `ResNet-50 from the cache (${(model.parameters / 1e6).toFixed(2)} M parameters, ${(model.bytes / 1e6).toFixed(0)} MB): ${model.file}`,
  );
  const { body, pixels } = imageBody();
  const jsonParse = timeIt(() => JSON.parse(body));
  const parsed = (JSON.parse(body) as { values: number[] }).values;
  const toFloat32 = timeIt(() => Float32Array.from(parsed));
  log(`request body: ${(body.length / 1e6).toFixed(2)} MB of v1 JSON; decoding it here costs ${jsonParse.toFixed(1)} ms (JSON.parse) + ${toFloat32.toFixed(1)} ms (→ Float32Array)`);

  // Reference logits for the check request, on this thread, before anything else runs.
  const ref = await ort.InferenceSession.create(model.file, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const expected = (await ref.run({ input: new ort.Tensor('float32', pixels, [1, 3, 224, 224]) })).logits!.data as Float32Array;
  await ref.release();

  log(`in-process sweep (${o.sweepS} s per setting):`);
  const sweep = await sweepInProcess(model.file, o.settings, o.batches, o.sweepS, log);

  const variants = [
    { name: 'resnet50', batching: 'on' as const, maxBatchSize: o.maxBatchSize },
    { name: 'resnet50-nobatch', batching: 'off' as const, maxBatchSize: 1 },
  ];
  log(`starting a cluster with ${opts.modelhosts} modelhosts and ${variants.map((v) => v.name).join(', ')} preloaded …`);
  const bc = await startBenchCluster({
    modelhosts: opts.modelhosts,
    models: variants.map((v) => ({
      name: v.name,
      file: model.file,
      description: `ResNet-50 with random weights (bench), batching ${v.batching}`,
      config: { preload: true, batching: { max_batch_size: v.maxBatchSize } },
    })),
  });
  try {
    let maxAbsDiff = 0;
    for (const v of variants) {
      const res = await fetch(`${bc.url}/api/v1/models/${v.name}/prediction`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`${v.name} answered ${res.status}: ${text.slice(0, 500)}`);
      const got = ((JSON.parse(text) as { values: unknown[] }).values.flat(Infinity) as number[]);
      if (got.length !== 1000) throw new Error(`${v.name} answered ${got.length} values, expected 1000 logits`);
      for (let i = 0; i < 1000; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(got[i]! - expected[i]!));
    }
    log(`both models answer 1000 logits; largest difference from in-process: ${maxAbsDiff.toExponential(2)}`);
    if (!(maxAbsDiff < 1e-2)) throw new Error(`the cluster's logits differ from in-process ONNX Runtime by ${maxAbsDiff}`);

    const v2json = v2JsonBody(pixels);
    const v2bin = v2BinaryBody(pixels);
    const runsToMeasure = [
      ...variants.map((v) => ({ v, protocol: 'v1 JSON' as Protocol, url: `${bc.url}/api/v1/models/${v.name}/prediction`, headers: { 'content-type': 'application/json' }, body, bodyEncoding: undefined })),
      { v: variants[0]!, protocol: 'v2 JSON' as Protocol, url: `${bc.url}/v2/models/${variants[0]!.name}/infer`, headers: { 'content-type': 'application/json' }, body: v2json, bodyEncoding: undefined },
      {
        v: variants[0]!,
        protocol: 'v2 binary' as Protocol,
        url: `${bc.url}/v2/models/${variants[0]!.name}/infer`,
        headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(v2bin.headerLength) },
        body: v2bin.body.toString('base64'),
        bodyEncoding: 'base64' as const,
      },
    ];
    // The v2 binary answer must carry the same logits as in-process.
    const check = await fetch(runsToMeasure[3]!.url, { method: 'POST', headers: runsToMeasure[3]!.headers, body: new Uint8Array(v2bin.body) });
    const raw = Buffer.from(await check.arrayBuffer());
    const hl = Number(check.headers.get('inference-header-content-length'));
    if (check.status !== 200 || !(hl > 0)) throw new Error(`v2 binary check answered ${check.status}: ${raw.toString('utf8', 0, 300)}`);
    const logits = new Float32Array(raw.buffer.slice(raw.byteOffset + hl, raw.byteOffset + raw.length));
    for (let i = 0; i < 1000; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(logits[i]! - expected[i]!));
    log(`v2 JSON body ${(v2json.length / 1e6).toFixed(2)} MB, v2 binary body ${(v2bin.body.length / 1e6).toFixed(2)} MB (same image)`);

    const measured: { v: (typeof variants)[number]; protocol: Protocol; load: LoadResult; cpu: CpuBill | undefined; stats: BatchStats }[] = [];
    for (const { v, protocol, url, headers, body: reqBody, bodyEncoding } of runsToMeasure) {
      const before = await batchStats(bc, v.name);
      const m = await measure(
        {
          url,
          method: 'POST',
          headers,
          body: reqBody,
          ...(bodyEncoding ? { bodyEncoding } : {}),
          connections: o.clients,
          warmupS: o.warmupS,
          durationS: o.durationS,
          timeoutS: 60,
        },
        clusterPids(bc),
      );
      const stats: BatchStats = diffStats(await batchStats(bc, v.name), before);
      measured.push({ v, protocol, load: m.load, cpu: m.cpu, stats });
      const load = m.load;
      log(
        `  cluster, ${protocol}, batching ${v.batching} (max_batch_size ${v.maxBatchSize}): ${fmtRps(load.rps)} images/s, p50 ${fmtMs(load.p50)} ms, p99 ${fmtMs(load.p99)} ms, errors ${load.errors}, rows/batch ${fmt(stats.batches ? stats.rows / stats.batches : NaN, 2)}` +
          (m.cpu ? `; CPU ms/req: ${Object.entries(m.cpu.perRequestUs).map(([k, x]) => `${k} ${(x / 1000).toFixed(1)}`).join(', ')}; other processes ${m.cpu.otherCores.toFixed(2)} cores` : ''),
      );
    }
    await bc.stop();
    log(`in-process sweep again, after the cluster runs:`);
    const sweepAfter = await sweepInProcess(model.file, o.settings, o.batches, o.sweepS, log);
    const best = [...sweep, ...sweepAfter].reduce((a, b) => (b.imagesPerS > a.imagesPerS ? b : a));
    const inProcess = best.imagesPerS;
    log(`best in-process: ${best.imagesPerS.toFixed(1)} images/s (${best.slots} slot(s) × ${best.intraOpThreads} thread(s), batch ${best.batch}, ${sweep.includes(best) ? 'first' : 'second'} sweep)`);
    const runs: ResnetClusterRun[] = [];
    for (const { v, protocol, load, cpu, stats } of measured) {
      const fairBoundMs = (1.3 * o.clients * 1000) / load.rps;
      const run: ResnetClusterRun = {
        model: v.name,
        protocol,
        batching: v.batching,
        maxBatchSize: v.maxBatchSize,
        load,
        ...(cpu ? { cpu } : {}),
        ratio: load.rps / inProcess,
        rowsPerBatch: stats.batches ? stats.rows / stats.batches : NaN,
        perModelhost: stats.perModelhost,
        fairBoundMs,
        fairOk: load.p99 <= fairBoundMs,
      };
      runs.push(run);
    }
    return {
      model,
      bodyBytes: body.length,
      decodeMs: { jsonParse, toFloat32 },
      sweep,
      sweepAfter,
      best,
      inProcessImagesPerS: inProcess,
      clients: o.clients,
      balancer: bc.cluster.balancer.description,
      modelhosts: opts.modelhosts,
      modelhostSettings: 'modelhost defaults: INSTANCES=1, INTRA_OP_THREADS=1, MAX_QUEUE_DELAY_MS=0',
      maxAbsDiff,
      runs,
      notable: bc.notable,
    };
  } finally {
    await bc.stop();
  }
}

export function sweepTable(r: ResnetResult): string {
  return table(
    ['slots', 'intra-op', 'batch', 'images/s before', 'ms/run', 'other cores', 'images/s after', 'ms/run', 'other cores'],
    r.sweep.map((p, i) => {
      const q = r.sweepAfter[i]!;
      return [
        p.slots,
        p.intraOpThreads,
        p.batch,
        fmt(p.imagesPerS, 1) + (p === r.best ? ' *' : ''),
        fmtMs(p.runMsP50),
        fmt(p.otherCores, 2),
        fmt(q.imagesPerS, 1) + (q === r.best ? ' *' : ''),
        fmtMs(q.runMsP50),
        fmt(q.otherCores, 2),
      ];
    }),
    ['r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
  );
}

export function resnetTable(r: ResnetResult): string {
  const ms = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? '-' : (v / 1000).toFixed(1));
  const bill = r.runs.map((x) => {
    const c = x.cpu?.perRequestUs ?? {};
    const modelhosts = Object.entries(c).filter(([k]) => k.startsWith('modelhost')).reduce((a, [, v]) => a + v, 0);
    return [`${x.protocol}, batching ${x.batching}`, ms(c.inferrer), ms(c.balancer), ms(modelhosts), ms(x.cpu?.serverUsPerRequest), ms(x.cpu?.generatorUsPerRequest), fmt(x.cpu?.otherCores ?? NaN, 2)];
  });
  const rows = r.runs.map((x) => [
    `${x.protocol}, batching ${x.batching} (max_batch_size ${x.maxBatchSize})`,
    fmt(x.load.rps, 1),
    fmtMs(x.load.p50),
    fmtMs(x.load.p99),
    fmtMs(x.fairBoundMs),
    verdict(x.fairOk),
    x.load.errors,
    fmt(x.rowsPerBatch, 2),
    fmt(x.ratio, 2),
  ]);
  return [
    table(['cluster batching', 'images/s', 'p50 ms', 'p99 ms', 'fair bound ms', 'p99≤bound', 'errors', 'rows/batch', '÷ in-process'], rows, ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r']),
    '',
    `CPU per answered request, ms (all threads of each process; in-process at its best: ≈ ${((os.cpus().length * 1000) / r.inProcessImagesPerS).toFixed(0)} ms of the ${os.cpus().length} cores per image):`,
    table(['batching', 'inferrer', 'nginx', 'modelhosts', 'cluster total', 'load generator', 'other cores'], bill, ['l', 'r', 'r', 'r', 'r', 'r', 'r']),
    '',
    `in-process: ${fmt(r.inProcessImagesPerS, 1)} images/s = the best setting of both sweeps (${r.best.slots} slot(s) × ${r.best.intraOpThreads} intra-op thread(s), batch ${r.best.batch}); ` +
      `fair bound = 1.3 × ${r.clients} clients ÷ throughput. The ≥ 0.90 target applies once binary tensors exist; v1 JSON is reported now.`,
  ].join('\n');
}
