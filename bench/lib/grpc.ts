/**
 * Part 7 (`--only grpc`): the Open Inference Protocol's three ways in, one cluster, one run: gRPC
 * (ModelInfer with raw_input_contents, answered with raw_output_contents) against HTTP with the binary
 * tensor extension and HTTP with JSON tensors, on iris at 128 clients and ResNet-50 at 16. Every way asks
 * for all outputs of the same input. Before measuring, the gRPC answer must carry the bytes of the HTTP
 * binary answer. gRPC load comes from grpc-load-generator.ts (@grpc/grpc-js, closed loop), HTTP load from
 * load-generator.ts (autocannon), each in its own child process. The gRPC and HTTP binary points alternate
 * over two rounds for iris and three for ResNet-50 (one with --quick): the table keeps each way's best round
 * (noise on a shared machine only ever lowers throughput), and the ratio that meets the target is the median
 * of the rounds' own ratios (each round's two points run one right after the other, so a neighbour's burst
 * hits both or shows as one outlier round). Target: gRPC ≥ 0.90 × HTTP binary on ResNet-50.
 */
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { BenchOptions } from './options.ts';
import { clusterPids, startBenchCluster } from './cluster.ts';
import type { AnyLoadSpec, LoadResult } from './load.ts';
import { type CpuBill, measure } from './measure.ts';
import { CACHE_DIR, REPO_ROOT } from './paths.ts';
import { imageBody, v2BinaryBody, v2JsonBody } from './resnet.ts';
import { ensureResnet50 } from './resnet50.ts';
import { fmt, fmtMs, fmtRps, table } from './table.ts';

const PROTO = path.join(REPO_ROOT, 'services', 'inferrer', 'src', 'protocol', 'grpc', 'grpc_service.proto');
const IRIS_ROW = [5.1, 3.5, 1.4, 0.2];

export interface GrpcLoadSpec extends AnyLoadSpec {
  address: string;
  proto: string;
  connections: number;
  /** A ModelInferRequest; raw_input_contents in base64 (it crosses IPC as JSON). */
  request: { model_name: string; inputs: { name: string; datatype: string; shape: string[] }[]; raw_input_contents: string[] };
}

export type Way = 'gRPC' | 'HTTP binary' | 'HTTP JSON';

export interface WayPoint {
  model: 'iris' | 'resnet50';
  way: Way;
  clients: number;
  load: LoadResult;
  cpu?: CpuBill;
  /** Rounds measured; `load` is the best of them. */
  rounds: number;
}

export interface GrpcResult {
  balancer: string;
  modelhosts: number;
  points: WayPoint[];
  /** gRPC ÷ HTTP binary requests/s of each round, by model (the two ran one right after the other). */
  roundRatios: Record<string, number[]>;
  /** ResNet-50 gRPC ÷ HTTP binary requests/s: the median of its rounds' ratios. */
  resnetRatio: number;
  resnetRatioOk: boolean;
  notable: { service: string; line: string }[];
}

interface Target {
  model: 'iris' | 'resnet50';
  clients: number;
  warmupS: number;
  durationS: number;
  json: string;
  binary: { body: Buffer; headerLength: number };
  grpc: GrpcLoadSpec['request'];
}

function targets(opts: BenchOptions, pixels: Float32Array): Target[] {
  const irisHeader = Buffer.from(
    '{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}],"parameters":{"binary_data_output":true}}',
  );
  const resnet = v2BinaryBody(pixels);
  return [
    {
      model: 'iris',
      clients: 128,
      warmupS: opts.iris.warmupS,
      durationS: opts.iris.durationS,
      json: JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: IRIS_ROW }] }),
      binary: { body: Buffer.concat([irisHeader, Buffer.from(new Float32Array(IRIS_ROW).buffer)]), headerLength: irisHeader.length },
      grpc: {
        model_name: 'iris',
        inputs: [{ name: 'input', datatype: 'FP32', shape: ['1', '4'] }],
        raw_input_contents: [Buffer.from(new Float32Array(IRIS_ROW).buffer).toString('base64')],
      },
    },
    {
      model: 'resnet50',
      clients: opts.resnet.clients,
      warmupS: opts.resnet.warmupS,
      durationS: opts.resnet.durationS,
      json: v2JsonBody(pixels),
      binary: resnet,
      grpc: {
        model_name: 'resnet50',
        inputs: [{ name: 'input', datatype: 'FP32', shape: ['1', '3', '224', '224'] }],
        raw_input_contents: [Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength).toString('base64')],
      },
    },
  ];
}

/** The outputs of one gRPC call, as bytes by name. */
async function grpcOnce(address: string, request: GrpcLoadSpec['request']): Promise<Map<string, Buffer>> {
  const def = protoLoader.loadSync(PROTO, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  const Service = (grpc.loadPackageDefinition(def) as any).inference.GRPCInferenceService as typeof grpc.Client;
  const client = new Service(address, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': -1 }) as grpc.Client & {
    ModelInfer: (req: unknown, cb: (err: Error | null, r: unknown) => void) => void;
  };
  try {
    const res = await new Promise<any>((resolve, reject) =>
      client.ModelInfer({ ...request, raw_input_contents: request.raw_input_contents.map((b) => Buffer.from(b, 'base64')) }, (err: Error | null, r: unknown) =>
        err ? reject(err) : resolve(r),
      ),
    );
    return new Map(res.outputs.map((o: { name: string }, i: number) => [o.name, Buffer.from(res.raw_output_contents[i])]));
  } finally {
    client.close();
  }
}

/** The outputs of one HTTP binary request, as bytes by name. */
async function httpBinaryOnce(url: string, binary: Target['binary']): Promise<Map<string, Buffer>> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(binary.headerLength) },
    body: new Uint8Array(binary.body),
  });
  const raw = Buffer.from(await res.arrayBuffer());
  if (res.status !== 200) throw new Error(`HTTP binary answered ${res.status}: ${raw.toString('utf8', 0, 300)}`);
  const hl = Number(res.headers.get('inference-header-content-length'));
  const head = JSON.parse(raw.toString('utf8', 0, hl)) as { outputs: { name: string; parameters: { binary_data_size: number } }[] };
  const out = new Map<string, Buffer>();
  let at = hl;
  for (const o of head.outputs) {
    out.set(o.name, raw.subarray(at, at + o.parameters.binary_data_size));
    at += o.parameters.binary_data_size;
  }
  return out;
}

export async function runGrpc(opts: BenchOptions, log: (line: string) => void): Promise<GrpcResult> {
  const model = await ensureResnet50(CACHE_DIR);
  const { pixels } = imageBody();
  log(`starting a cluster with ${opts.modelhosts} modelhosts, gRPC on, and ResNet-50 preloaded (batching up to ${opts.resnet.maxBatchSize}) …`);
  const bc = await startBenchCluster({
    modelhosts: opts.modelhosts,
    grpc: true,
    models: [
      {
        name: 'resnet50',
        file: model.file,
        description: 'ResNet-50 with random weights (bench)',
        config: { preload: true, batching: { max_batch_size: opts.resnet.maxBatchSize } },
      },
    ],
  });
  try {
    const address = bc.cluster.grpcAddress;
    if (!address) throw new Error('the cluster does not serve gRPC');
    const all = targets(opts, pixels);
    for (const t of all) {
      const viaHttp = await httpBinaryOnce(`${bc.url}/v2/models/${t.model}/infer`, t.binary);
      const viaGrpc = await grpcOnce(address, t.grpc);
      for (const [name, bytes] of viaHttp) if (!viaGrpc.get(name)?.equals(bytes)) throw new Error(`${t.model}: gRPC output ${name} differs from HTTP binary`);
      log(
        `${t.model}: gRPC answers the bytes HTTP binary answers (${[...viaHttp.keys()].join(', ')}); bodies: JSON ${(t.json.length / 1e3).toFixed(1)} kB, binary ${(t.binary.body.length / 1e3).toFixed(1)} kB`,
      );
    }
    const points: WayPoint[] = [];
    const roundRatios: Record<string, number[]> = {};
    for (const t of all) {
      const url = `${bc.url}/v2/models/${t.model}/infer`;
      const base = { connections: t.clients, warmupS: t.warmupS, durationS: t.durationS, timeoutS: 60 };
      const ways: Record<Way, () => Promise<{ load: LoadResult; cpu?: CpuBill }>> = {
        gRPC: () => measure<GrpcLoadSpec>({ ...base, address, proto: PROTO, request: t.grpc }, clusterPids(bc), 'grpc-load-generator.ts'),
        'HTTP binary': () =>
          measure(
            {
              ...base,
              url,
              method: 'POST',
              headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(t.binary.headerLength) },
              body: t.binary.body.toString('base64'),
              bodyEncoding: 'base64' as const,
            },
            clusterPids(bc),
          ),
        'HTTP JSON': () => measure({ ...base, url, method: 'POST', headers: { 'content-type': 'application/json' }, body: t.json }, clusterPids(bc)),
      };
      // gRPC and HTTP binary alternate over the rounds (the best of each counts): two for iris, three for
      // ResNet-50, whose figures swing most with what else the machine runs.
      const rounds = opts.quick ? 1 : t.model === 'resnet50' ? 3 : 2;
      const best = new Map<Way, WayPoint>();
      const order: Way[] = [];
      for (let r = 0; r < rounds; r++) order.push(...(r % 2 === 0 ? (['HTTP binary', 'gRPC'] as Way[]) : (['gRPC', 'HTTP binary'] as Way[])));
      order.push('HTTP JSON');
      const round: Partial<Record<Way, number>> = {};
      roundRatios[t.model] = [];
      for (const way of order) {
        const m = await ways[way]();
        round[way] = m.load.rps;
        if (round.gRPC !== undefined && round['HTTP binary'] !== undefined) {
          roundRatios[t.model]!.push(round.gRPC / round['HTTP binary']);
          delete round.gRPC;
          delete round['HTTP binary'];
        }
        const l = m.load;
        log(
          `  ${t.model} ${String(t.clients).padStart(3)} clients, ${way.padEnd(11)}: ${fmtRps(l.rps)} req/s, p50 ${fmtMs(l.p50)} ms, p99 ${fmtMs(l.p99)} ms, errors ${l.errors}` +
            (m.cpu
              ? `; CPU ms/req: server ${(m.cpu.serverUsPerRequest / 1000).toFixed(2)} (Inferrer ${((m.cpu.perRequestUs.inferrer ?? 0) / 1000).toFixed(2)}), load generator ${(m.cpu.generatorUsPerRequest / 1000).toFixed(2)}; other processes ${m.cpu.otherCores.toFixed(2)} cores`
              : ''),
        );
        const seen = best.get(way);
        const point: WayPoint = { model: t.model, way, clients: t.clients, load: l, ...(m.cpu ? { cpu: m.cpu } : {}), rounds: (seen?.rounds ?? 0) + 1 };
        if (!seen || l.rps > seen.load.rps) best.set(way, point);
        else seen.rounds = point.rounds;
      }
      points.push(...(['gRPC', 'HTTP binary', 'HTTP JSON'] as Way[]).map((w) => best.get(w)!));
    }
    const resnetRatio = median(roundRatios.resnet50 ?? []);
    return {
      balancer: bc.cluster.balancer.description,
      modelhosts: opts.modelhosts,
      points,
      roundRatios,
      resnetRatio,
      resnetRatioOk: resnetRatio >= 0.9,
      notable: bc.notable,
    };
  } finally {
    await bc.stop();
  }
}

export function grpcTable(r: GrpcResult): string {
  const rows = r.points.map((p) => {
    const ref = r.points.find((q) => q.model === p.model && q.way === 'HTTP binary')!;
    return [
      p.model,
      p.clients,
      p.way,
      fmtRps(p.load.rps),
      fmt(p.load.rps / ref.load.rps, 2),
      fmtMs(p.load.p50),
      fmtMs(p.load.p99),
      p.load.errors,
      p.cpu ? (p.cpu.serverUsPerRequest / 1000).toFixed(2) : '-',
      p.cpu ? ((p.cpu.perRequestUs.inferrer ?? 0) / 1000).toFixed(2) : '-',
      p.cpu ? (p.cpu.generatorUsPerRequest / 1000).toFixed(2) : '-',
      p.rounds > 1 ? `best of ${p.rounds}` : '',
    ];
  });
  return table(['model', 'clients', 'way in', 'req/s', '÷ HTTP binary', 'p50 ms', 'p99 ms', 'errors', 'CPU ms/req: server', 'Inferrer', 'load gen', ''], rows, [
    'l',
    'r',
    'l',
    'r',
    'r',
    'r',
    'r',
    'r',
    'r',
    'r',
    'r',
    'l',
  ]);
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
