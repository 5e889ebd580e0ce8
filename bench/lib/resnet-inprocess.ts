/**
 * The ResNet-50 ceiling: onnxruntime-node in this process, no HTTP and no JSON, with execution slots on
 * worker threads as the modelhost runs them (bench/lib/inprocess-worker.mjs). Every slot runs batches
 * back to back for a fixed window; images/s = images finished ÷ (last finish − start).
 */
import { Worker } from 'node:worker_threads';
import { machineBusySeconds } from './cpu.ts';

const WORKER_URL = new URL('./inprocess-worker.mjs', import.meta.url);

export interface SweepPoint {
  slots: number;
  intraOpThreads: number;
  batch: number;
  imagesPerS: number;
  /** Median time of one run of `batch` images in one slot, ms. */
  runMsP50: number;
  runs: number;
  /** Cores busy with other processes during the window (noise); NaN off Linux. */
  otherCores: number;
}

type Msg = { type: 'ready' | 'warm' | 'failed'; message?: string } | { type: 'done'; images: number; runs: number; finishedAt: number; runMs: number[] };

function next(worker: Worker): Promise<Msg> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: Msg): void => {
      worker.off('error', onError);
      if (m.type === 'failed') reject(new Error(`in-process slot failed: ${m.message}`));
      else resolve(m);
    };
    const onError = (err: Error): void => {
      worker.off('message', onMessage);
      reject(err);
    };
    worker.once('message', onMessage);
    worker.once('error', onError);
  });
}

export async function sweepInProcess(
  file: string,
  settings: [number, number][],
  batches: number[],
  seconds: number,
  log: (line: string) => void,
): Promise<SweepPoint[]> {
  const points: SweepPoint[] = [];
  for (const [slots, intraOpThreads] of settings) {
    const workers = Array.from({ length: slots }, () => new Worker(WORKER_URL, { workerData: { file, intraOpThreads } }));
    try {
      await Promise.all(workers.map(next));
      for (const batch of batches) {
        const warm = workers.map(next);
        for (const w of workers) w.postMessage({ type: 'warm', batch, runs: 1 });
        await Promise.all(warm);
        const start = Date.now();
        const busy0 = machineBusySeconds();
        const cpu0 = process.cpuUsage();
        const done = workers.map(next);
        for (const w of workers) w.postMessage({ type: 'go', until: start + seconds * 1000 });
        const results = (await Promise.all(done)) as Extract<Msg, { type: 'done' }>[];
        const images = results.reduce((s, r) => s + r.images, 0);
        const elapsed = (Math.max(...results.map((r) => r.finishedAt)) - start) / 1000;
        const cpu = process.cpuUsage(cpu0);
        const busy1 = machineBusySeconds();
        const otherCores = busy0 === undefined || busy1 === undefined ? NaN : Math.max(0, (busy1 - busy0 - (cpu.user + cpu.system) / 1e6) / elapsed);
        const runMs = results.flatMap((r) => r.runMs).sort((a, b) => a - b);
        const p: SweepPoint = {
          slots,
          intraOpThreads,
          batch,
          imagesPerS: images / elapsed,
          runMsP50: runMs[Math.floor(runMs.length / 2)]!,
          runs: runMs.length,
          otherCores,
        };
        points.push(p);
        log(
          `  in-process ${slots} slot(s) × ${intraOpThreads} intra-op thread(s), batch ${batch}: ${p.imagesPerS.toFixed(1)} images/s (${p.runs} runs, ${p.runMsP50.toFixed(0)} ms each; other processes ${otherCores.toFixed(2)} cores)`,
        );
      }
    } finally {
      await Promise.all(
        workers.map(async (w) => {
          w.postMessage({ type: 'stop' });
          await Promise.race([new Promise((r) => w.once('exit', r)), new Promise((r) => setTimeout(r, 2000))]);
          await w.terminate();
        }),
      );
    }
  }
  return points;
}
