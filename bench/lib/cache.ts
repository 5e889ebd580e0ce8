/**
 * The response cache (`--only cache`): ResNet-50 over v2 binary, one copy of the model with
 * `response_cache: {enable: true}` and one without, in one cluster.
 *
 *   - latency at 1 client: the same image again and again, answered from the cache (hit), against the
 *     same image on the model without a cache (every request runs: miss);
 *   - throughput at 16 clients: the model without a cache; the cached model with every second request of
 *     each client a new image (a 50 % hit rate, read back from the modelhosts' hit and miss counters);
 *     and the cached model with every request the same image (all hits).
 */
import type { BenchOptions } from './options.ts';
import { clusterPids, startBenchCluster } from './cluster.ts';
import type { LoadResult } from './load.ts';
import { measure } from './measure.ts';
import { CACHE_DIR } from './paths.ts';
import { ensureResnet50 } from './resnet50.ts';
import { imageBody } from './resnet.ts';
import { fmt, fmtMs, table } from './table.ts';

export interface CacheRun {
  name: string;
  model: string;
  clients: number;
  load: LoadResult;
  /** Hits ÷ (hits + misses) on the modelhosts over the run (NaN for the model without a cache). */
  hitRate: number;
}

export interface CacheResult {
  clients: number;
  balancer: string;
  modelhosts: number;
  /** 1 client: a hit, and the same request on the model without a cache. */
  hit: CacheRun;
  miss: CacheRun;
  /** 16 clients: no cache, 50 % hits, all hits. */
  off: CacheRun;
  half: CacheRun;
  all: CacheRun;
}

/** The image with the binary tensor extension; `dataAt` is where the tensor's bytes start. */
function v2Binary(pixels: Float32Array): { body: Buffer; headerLength: number } {
  const header = Buffer.from(
    `{"inputs":[{"name":"input","shape":[1,3,224,224],"datatype":"FP32","parameters":{"binary_data_size":${pixels.byteLength}}}],"outputs":[{"name":"logits","parameters":{"binary_data":true}}]}`,
  );
  return { body: Buffer.concat([header, Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength)]), headerLength: header.length };
}

/** Hits and misses of `model` summed over every modelhost. */
async function cacheCounts(urls: string[], model: string): Promise<{ hits: number; misses: number }> {
  let hits = 0;
  let misses = 0;
  for (const url of urls) {
    const text = await (await fetch(`${url}/metrics`)).text();
    for (const line of text.split('\n')) {
      if (!line.includes(`model="${model}"`)) continue;
      const v = Number(line.slice(line.lastIndexOf(' ') + 1));
      if (line.startsWith('modelhost_response_cache_hits_total{')) hits += v;
      else if (line.startsWith('modelhost_response_cache_misses_total{')) misses += v;
    }
  }
  return { hits, misses };
}

export async function runCache(opts: BenchOptions, log: (line: string) => void): Promise<CacheResult> {
  const o = opts.resnet;
  const model = await ensureResnet50(CACHE_DIR);
  const { pixels } = imageBody();
  const { body, headerLength } = v2Binary(pixels);
  const bc = await startBenchCluster({
    modelhosts: opts.modelhosts,
    models: [
      {
        name: 'resnet50-cache',
        file: model.file,
        description: 'ResNet-50 (bench), response cache on',
        config: { preload: true, batching: { max_batch_size: o.maxBatchSize }, response_cache: { enable: true } },
      },
      {
        name: 'resnet50',
        file: model.file,
        description: 'ResNet-50 (bench), no response cache',
        config: { preload: true, batching: { max_batch_size: o.maxBatchSize } },
      },
    ],
  });
  try {
    const urls = bc.cluster.modelhosts.map((m) => m.url);
    const headers = { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(headerLength) };
    // The cached model's answers must equal the uncached one's.
    const answers: Buffer[] = [];
    for (const name of ['resnet50', 'resnet50-cache', 'resnet50-cache']) {
      const res = await fetch(`${bc.url}/v2/models/${name}/infer`, { method: 'POST', headers, body: new Uint8Array(body) });
      const raw = Buffer.from(await res.arrayBuffer());
      if (res.status !== 200) throw new Error(`${name} answered ${res.status}: ${raw.toString('utf8', 0, 300)}`);
      answers.push(raw.subarray(Number(res.headers.get('inference-header-content-length'))));
    }
    if (!answers[1]!.equals(answers[0]!) || !answers[2]!.equals(answers[0]!)) throw new Error('the cached answers differ from the uncached model');
    log('the cached model answers the same logits as the uncached one');
    // Warm every modelhost's cache with the repeated image, so the "hit" runs only ever hit.
    for (let i = 0; i < 4 * opts.modelhosts; i++)
      await fetch(`${bc.url}/v2/models/resnet50-cache/infer`, { method: 'POST', headers, body: new Uint8Array(body) }).then((r) => r.arrayBuffer());

    const run = async (name: string, target: string, clients: number, alternate: boolean, durationS: number): Promise<CacheRun> => {
      const before = await cacheCounts(urls, target);
      const m = await measure(
        {
          url: `${bc.url}/v2/models/${target}/infer`,
          method: 'POST',
          headers,
          body: body.toString('base64'),
          bodyEncoding: 'base64',
          ...(alternate ? { alternateUniqueAt: headerLength } : {}),
          connections: clients,
          warmupS: o.warmupS,
          durationS,
          timeoutS: 60,
        },
        clusterPids(bc),
      );
      const after = await cacheCounts(urls, target);
      const hits = after.hits - before.hits;
      const misses = after.misses - before.misses;
      const r: CacheRun = { name, model: target, clients, load: m.load, hitRate: hits + misses > 0 ? hits / (hits + misses) : Number.NaN };
      log(
        `  ${name} (${clients} client${clients === 1 ? '' : 's'}): ${fmt(r.load.rps, 1)} images/s, p50 ${fmtMs(r.load.p50)} ms, p99 ${fmtMs(r.load.p99)} ms, errors ${r.load.errors}${Number.isNaN(r.hitRate) ? '' : `, hit rate ${(r.hitRate * 100).toFixed(1)} %`}`,
      );
      return r;
    };
    const short = Math.max(2, o.durationS / 2);
    const hit = await run('hit', 'resnet50-cache', 1, false, short);
    const miss = await run('no cache', 'resnet50', 1, false, short);
    const off = await run('no cache', 'resnet50', o.clients, false, o.durationS);
    const half = await run('50 % hits', 'resnet50-cache', o.clients, true, o.durationS);
    const all = await run('all hits', 'resnet50-cache', o.clients, false, o.durationS);
    return { clients: o.clients, balancer: bc.cluster.balancer.description, modelhosts: opts.modelhosts, hit, miss, off, half, all };
  } finally {
    await bc.stop();
  }
}

export function cacheTable(r: CacheResult): string {
  const row = (x: CacheRun, base: CacheRun): (string | number)[] => [
    x.name,
    x.clients,
    fmt(x.load.rps, 1),
    fmtMs(x.load.p50),
    fmtMs(x.load.p99),
    Number.isNaN(x.hitRate) ? '-' : `${(x.hitRate * 100).toFixed(1)} %`,
    x.load.errors,
    fmt(x.load.rps / base.load.rps, 2),
  ];
  return table(
    ['ResNet-50, v2 binary', 'clients', 'images/s', 'p50 ms', 'p99 ms', 'hit rate', 'errors', '÷ no cache'],
    [row(r.miss, r.miss), row(r.hit, r.miss), row(r.off, r.off), row(r.half, r.off), row(r.all, r.off)],
    ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
  );
}
