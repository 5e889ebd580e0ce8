/**
 * Part 2: ResNet-50 through the cluster with the modelhosts' default settings (each plans the model's slots
 * × threads and batch size from what it measures at load) against the best in-process onnxruntime-node
 * setting found by a sweep over batch size × slots × intra-op threads, run before and after the cluster
 * runs (the best figure of either: noise on a shared machine only lowers it). Requests carry one
 * 1×3×224×224 image, the same pre-serialised body every time, as Open Inference Protocol v2 binary and v2
 * JSON and as FRACTAL v1 JSON at 16 clients, v2 binary at 64 clients (fairness: p99 ÷ p50 and the
 * fair-queue bound), and v2 binary to a copy with batches of 8 set in its config (what fixed batching gives).
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
  clients: number;
  /** How the model's batch size was set: by the modelhosts' plan (defaults), or by its config. */
  setting: string;
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
  /** What each modelhost chose for each model at load (GET /v1/models/{name}/settings → execution). */
  plans: { model: string; modelhost: string; reason: string; instances: number; intraOpThreads: number; maxBatchSize: number }[];
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
  const header = Buffer.from(
    `{"inputs":[{"name":"input","shape":[1,3,224,224],"datatype":"FP32","parameters":{"binary_data_size":${pixels.byteLength}}}],"outputs":[{"name":"logits","parameters":{"binary_data":true}}]}`,
  );
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
  log(
    `request body: ${(body.length / 1e6).toFixed(2)} MB of v1 JSON; decoding it here costs ${jsonParse.toFixed(1)} ms (JSON.parse) + ${toFloat32.toFixed(1)} ms (→ Float32Array)`,
  );

  // Reference logits for the check request, on this thread, before anything else runs.
  const ref = await ort.InferenceSession.create(model.file, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const expected = (await ref.run({ input: new ort.Tensor('float32', pixels, [1, 3, 224, 224]) })).logits!.data as Float32Array;
  await ref.release();

  log(`in-process sweep (${o.sweepS} s per setting):`);
  const sweep = await sweepInProcess(model.file, o.settings, o.batches, o.sweepS, log);

  // resnet50: no settings, so each modelhost plans it (slots × threads, batch size) from what it measures
  // at load (the product's defaults); resnet50-b8: batches of up to 8 set in its config, for comparison.
  const variants = [
    { name: 'resnet50', setting: 'defaults (plan measured at load)', config: { preload: true } },
    { name: 'resnet50-b8', setting: 'max_batch_size 8 (set)', config: { preload: true, batching: { max_batch_size: 8 } } },
  ];
  log(`starting a cluster with ${opts.modelhosts} modelhosts and ${variants.map((v) => v.name).join(', ')} preloaded …`);
  const bc = await startBenchCluster({
    modelhosts: opts.modelhosts,
    models: variants.map((v) => ({ name: v.name, file: model.file, description: `ResNet-50 with random weights (bench), ${v.setting}`, config: v.config })),
  });
  try {
    let maxAbsDiff = 0;
    for (const v of variants) {
      const res = await fetch(`${bc.url}/api/v1/models/${v.name}/prediction`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`${v.name} answered ${res.status}: ${text.slice(0, 500)}`);
      const got = (JSON.parse(text) as { values: unknown[] }).values.flat(Infinity) as number[];
      if (got.length !== 1000) throw new Error(`${v.name} answered ${got.length} values, expected 1000 logits`);
      for (let i = 0; i < 1000; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(got[i]! - expected[i]!));
    }
    log(`both models answer 1000 logits; largest difference from in-process: ${maxAbsDiff.toExponential(2)}`);
    if (!(maxAbsDiff < 1e-2)) throw new Error(`the cluster's logits differ from in-process ONNX Runtime by ${maxAbsDiff}`);
    const plans = await modelhostPlans(
      bc,
      variants.map((v) => v.name),
    );
    for (const p of plans) log(`  ${p.modelhost} runs ${p.model}: ${p.reason}`);

    const v2json = v2JsonBody(pixels);
    const v2bin = v2BinaryBody(pixels);
    const request = (protocol: Protocol, name: string): { url: string; headers: Record<string, string>; body: string; bodyEncoding: 'base64' | undefined } =>
      protocol === 'v1 JSON'
        ? { url: `${bc.url}/api/v1/models/${name}/prediction`, headers: { 'content-type': 'application/json' }, body, bodyEncoding: undefined }
        : protocol === 'v2 JSON'
          ? { url: `${bc.url}/v2/models/${name}/infer`, headers: { 'content-type': 'application/json' }, body: v2json, bodyEncoding: undefined }
          : {
              url: `${bc.url}/v2/models/${name}/infer`,
              headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(v2bin.headerLength) },
              body: v2bin.body.toString('base64'),
              bodyEncoding: 'base64' as const,
            };
    const [plain, b8] = variants as [(typeof variants)[number], (typeof variants)[number]];
    const runsToMeasure: { v: (typeof variants)[number]; protocol: Protocol; clients: number }[] = [
      { v: plain, protocol: 'v2 binary', clients: o.clients },
      { v: plain, protocol: 'v2 JSON', clients: o.clients },
      { v: plain, protocol: 'v1 JSON', clients: o.clients },
      { v: plain, protocol: 'v2 binary', clients: o.fairnessClients },
      { v: b8, protocol: 'v2 binary', clients: o.clients },
    ];
    // The v2 binary answer must carry the same logits as in-process.
    const bin = request('v2 binary', plain.name);
    const check = await fetch(bin.url, { method: 'POST', headers: bin.headers, body: new Uint8Array(v2bin.body) });
    const raw = Buffer.from(await check.arrayBuffer());
    const hl = Number(check.headers.get('inference-header-content-length'));
    if (check.status !== 200 || !(hl > 0)) throw new Error(`v2 binary check answered ${check.status}: ${raw.toString('utf8', 0, 300)}`);
    const logits = new Float32Array(raw.buffer.slice(raw.byteOffset + hl, raw.byteOffset + raw.length));
    for (let i = 0; i < 1000; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(logits[i]! - expected[i]!));
    log(`v2 JSON body ${(v2json.length / 1e6).toFixed(2)} MB, v2 binary body ${(v2bin.body.length / 1e6).toFixed(2)} MB (same image)`);

    const measured: { v: (typeof variants)[number]; protocol: Protocol; clients: number; load: LoadResult; cpu: CpuBill | undefined; stats: BatchStats }[] = [];
    for (const { v, protocol, clients } of runsToMeasure) {
      const { url, headers, body: reqBody, bodyEncoding } = request(protocol, v.name);
      const before = await batchStats(bc, v.name);
      const m = await measure(
        {
          url,
          method: 'POST',
          headers,
          body: reqBody,
          ...(bodyEncoding ? { bodyEncoding } : {}),
          connections: clients,
          warmupS: o.warmupS,
          durationS: o.durationS,
          timeoutS: 60,
        },
        clusterPids(bc),
      );
      const stats: BatchStats = diffStats(await batchStats(bc, v.name), before);
      measured.push({ v, protocol, clients, load: m.load, cpu: m.cpu, stats });
      const load = m.load;
      log(
        `  cluster, ${protocol}, ${clients} clients, ${v.setting}: ${fmtRps(load.rps)} images/s, p50 ${fmtMs(load.p50)} ms, p99 ${fmtMs(load.p99)} ms, errors ${load.errors}, rows/batch ${fmt(stats.batches ? stats.rows / stats.batches : NaN, 2)}` +
          (m.cpu
            ? `; CPU ms/req: ${Object.entries(m.cpu.perRequestUs)
                .map(([k, x]) => `${k} ${(x / 1000).toFixed(1)}`)
                .join(', ')}; other processes ${m.cpu.otherCores.toFixed(2)} cores`
            : ''),
      );
    }
    await bc.stop();
    log(`in-process sweep again, after the cluster runs:`);
    const sweepAfter = await sweepInProcess(model.file, o.settings, o.batches, o.sweepS, log);
    const best = [...sweep, ...sweepAfter].reduce((a, b) => (b.imagesPerS > a.imagesPerS ? b : a));
    const inProcess = best.imagesPerS;
    log(
      `best in-process: ${best.imagesPerS.toFixed(1)} images/s (${best.slots} slot(s) × ${best.intraOpThreads} thread(s), batch ${best.batch}, ${sweep.includes(best) ? 'first' : 'second'} sweep)`,
    );
    const runs: ResnetClusterRun[] = [];
    for (const { v, protocol, clients, load, cpu, stats } of measured) {
      const fairBoundMs = (1.3 * clients * 1000) / load.rps;
      const run: ResnetClusterRun = {
        model: v.name,
        protocol,
        clients,
        setting: v.setting,
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
      modelhostSettings: 'modelhost defaults: slots × threads and batch size planned per model at load, MAX_QUEUE_DELAY_MS=0',
      plans,
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
  const label = (x: ResnetClusterRun): string => `${x.protocol}, ${x.clients} clients, ${x.setting}`;
  const bill = r.runs.map((x) => {
    const c = x.cpu?.perRequestUs ?? {};
    const modelhosts = Object.entries(c)
      .filter(([k]) => k.startsWith('modelhost'))
      .reduce((a, [, v]) => a + v, 0);
    return [
      label(x),
      ms(c.inferrer),
      ms(c.balancer),
      ms(modelhosts),
      ms(x.cpu?.serverUsPerRequest),
      ms(x.cpu?.generatorUsPerRequest),
      fmt(x.cpu?.otherCores ?? NaN, 2),
    ];
  });
  const rows = r.runs.map((x) => [
    label(x),
    fmt(x.load.rps, 1),
    fmtMs(x.load.p50),
    fmtMs(x.load.p99),
    fmt(x.load.p99 / x.load.p50, 2),
    fmtMs(x.fairBoundMs),
    verdict(x.fairOk),
    x.load.errors,
    fmt(x.rowsPerBatch, 2),
    fmt(x.ratio, 2),
    fmt(x.cpu?.otherCores ?? NaN, 2),
  ]);
  return [
    table(
      ['cluster run', 'images/s', 'p50 ms', 'p99 ms', 'p99÷p50', 'fair bound ms', 'p99≤bound', 'errors', 'rows/batch', '÷ in-process', 'other cores'],
      rows,
      ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
    '',
    'what each modelhost chose at load (GET /v1/models/{name}/settings → execution):',
    ...r.plans.map((p) => `  ${p.modelhost}, ${p.model}: ${p.reason}`),
    '',
    `CPU per answered request, ms (all threads of each process; in-process at its best: ≈ ${((os.cpus().length * 1000) / r.inProcessImagesPerS).toFixed(0)} ms of the ${os.cpus().length} cores per image):`,
    table(['cluster run', 'inferrer', 'nginx', 'modelhosts', 'cluster total', 'load generator', 'other cores'], bill, ['l', 'r', 'r', 'r', 'r', 'r', 'r']),
    '',
    `in-process: ${fmt(r.inProcessImagesPerS, 1)} images/s = the best setting of both sweeps (${r.best.slots} slot(s) × ${r.best.intraOpThreads} intra-op thread(s), batch ${r.best.batch}); ` +
      'fair bound = 1.3 × clients ÷ throughput (a fair FIFO gives every request about clients ÷ throughput).',
  ].join('\n');
}

/** What every modelhost chose for each model at load, read from each directly (not through the balancer). */
async function modelhostPlans(bc: Awaited<ReturnType<typeof startBenchCluster>>, models: string[]): Promise<ResnetResult['plans']> {
  const out: ResnetResult['plans'] = [];
  for (const mh of bc.cluster.modelhosts) {
    for (const model of models) {
      try {
        const s = (await (await fetch(`${mh.url}/v1/models/${model}/settings`)).json()) as {
          execution?: { reason?: string; instances?: number; intra_op_threads?: number; max_batch_size?: number };
        };
        const e = s.execution ?? {};
        out.push({
          model,
          modelhost: mh.id,
          reason: e.reason ?? '?',
          instances: e.instances ?? NaN,
          intraOpThreads: e.intra_op_threads ?? NaN,
          maxBatchSize: e.max_batch_size ?? NaN,
        });
      } catch (err) {
        out.push({ model, modelhost: mh.id, reason: `not read: ${(err as Error).message}`, instances: NaN, intraOpThreads: NaN, maxBatchSize: NaN });
      }
    }
  }
  return out;
}
