/** Command-line options of `pnpm bench`. */
import type { ManyModelsOptions } from './many-models.ts';

export type Part = 'iris' | 'resnet' | 'images' | 'drift' | 'overload' | 'cache' | 'grpc' | 'deadline' | 'many-models' | 'cancel';
const PARTS: readonly Part[] = ['iris', 'resnet', 'images', 'drift', 'overload', 'cache', 'grpc', 'deadline', 'many-models', 'cancel'];

export interface BenchOptions {
  parts: Part[];
  quick: boolean;
  modelhosts: number;
  iris: { clients: number[]; warmupS: number; durationS: number };
  resnet: {
    clients: number;
    /** The second concurrency of the v2 binary run, for fairness (p99 ÷ p50 under a deeper queue). */
    fairnessClients: number;
    warmupS: number;
    durationS: number;
    /** In-process sweep: seconds measured per setting. */
    sweepS: number;
    batches: number[];
    /** [worker-thread slots, intra-op threads] pairs. */
    settings: [number, number][];
    /** max_batch_size of the "batching on" run. */
    maxBatchSize: number;
  };
  manyModels: ManyModelsOptions;
  write: boolean;
}

export const USAGE = `pnpm bench [-- options]

  --quick            shorter windows (about a third of the time); figures are noisier
  --only iris|resnet|images|drift|overload|cache|grpc|deadline|many-models|cancel  run one part only (repeatable)
  --duration S       measured seconds per load point (overrides the default of every part)
  --modelhosts N     modelhosts in the cluster (default 2; many-models: 4)
  --budget-share F   many-models: the share of the models one worker's memory budget holds (default 0.1;
                     1 holds them all: no evictions, what the path costs without loads)
  --own-sessions     many-models: upload the models without config shared_graph, so each loaded model has an
                     ONNX Runtime session of its own (by default they share one per MLP size and worker)
  --no-write         do not write bench/results/latest.json
  --help             this text
`;

export function parseOptions(argv: string[]): BenchOptions {
  const args = argv.filter((a) => a !== '--');
  const only: Part[] = [];
  let quick = false;
  let duration: number | undefined;
  let modelhosts: number | undefined;
  let budgetShare = 0.1;
  let sharedGraph = true;
  let write = true;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = (): string => {
      const v = args[++i];
      if (v === undefined) throw new Error(`${a} needs a value\n\n${USAGE}`);
      return v;
    };
    if (a === '--quick') quick = true;
    else if (a === '--only') {
      const v = value();
      if (!PARTS.includes(v as Part)) throw new Error(`--only takes ${PARTS.join(', ')}, not ${v}`);
      only.push(v as Part);
    } else if (a.startsWith('--only=')) {
      const v = a.slice(7);
      if (!PARTS.includes(v as Part)) throw new Error(`--only takes ${PARTS.join(', ')}, not ${v}`);
      only.push(v as Part);
    } else if (a === '--duration') duration = positive(a, value());
    else if (a === '--modelhosts') modelhosts = Math.round(positive(a, value()));
    else if (a === '--budget-share') {
      budgetShare = positive(a, value());
      if (budgetShare > 1) throw new Error('--budget-share is a share of the models, more than 0 and at most 1 (1: every model fits)');
    } else if (a === '--own-sessions') sharedGraph = false;
    else if (a === '--no-write') write = false;
    else if (a === '--help' || a === '-h') {
      process.stdout.write(USAGE);
      process.exit(0);
    } else throw new Error(`unknown option ${a}\n\n${USAGE}`);
  }
  return {
    parts: only.length ? [...new Set(only)] : ['iris', 'resnet', 'images', 'overload', 'grpc'],
    quick,
    modelhosts: modelhosts ?? 2,
    manyModels: {
      models: 1000,
      budgetShare,
      sharedGraph,
      modelhosts: modelhosts ?? 4,
      clients: 64,
      zipf: 1.1,
      warmupS: quick ? 5 : 10,
      durationS: duration ?? (quick ? 20 : 60),
      singleS: quick ? 8 : 20,
    },
    iris: { clients: [1, 32, 128], warmupS: quick ? 1 : 2, durationS: duration ?? (quick ? 2.5 : 6) },
    resnet: {
      clients: 16,
      fairnessClients: 64,
      warmupS: quick ? 2 : 4,
      durationS: duration ?? (quick ? 5 : 12),
      sweepS: quick ? 1.5 : 3.5,
      batches: [1, 4, 8],
      settings: [
        [1, 1],
        [1, 2],
        [2, 1],
      ],
      maxBatchSize: 8,
    },
    write,
  };
}

function positive(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} takes a positive number, not ${v}`);
  return n;
}
