/**
 * `pnpm bench`: the serving path against a naive server and against raw ONNX Runtime, measured in one run
 * on this machine. See bench/README.md for what each figure means.
 *
 *   1. iris through the whole cluster vs a naive node:http + onnxruntime-node server, at 1/32/128 clients
 *   2. ResNet-50 (built here, random weights) at 16 clients through the cluster, batching on and off, vs
 *      the best in-process onnxruntime-node setting
 *   3. images: JPEGs as multipart files at 16 clients for digits and ResNet-50, with the decode/resize share
 *   6. response cache (--only cache): ResNet-50 hit latency, and throughput at a 50 % hit rate
 *   7. gRPC vs HTTP binary vs HTTP JSON (Open Inference Protocol) on iris at 128 clients and ResNet-50 at 16
 *  10. cancelled work (--only cancel): ResNet-50 goodput of 16 clients beside 64 that give up after 200 ms
 *
 * Prints every table, then a summary; writes everything to bench/results/latest.json.
 */
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type CacheResult, cacheTable, runCache } from './lib/cache.ts';
import { type CancelResult, cancelTable, runCancel } from './lib/cancel.ts';
import { stopAllClusters } from './lib/cluster.ts';
import { type DeadlineResult, deadlineTable, runDeadline } from './lib/deadline.ts';
import { type DriftResult, driftTable, runDrift } from './lib/drift.ts';
import { type ManyModelsResult, manyModelsTable, runManyModels, worstModelsMb } from './lib/many-models.ts';
import { type OverloadResult, overloadTable, runOverload } from './lib/overload.ts';
import { DEFAULT_IP_RPS, IRIS_TARGET, type IrisResult, irisTable, runIris } from './lib/iris.ts';
import { type ImagesResult, imagesTable, runImages } from './lib/images.ts';
import { parseOptions } from './lib/options.ts';
import { REPO_ROOT, RESULTS_DIR } from './lib/paths.ts';
import { type GrpcResult, grpcTable, median, runGrpc } from './lib/grpc.ts';
import { type ResnetResult, resnetTable, runResnet, sweepTable } from './lib/resnet.ts';
import { fmt, fmtMs, fmtRatio, fmtRps, table, verdict } from './lib/table.ts';

// The in-process and naive baselines load ONNX Runtime directly: its telemetry off, as in the services
// (packages/runtime/src/onnx-session.ts), unless the environment says otherwise.
process.env.ORT_DISABLE_TELEMETRY ??= '1';

const started = performance.now();
const opts = (() => {
  try {
    return parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(2);
  }
})();

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`\n${signal}: stopping the clusters …\n`);
    void stopAllClusters().finally(() => process.exit(130));
  });
}

const elapsed = (): string => `${((performance.now() - started) / 1000).toFixed(0)} s`;
const log = (line: string): void => void process.stdout.write(`[${elapsed().padStart(5)}] ${line}\n`);
const out = (text = ''): void => void process.stdout.write(`${text}\n`);

function version(pkg: string): string {
  try {
    return (JSON.parse(readFileSync(path.join(REPO_ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}

const meta = {
  date: new Date().toISOString(),
  host: os.hostname(),
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model ?? '?',
  memoryGiB: Number((os.totalmem() / 2 ** 30).toFixed(1)),
  loadAverageAtStart: os.loadavg().map((l) => Number(l.toFixed(2))),
  node: process.version,
  onnxruntimeNode: version('onnxruntime-node'),
  autocannon: version('autocannon'),
  quick: opts.quick,
};

out(`Inferrer bench — ${meta.date}`);
out(
  `${meta.cpus} × ${meta.cpuModel}, ${meta.memoryGiB} GiB, load average ${meta.loadAverageAtStart.join(' ')}; node ${meta.node}, onnxruntime-node ${meta.onnxruntimeNode}, autocannon ${meta.autocannon}`,
);
out(`parts: ${opts.parts.join(', ')}${opts.quick ? ' (quick: shorter windows, noisier figures)' : ''}; load generator: autocannon in its own child process`);
out();

let iris: IrisResult | undefined;
let resnet: ResnetResult | undefined;
const failures: string[] = [];

if (opts.parts.includes('iris')) {
  out(`== 1. iris: cluster vs naive server (${opts.iris.warmupS} s warm-up + ${opts.iris.durationS} s per point) ==`);
  try {
    iris = await runIris(opts, log);
    out();
    out(`cluster: Inferrer → ${iris.balancer} → ${iris.modelhosts} modelhosts (defaults); naive: one node:http process, session.run on the HTTP thread`);
    out(irisTable(iris));
  } catch (err) {
    failures.push(`iris: ${(err as Error).stack ?? err}`);
    out(`iris part failed: ${(err as Error).stack ?? err}`);
  }
  out();
}

if (opts.parts.includes('resnet')) {
  out(
    `== 2. ResNet-50: cluster vs in-process onnxruntime-node (${opts.resnet.clients} clients, ${opts.resnet.warmupS} s warm-up + ${opts.resnet.durationS} s per run) ==`,
  );
  try {
    resnet = await runResnet(opts, log);
    out();
    out('in-process sweep (* = best):');
    out(sweepTable(resnet));
    out();
    out(
      `cluster: Inferrer → ${resnet.balancer} → ${resnet.modelhosts} modelhosts (${resnet.modelhostSettings}); body ${(resnet.bodyBytes / 1e6).toFixed(2)} MB v1 JSON`,
    );
    out(resnetTable(resnet));
  } catch (err) {
    failures.push(`resnet: ${(err as Error).stack ?? err}`);
    out(`ResNet-50 part failed: ${(err as Error).stack ?? err}`);
  }
  out();
}

let images: ImagesResult | undefined;
if (opts.parts.includes('images')) {
  out(`== 3. images: JPEGs as multipart files through the cluster (${opts.resnet.clients} clients) ==`);
  try {
    images = await runImages(opts, log);
    out();
    out(
      `cluster: Inferrer → ${images.balancer} → ${images.modelhosts} modelhosts; preprocess = decode + resize + normalise on the modelhost (Server-Timing, sampled during the load)`,
    );
    out(imagesTable(images));
  } catch (err) {
    failures.push(`images: ${(err as Error).stack ?? err}`);
    out(`images part failed: ${(err as Error).stack ?? err}`);
  }
  out();
}

let overload: OverloadResult | undefined;
if (opts.parts.includes('overload')) {
  out('== 5. load shedding: the saturating concurrency and 4× it (slow model, MAX_QUEUE_SIZE 16) ==');
  try {
    overload = await runOverload(opts, log);
    out(overloadTable(overload));
  } catch (err) {
    failures.push(`overload: ${(err as Error).stack ?? err}`);
    out(`overload part failed: ${(err as Error).stack ?? err}`);
  }
}

let deadline: DeadlineResult | undefined;
if (opts.parts.includes('deadline')) {
  out('== 8. deadlines under deep overload: ResNet-50, 512 clients, REQUEST_TIMEOUT_MS=10000 ==');
  try {
    deadline = await runDeadline(opts, log);
    out(deadlineTable(deadline));
  } catch (err) {
    failures.push(`deadline: ${(err as Error).stack ?? err}`);
    out(`deadline part failed: ${(err as Error).stack ?? err}`);
  }
  out();
}

let drift: DriftResult | undefined;
if (opts.parts.includes('drift')) {
  out(`== 4. drift statistics on vs off (iris, 32 clients, ${opts.iris.warmupS} s warm-up + ${opts.iris.durationS} s each) ==`);
  try {
    drift = await runDrift(opts, log);
    out();
    out(driftTable(drift));
  } catch (err) {
    failures.push(`drift: ${(err as Error).stack ?? err}`);
    out(`drift part failed: ${(err as Error).stack ?? err}`);
  }
  out();
}

let cache: CacheResult | undefined;
if (opts.parts.includes('cache')) {
  out(`== 6. response cache: ResNet-50 over v2 binary (${opts.resnet.warmupS} s warm-up + ${opts.resnet.durationS} s per run) ==`);
  try {
    cache = await runCache(opts, log);
    out();
    out(
      `cluster: Inferrer → ${cache.balancer} → ${cache.modelhosts} modelhosts; "50 % hits": every second request of each client is an image never sent before`,
    );
    out(cacheTable(cache));
  } catch (err) {
    failures.push(`cache: ${(err as Error).stack ?? err}`);
    out(`cache part failed: ${(err as Error).stack ?? err}`);
  }
  out();
}

let grpcResult: GrpcResult | undefined;
if (opts.parts.includes('grpc')) {
  out(
    `== 7. gRPC vs HTTP binary vs HTTP JSON: iris at 128 clients, ResNet-50 at ${opts.resnet.clients} (${opts.iris.warmupS}/${opts.resnet.warmupS} s warm-up + ${opts.iris.durationS}/${opts.resnet.durationS} s per point) ==`,
  );
  try {
    grpcResult = await runGrpc(opts, log);
    out();
    out(`cluster: Inferrer (HTTP and gRPC) → ${grpcResult.balancer} → ${grpcResult.modelhosts} modelhosts; every way asks for all outputs of the same input`);
    out(grpcTable(grpcResult));
  } catch (err) {
    failures.push(`grpc: ${(err as Error).stack ?? err}`);
    out(`gRPC part failed: ${(err as Error).stack ?? err}`);
  }
  out();
}

let manyModels: ManyModelsResult | undefined;
if (opts.parts.includes('many-models')) {
  const m = opts.manyModels;
  out(
    `== 9. many models: ${m.models} MLPs, ${m.modelhosts} modelhosts each with a budget for ${Math.round(m.budgetShare * 100)} % of them, Zipf s=${m.zipf} from ${m.clients} clients (${m.warmupS} s warm-up + ${m.durationS} s), placement off and on, ${m.sharedGraph ? 'the models with shared_graph (a session per MLP size and worker)' : 'a session per model (--own-sessions)'} ==`,
  );
  try {
    manyModels = await runManyModels(m, log);
    out();
    out(
      `cluster: Inferrer → ${manyModels.runs[0]?.balancer ?? '?'} / ${manyModels.runs[1]?.balancer ?? '?'} → ${m.modelhosts} modelhosts; hit: the model was loaded on the worker; in worker: of a hit's latency, the time in the worker's batcher queue and run (Server-Timing queue + compute), the rest is the way there and back; load: the request waited for its load (Server-Timing load;dur); single: every request for one model, same clients, same cluster; per group: predictions per request from the Inferrer to nginx, single-model run / window`,
    );
    out(manyModelsTable(manyModels));
  } catch (err) {
    failures.push(`many-models: ${(err as Error).stack ?? err}`);
    out(`many-models part failed: ${(err as Error).stack ?? err}`);
  }
  out();
}

let cancel: CancelResult | undefined;
if (opts.parts.includes('cancel')) {
  out(
    `== 10. cancelled work: ResNet-50 over v2 binary, ${opts.resnet.clients} steady clients alone and beside 64 that give up after 200 ms (${opts.resnet.warmupS} s warm-up + ${opts.resnet.durationS} s per run) ==`,
  );
  try {
    cancel = await runCancel(opts, log);
    out();
    out(
      `cluster: Inferrer → ${cancel.balancer} → ${cancel.modelhosts} modelhosts; a quitter closes its connection ${cancel.giveUpMs} ms after sending and sends again at once`,
    );
    out(cancelTable(cancel));
  } catch (err) {
    failures.push(`cancel: ${(err as Error).stack ?? err}`);
    out(`cancel part failed: ${(err as Error).stack ?? err}`);
  }
  out();
}

interface SummaryRow {
  measure: string;
  value: string;
  target: string;
  verdict: string;
}
const summary: SummaryRow[] = [];
if (iris) {
  for (const p of iris.points) {
    summary.push({
      measure: `iris ${p.clients} clients: cluster ÷ naive req/s`,
      value: `${fmt(p.ratio, 2)} (${Math.round(p.cluster.rps)} / ${Math.round(p.naive.rps)})`,
      target: p.clients === 128 ? `≥ ${IRIS_TARGET.ratio}` : '',
      verdict: p.clients === 128 ? verdict(iris.targets.ratioOk) : '',
    });
  }
  summary.push({
    measure: 'iris 128 clients: cluster p99',
    value: `${fmtMs(iris.targets.p99)} ms`,
    target: `≤ ${IRIS_TARGET.p99Ms} ms`,
    verdict: verdict(iris.targets.p99Ok),
  });
  {
    const over = iris.points.filter((p) => p.cluster.rps > DEFAULT_IP_RPS);
    summary.push({
      measure: `iris: points a single load generator would meet the default per-address limit at (${DEFAULT_IP_RPS.toLocaleString('en')}/s; off here)`,
      value: over.length ? over.map((p) => `${p.clients} clients`).join(', ') : 'none',
      target: 'report',
      verdict: 'report',
    });
  }
  summary.push({
    measure: 'iris: cluster errors (all points)',
    value: String(iris.points.reduce((s, p) => s + p.cluster.errors, 0)),
    target: '0',
    verdict: verdict(iris.targets.errorsOk),
  });
}
if (resnet) {
  const plain = resnet.runs.filter((r) => r.model === 'resnet50');
  const bin = plain.find((r) => r.protocol === 'v2 binary' && r.clients === resnet!.clients);
  const json = plain.find((r) => r.protocol === 'v2 JSON' && r.clients === resnet!.clients);
  for (const r of resnet.runs) {
    const what = `${r.protocol}, ${r.clients} clients, ${r.setting}`;
    const target = r === bin;
    summary.push({
      measure: `ResNet-50 ${what}: cluster ÷ in-process`,
      value: `${target ? fmtRatio(r.ratio, 0.9, true) : fmt(r.ratio, 2)} (${fmt(r.load.rps, 1)} / ${fmt(resnet.inProcessImagesPerS, 1)} images/s)`,
      target: target ? '≥ 0.90' : 'report',
      verdict: target ? verdict(r.ratio >= 0.9) : 'report',
    });
    const fairTarget = r.model === 'resnet50' && r.protocol === 'v2 binary';
    summary.push({
      measure: `ResNet-50 ${what}: p99 vs 1.3 × clients ÷ throughput (p99 ÷ p50)`,
      value: `${fmtMs(r.load.p99)} / ${fmtMs(r.fairBoundMs)} ms (${fmt(r.load.p99 / r.load.p50, 2)})`,
      target: fairTarget ? 'p99 ≤ bound' : 'report',
      verdict: fairTarget ? verdict(r.fairOk) : 'report',
    });
    summary.push({ measure: `ResNet-50 ${what}: errors`, value: String(r.load.errors), target: '0', verdict: verdict(r.load.errors === 0) });
  }
  if (json && bin) {
    const x = json.load.rps / bin.load.rps;
    summary.push({
      measure: `ResNet-50 ${resnet.clients} clients: v2 JSON ÷ v2 binary throughput`,
      value: `${fmtRatio(x, 0.8, true)} (${fmt(json.load.rps, 1)} / ${fmt(bin.load.rps, 1)} images/s)`,
      target: '≥ 0.80',
      verdict: verdict(x >= 0.8),
    });
  }
}

if (images) {
  for (const r of images.runs) {
    summary.push({
      measure: `${r.model} ${images.clients} clients: JPEG images/s (decode+resize share)`,
      value: `${fmt(r.load.rps, 1)} (${(r.preprocessShare * 100).toFixed(1)} %)`,
      target: '',
      verdict: 'report',
    });
    summary.push({ measure: `${r.model}: errors`, value: String(r.load.errors), target: '0', verdict: verdict(r.load.errors === 0) });
  }
}

if (overload) {
  const at4 = overload.points[overload.points.length - 1]!;
  const sat = overload.points[0]!;
  summary.push({
    measure: `overload ${at4.clients} clients (4× saturation): failed requests other than 503/429`,
    value: `${at4.failed} of ${at4.ok + at4.shed + at4.limited + at4.failed} (ok ${at4.ok}, shed ${at4.shed}, limited ${at4.limited})`,
    target: '0',
    verdict: verdict(at4.failed === 0),
  });
  summary.push({
    measure: `overload ${overload.polite.clients} clients honouring Retry-After: ok/s ÷ ok/s at saturation`,
    value: `${fmt(overload.polite.okPerS / sat.load.rps, 2)} (${fmt(overload.polite.okPerS, 1)} / ${fmt(sat.load.rps, 1)}); p99 ${fmtMs(overload.polite.p99)} ms; failed ${overload.polite.failed}`,
    target: 'report',
    verdict: 'report',
  });
  summary.push({
    measure: 'overload: p99 of successes at 4× ÷ at saturation',
    value: `${fmt(at4.load.p99 / sat.load.p99, 2)} (${fmtMs(at4.load.p99)} / ${fmtMs(sat.load.p99)} ms)`,
    target: 'bounded',
    verdict: 'report',
  });
}
if (grpcResult) {
  for (const p of grpcResult.points) {
    if (p.way === 'HTTP binary') continue;
    const ref = grpcResult.points.find((q) => q.model === p.model && q.way === 'HTTP binary')!;
    summary.push({
      measure: `${p.model} ${p.clients} clients: ${p.way} ÷ HTTP binary req/s, best rounds (p99 ms)`,
      value: `${fmt(p.load.rps / ref.load.rps, 2)} (${fmt(p.load.rps, 1)} / ${fmt(ref.load.rps, 1)}; p99 ${fmtMs(p.load.p99)} / ${fmtMs(ref.load.p99)})`,
      target: 'report',
      verdict: 'report',
    });
  }
  for (const [model, ratios] of Object.entries(grpcResult.roundRatios)) {
    const target = model === 'resnet50';
    summary.push({
      measure: `${model}: gRPC ÷ HTTP binary req/s, median of paired rounds`,
      value: `${target ? fmtRatio(grpcResult.resnetRatio, 0.9, true) : fmt(median(ratios), 2)} (rounds: ${ratios.map((r) => fmt(r, 2)).join(', ')})`,
      target: target ? '≥ 0.90' : 'report',
      verdict: target ? verdict(grpcResult.resnetRatioOk) : 'report',
    });
  }
  summary.push({
    measure: 'gRPC part: errors (all points)',
    value: String(grpcResult.points.reduce((n, p) => n + p.load.errors, 0)),
    target: '0',
    verdict: verdict(grpcResult.points.every((p) => p.load.errors === 0)),
  });
}
if (deadline) {
  summary.push({
    measure: `deadline ${deadline.deadlineMs / 1000} s, ${deadline.clients} clients on ResNet-50: answers later than ${(deadline.deadlineMs + 500) / 1000} s`,
    value: `${deadline.late} of ${Object.values(deadline.byStatus).reduce((n, s) => n + s.count, 0)} (${Object.entries(deadline.byStatus)
      .map(([k, s]) => `${k}: ${s.count}`)
      .join(', ')}; failed ${deadline.failed})`,
    target: '0',
    verdict: verdict(deadline.late === 0 && deadline.failed === 0),
  });
  summary.push({ measure: 'deadline: results/s under that overload', value: fmt(deadline.okPerS, 1), target: 'report', verdict: 'report' });
}
if (manyModels) {
  const budgetMb = manyModels.budgetBytes / 2 ** 20;
  for (const run of manyModels.runs) {
    const what = `many models, placement ${run.balance === 'placement' ? 'on' : 'off'}`;
    const errors = run.load.errors + run.warmup.errors + run.single.errors;
    const worst = worstModelsMb(run) / budgetMb;
    summary.push({ measure: `${what}: errors (warm-up and single-model run included)`, value: String(errors), target: '0', verdict: verdict(errors === 0) });
    summary.push({
      measure: `${what}: worst peak native RSS (outside V8's heap) above the serving worker's own ÷ budget`,
      value: `${fmt(worst, 2)} (budget ${fmt(budgetMb, 0)} MB)`,
      target: '≤ 1.15',
      verdict: verdict(worst <= 1.15),
    });
    summary.push({
      measure: `${what}: warm p99 ÷ single-model p99`,
      value: `${fmtRatio(run.load.hits.p99 / run.single.hits.p99, 2, false)} (${fmtMs(run.load.hits.p99)} / ${fmtMs(run.single.hits.p99)} ms)`,
      target: '≤ 2',
      verdict: verdict(run.load.hits.p99 <= 2 * run.single.hits.p99),
    });
    summary.push({
      measure: `${what}: hit rate (LRU ceiling; loads/s, evictions/s)`,
      value: `${fmt(run.hitRate, 3)} (${fmt(run.lruHitRate, 3)}; ${fmt(run.loadsPerS, 1)}, ${fmt(run.evictionsPerS, 1)})`,
      target: '≥ 0.9',
      verdict: verdict(run.hitRate >= 0.9),
    });
    summary.push({ measure: `${what}: requests/s`, value: fmtRps(run.load.rps), target: 'report', verdict: 'report' });
  }
  const [off, on] = manyModels.runs;
  if (off && on) {
    summary.push({
      measure: 'many models: placement on ÷ off: hit rate, loads/s, warm p99, req/s',
      value: `${fmt(on.hitRate / off.hitRate, 2)}, ${fmt(on.loadsPerS / off.loadsPerS, 2)}, ${fmt(on.load.hits.p99 / off.load.hits.p99, 2)}, ${fmt(on.load.rps / off.load.rps, 2)}`,
      target: 'report',
      verdict: 'report',
    });
  }
}
if (drift) {
  summary.push({
    measure: 'iris 32 clients: drift on ÷ off req/s',
    value: `${fmt(drift.ratio, 3)} (${Math.round(drift.runs[0]!.load.rps)} / ${Math.round(drift.runs[1]!.load.rps)})`,
    target: '≥ 0.95',
    verdict: verdict(drift.ratio >= 0.95),
  });
}

if (cache) {
  const errors = cache.hit.load.errors + cache.half.load.errors + cache.all.load.errors;
  summary.push({
    measure: 'ResNet-50 1 client: cache hit p50 ÷ no-cache p50 latency',
    value: `${fmt(cache.hit.load.p50 / cache.miss.load.p50, 2)} (${fmtMs(cache.hit.load.p50)} / ${fmtMs(cache.miss.load.p50)} ms)`,
    target: 'report',
    verdict: 'report',
  });
  summary.push({
    measure: `ResNet-50 ${cache.clients} clients: 50 % hits ÷ no cache images/s`,
    value: `${fmt(cache.half.load.rps / cache.off.load.rps, 2)} (${fmt(cache.half.load.rps, 1)} / ${fmt(cache.off.load.rps, 1)}; hit rate ${(cache.half.hitRate * 100).toFixed(1)} %)`,
    target: 'report',
    verdict: 'report',
  });
  summary.push({ measure: 'response cache: errors', value: String(errors), target: '0', verdict: verdict(errors === 0) });
}

if (cancel) {
  const mixed = cancel.runs[1]!;
  summary.push({
    measure: `ResNet-50 ${cancel.clients} clients beside ${cancel.quitters} quitters: goodput ÷ alone`,
    value: `${fmt(cancel.ratio, 2)} (${fmt(mixed.load.rps, 1)} / ${fmt((cancel.runs[0]!.load.rps + cancel.runs[2]!.load.rps) / 2, 1)} images/s)`,
    target: '≥ 0.90',
    verdict: verdict(cancel.ratio >= 0.9),
  });
  summary.push({
    measure: "cancelled work: steady clients' errors",
    value: String(cancel.runs.reduce((n, x) => n + x.load.errors, 0)),
    target: '0',
    verdict: verdict(cancel.runs.every((x) => x.load.errors === 0)),
  });
}

const notable = [
  ...(iris?.notable.map((n) => ({ part: 'iris', ...n })) ?? []),
  ...(resnet?.notable.map((n) => ({ part: 'resnet', ...n })) ?? []),
  ...(images?.notable.map((n) => ({ part: 'images', ...n })) ?? []),
  ...(grpcResult?.notable.map((n) => ({ part: 'grpc', ...n })) ?? []),
  ...(manyModels?.notable.map((n) => ({ part: 'many-models', ...n })) ?? []),
];
if (notable.length > 0) {
  out(`service log lines at warn or above during the run: ${notable.length}${notable.length >= 200 ? '+' : ''} (first 5):`);
  for (const n of notable.slice(0, 5)) out(`  [${n.part}] ${n.service}: ${n.line}`);
  out();
}

out('== summary ==');
out(
  table(
    ['measure', 'value', 'target', 'verdict'],
    summary.map((s) => [s.measure, s.value, s.target, s.verdict]),
    ['l', 'r', 'l', 'l'],
  ),
);
out();
out(`total time: ${elapsed()}`);

if (opts.write) {
  await mkdir(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, 'latest.json');
  const omitNotable = <T extends { notable: unknown }>(x: T | undefined) => (x ? { ...x, notable: undefined } : undefined);
  await writeFile(
    file,
    `${JSON.stringify({ meta: { ...meta, seconds: Math.round((performance.now() - started) / 1000) }, options: opts, summary, iris: omitNotable(iris), resnet: omitNotable(resnet), images: omitNotable(images), grpc: omitNotable(grpcResult), drift, overload, cache, deadline, manyModels: omitNotable(manyModels), cancel, notable, failures }, null, 2)}\n`,
  );
  out(`written: ${path.relative(process.cwd(), file)}`);
}
process.exit(failures.length > 0 ? 1 : 0);
