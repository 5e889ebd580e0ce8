/**
 * How a model runs on this worker: execution slots × intra-op threads per slot, and the most rows per
 * batch. A value a setting fixes (the model's config, else the worker's environment) is kept; the rest is
 * chosen at load from runs of the model measured here.
 *
 * Every candidate layout uses the worker's cores (slots × threads = cores: one slot with every core, one
 * single-threaded slot per core, and one in between on larger machines). Each runs batches of 1, 2, 4, …
 * rows on all its slots at once, and the plan is the layout and batch size with the most rows per second.
 * Batching is used only when it pays: a batch size is taken only when it gives BATCH_GAIN more rows per
 * second than single rows, and then the smallest one within BATCH_NEAR of the best. On a CPU a batch of a
 * big convolutional model often costs as much per row as single rows, and then batching only adds a
 * batch's time to some requests' wait; on a GPU, and for small models whose per-run overhead dominates,
 * it pays, and the measurement says so.
 *
 * Single rows and the best batch size are measured a second time, after the others, in alternating rounds
 * of the same work (as many single rows as the batch holds), and the median rounds decide (remeasure).
 * Larger batch sizes are tried only while the time left also holds the rounds that would confirm them;
 * figures the time still ran out before confirming never turn batching on (a neighbour's burst during the
 * single rows' rounds alone has made batches of ResNet-50 look twice as fast here).
 *
 * Measuring is bounded (budgetMs; the best plan so far is taken when it runs out) and skipped, with the
 * defaults used, where the runs could not stand for real ones: an input with a dynamic dimension other
 * than the batch axis, or measuring switched off.
 */
import { type BatchAxis, type ModelSignature, type NamedTensors, type Tensor, datatypeOfOrt, hasDynamicBatchAxis, withBatchAxis } from '@inferrer/core';
import type { CpuBudget } from './cpus.ts';
import { OnnxSession, type SessionConfig } from './onnx-session.ts';

/** Where a value of the plan comes from. */
export type PlanSource = 'model config' | 'worker setting' | 'measured' | 'default';

export interface Fixed {
  value: number;
  source: 'model config' | 'worker setting';
}

export interface PlanRequest {
  file: string;
  /** Session options other than the layout (inter-op threads, optimisation level, providers). */
  session: Omit<SessionConfig, 'instances' | 'intraOpThreads'>;
  fixed: { instances?: Fixed | undefined; intraOpThreads?: Fixed | undefined; maxBatchSize?: Fixed | undefined };
  cpus: CpuBudget;
  /** Largest batch size tried when the batch size is chosen. */
  batchCap: number;
  /** Most slots the worker's memory allows for this model. */
  maxInstances: number;
  /** Measuring stops after this long (the best plan so far is taken); 0: nothing is measured. */
  budgetMs: number;
  /** What is used where nothing is fixed and nothing could be measured. */
  defaults: { instances: number; intraOpThreads: number; maxBatchSize: number };
  /**
   * The plan an earlier load of the same file under the same settings chose on this worker: it is used
   * again without measuring (a model unloaded for room and loaded again does not pay the measurement twice).
   */
  earlier?: ExecutionPlan | undefined;
  /**
   * A model whose single row runs in less than this (ms) is not measured further: per-run overhead is most
   * of its cost, so batches of up to batchCap pay and one single-threaded slot serves it (more threads or
   * slots would mostly wait), while measuring every layout would add most of a second to its load. 0 or
   * absent: every model is measured.
   */
  cheapMs?: number | undefined;
  /** The batch axis the model's config declares (`batching.batch_axis`); absent or `auto`: the graph's dims decide. */
  batchAxis?: BatchAxis | undefined;
  /**
   * A cheap model (cheapMs) whose single row runs in at most `maxRunMs` gets its one slot on the worker's own
   * thread (inline-runtime.ts) unless `refusal` names a reason it may not (its runs could grow with the
   * request's values). Absent: every slot is on a runtime thread.
   */
  inline?: { maxRunMs: number; refusal: () => Promise<string | undefined> } | undefined;
}

export interface Measurement {
  instances: number;
  intraOpThreads: number;
  batch: number;
  /** Wall time of one batch with every slot busy (the quickest round: on a shared machine others only ever add time), ms. */
  msPerBatch: number;
  rowsPerS: number;
  /**
   * The quickest run's own time as the runtime measured it, without the hand-off to its thread and back
   * (which, with every core busy, waits for the thread to be scheduled: milliseconds on the 2-core VMs).
   */
  computeMs?: number;
  /** Measured on the worker's own thread (inline-runtime.ts). */
  inline?: boolean;
}

export interface ExecutionPlan {
  instances: number;
  intraOpThreads: number;
  maxBatchSize: number;
  sources: { instances: PlanSource; intraOpThreads: PlanSource; maxBatchSize: PlanSource };
  cpus: number;
  cpuSource: string;
  /** Every measured point, in the order measured. */
  measured: Measurement[];
  /** Time spent measuring (sessions loaded for candidates included), ms. */
  measureMs: number;
  /** What was chosen and why, in a sentence or two (the model's configuration and the load log line). */
  reason: string;
  /** The slot runs on the worker's own thread (inline-runtime.ts), not a runtime thread. */
  inline: boolean;
}

/** A batch size is used only when it gives at least this much more throughput than single rows. */
export const BATCH_GAIN = 0.1;
/** Of the batch sizes that pay, the smallest within this share of the best throughput is taken. */
export const BATCH_NEAR = 0.05;
/** Measuring a batch size and confirming it cost about this many batches of it (loadPlanned). */
const CONFIRM_BATCHES = 10;
/** Said of a plan used again. */
const EARLIER = ' (measured at an earlier load here)';
/** Layouts within this share of the best are as good: the one with fewer slots (less memory, lower latency) wins. */
const LAYOUT_TIE = 0.03;

interface Layout {
  instances: number;
  intraOpThreads: number;
}

/** Runs the plan's measurements and resolves with the session of the plan chosen (the others are released). */
export async function loadPlanned(req: PlanRequest): Promise<{ session: OnnxSession; plan: ExecutionPlan }> {
  const started = performance.now();
  if (req.earlier) {
    const e = req.earlier;
    // Plans are reused between files of the same structure: whether this file may run inline is its own.
    const refusal = e.inline ? (req.inline ? await req.inline.refusal() : 'running inline is off (INLINE_RUN_MS)') : undefined;
    const inline = e.inline && refusal === undefined;
    const session = await OnnxSession.load(req.file, { ...req.session, instances: e.instances, intraOpThreads: e.intraOpThreads, inline });
    const again = e.reason.endsWith(EARLIER) ? e.reason : `${e.reason}${EARLIER}`;
    const reason = refusal === undefined ? again : `${again}; this file runs on a runtime thread, not the worker's own, because ${refusal}`;
    return { session, plan: { ...e, inline, reason, measureMs: Math.round(performance.now() - started) } };
  }
  const deadline = started + req.budgetMs;
  const { fixed } = req;
  const layouts = candidateLayouts(req);
  const first = await OnnxSession.load(req.file, { ...req.session, ...layouts[0]! });
  const signature = withBatchAxis(first.signature, req.batchAxis);
  const feeds = feedMaker(signature);
  const why =
    req.budgetMs <= 0
      ? 'measuring at load is off'
      : feeds === undefined
        ? 'an input has a dynamic dimension other than the batch axis, so runs here would not stand for real ones'
        : undefined;
  const batchable = hasDynamicBatchAxis(signature);
  if (why !== undefined || (layouts.length === 1 && (fixed.maxBatchSize || !batchable))) {
    const maxBatchSize = !batchable ? 1 : (fixed.maxBatchSize?.value ?? req.defaults.maxBatchSize);
    const reason =
      `${layoutText(layouts[0]!)}, ${maxBatchSize > 1 ? `batches of up to ${maxBatchSize}` : 'no batching'}` +
      (why !== undefined ? ` (not measured: ${why})` : batchable ? ' (as set)' : ' (as set; the model has no batch axis)');
    return { session: first, plan: finish(req, layouts[0]!, maxBatchSize, [], started, reason, 'default') };
  }
  if (req.cheapMs && req.cheapMs > 0) {
    const [probe] = (await measureLayout(first, layouts[0]!, [1], feeds!, deadline)) as [Measurement];
    // Cheap by what the run itself takes: under load the round trip to a runtime thread alone can pass
    // cheapMs, and a model loaded then would be measured on every layout and never run inline.
    const rowMs = Math.min(probe.msPerBatch, probe.computeMs ?? Number.POSITIVE_INFINITY);
    if (rowMs < req.cheapMs) {
      const layout = { instances: fixed.instances?.value ?? 1, intraOpThreads: fixed.intraOpThreads?.value ?? 1 };
      // One slot of one thread may run on the worker's own thread, if the model's runs cannot grow with a request.
      const canInline = req.inline !== undefined && layout.instances === 1 && layout.intraOpThreads === 1;
      const refusal = canInline ? await req.inline!.refusal() : undefined;
      let session = first;
      let inline = false;
      let inlineProbe: Measurement | undefined;
      if (canInline && refusal === undefined) {
        // Measured where it would run: the probe above paid a runtime thread's round trip.
        await first.dispose();
        session = await OnnxSession.load(req.file, { ...req.session, ...layout, inline: true });
        [inlineProbe] = (await measureLayout(session, layout, [1], feeds!, deadline)) as [Measurement];
        inline = inlineProbe.msPerBatch <= req.inline!.maxRunMs;
        if (!inline) {
          await session.dispose();
          session = await OnnxSession.load(req.file, { ...req.session, ...layout });
        }
      } else if (layout.instances !== first.instances || layout.intraOpThreads !== layouts[0]!.intraOpThreads) {
        await first.dispose();
        session = await OnnxSession.load(req.file, { ...req.session, ...layout });
      }
      const maxBatchSize = !batchable ? 1 : (fixed.maxBatchSize?.value ?? Math.max(1, req.batchCap));
      const reason =
        `${layoutText(layout)}, ${maxBatchSize > 1 ? `batches of up to ${maxBatchSize}` : 'no batching'}: a single row runs in ${rowMs} ms here${rowMs < probe.msPerBatch ? ` (${probe.msPerBatch} ms with the hand-off to its runtime thread)` : ''}, under ${req.cheapMs} ms, ` +
        'so per-run overhead is most of its cost (batches pay; more threads or slots would mostly wait) and nothing more is measured' +
        (inlineProbe === undefined
          ? refusal === undefined
            ? ''
            : `; it runs on a runtime thread, not the worker's own, because ${refusal}`
          : inline
            ? `; on the worker's own thread a row runs in ${inlineProbe.msPerBatch} ms, at most ${req.inline!.maxRunMs} ms (INLINE_RUN_MS), so it runs there: handing it to a runtime thread would cost more than the run`
            : `; on the worker's own thread a row runs in ${inlineProbe.msPerBatch} ms, over ${req.inline!.maxRunMs} ms (INLINE_RUN_MS), so it runs on a runtime thread`);
      const measured = inlineProbe ? [probe, { ...inlineProbe, inline: true }] : [probe];
      return { session, plan: finish(req, layout, maxBatchSize, measured, started, reason, 'measured', inline) };
    }
  }
  const measured: Measurement[] = [];
  let best: { layout: Layout; batch: number; rowsPerS: number; session: OnnxSession; unconfirmed: { batch: number; rowsPerS: number } | undefined } | undefined;
  for (let i = 0; i < layouts.length; i++) {
    const layout = layouts[i]!;
    if (i > 0 && performance.now() >= deadline) break;
    const session = i === 0 ? first : await OnnxSession.load(req.file, { ...req.session, ...layout });
    const points: Measurement[] = [];
    const sizes = !batchable ? [1] : fixed.maxBatchSize ? [fixed.maxBatchSize.value] : batchSizes(req.batchCap);
    for (const batch of sizes) {
      if (points.length > 0 && performance.now() >= deadline) break;
      // A size is tried only while the time left also holds the paired rounds that would confirm it
      // (remeasure): measuring it (a warm-up and three rounds) and confirming it (a warm-up and two or three
      // rounds of as many single rows and one batch) cost about ten batches of it, and a batch costs at most
      // its rows as single rows.
      const one = points.find((p) => p.batch === 1);
      if (one && batch > 1 && performance.now() + CONFIRM_BATCHES * batch * one.msPerBatch > deadline) break;
      const [m] = (await measureLayout(session, layout, [batch], feeds!, deadline)) as [Measurement];
      points.push(m);
      measured.push(m);
      // Doubling a costly batch bought (almost) nothing twice in a row: larger ones will not either. Cheap
      // ones are all measured (measuring them costs little).
      const [a, b, c] = points.slice(-3);
      if (c && m.msPerBatch >= 10 && b!.rowsPerS < a!.rowsPerS * 1.03 && c.rowsPerS < b!.rowsPerS * 1.03) break;
    }
    const confirmed = await remeasure(session, layout, points, feeds!, deadline);
    const pick = pickBatch(points, confirmed);
    if (!best || pick.rowsPerS > best.rowsPerS * (1 + LAYOUT_TIE)) {
      if (best) await best.session.dispose();
      best = { layout, batch: pick.batch, rowsPerS: pick.rowsPerS, session, unconfirmed: confirmed ? undefined : pickBatch(points) };
    } else await session.dispose();
  }
  const b = best!;
  const ofChosen = measured.filter((m) => m.instances === b.layout.instances && m.intraOpThreads === b.layout.intraOpThreads);
  const single = ofChosen.find((m) => m.batch === 1);
  const gain = (rowsPerS: number): number => Math.round((single ? rowsPerS / single.rowsPerS - 1 : 0) * 100);
  // A batch size that measured better once, refused since the time ran out before it could be confirmed.
  const refused = b.batch === 1 && b.unconfirmed !== undefined && b.unconfirmed.batch > 1 ? b.unconfirmed : undefined;
  const reason =
    `${layoutText(b.layout)}, ${b.batch > 1 ? `batches of up to ${b.batch}` : 'no batching'}: ${fmtRate(b.rowsPerS)} rows/s measured here` +
    (layouts.length > 1 ? ` (best of ${layouts.map(layoutText).join(' / ')})` : '') +
    (fixed.maxBatchSize || !batchable
      ? ''
      : b.batch > 1
        ? `; batches of ${b.batch} gave ${gain(b.rowsPerS)} % more rows/s than single rows`
        : refused
          ? `; batches of ${refused.batch} gave ${gain(refused.rowsPerS)} % more rows/s than single rows in one measurement, but the time for measuring ` +
            '(PLAN_MEASURE_MS) ran out before paired rounds could confirm it, and a neighbour slowing the single rows can fake any gain: ' +
            'requests run alone (batching.max_batch_size sets batching)'
          : req.batchCap > 1 && !ofChosen.some((m) => m.batch > 1)
            ? `; a row takes ${single?.msPerBatch ?? '?'} ms here, so measuring batches and confirming them would not fit the time for measuring ` +
              '(PLAN_MEASURE_MS): requests run alone (batching.max_batch_size sets batching)'
            : `; batching gave less than ${Math.round(BATCH_GAIN * 100)} % more rows/s than single rows, so requests run alone`);
  return { session: b.session, plan: finish(req, b.layout, b.batch, measured, started, reason, 'measured') };
}

/** Layouts to try: what the settings fix, else every core in one slot, one slot per core, and one between. */
export function candidateLayouts(req: PlanRequest): Layout[] {
  const cpus = Math.max(1, req.cpus.cpus);
  const cap = Math.max(1, req.maxInstances);
  const { instances, intraOpThreads } = req.fixed;
  const measuring = req.budgetMs > 0;
  if (instances && intraOpThreads) return [{ instances: instances.value, intraOpThreads: intraOpThreads.value }];
  if (instances)
    return [{ instances: instances.value, intraOpThreads: measuring ? Math.max(1, Math.floor(cpus / instances.value)) : req.defaults.intraOpThreads }];
  if (intraOpThreads)
    return [
      {
        instances: measuring ? Math.min(cap, Math.max(1, Math.floor(cpus / intraOpThreads.value))) : req.defaults.instances,
        intraOpThreads: intraOpThreads.value,
      },
    ];
  if (!measuring) return [{ instances: Math.min(cap, req.defaults.instances), intraOpThreads: req.defaults.intraOpThreads }];
  // Accelerators run one slot; its CPU threads only feed it.
  if (req.session.executionProviders.some((p) => p !== 'cpu')) return [{ instances: 1, intraOpThreads: 1 }];
  const threads = new Set<number>([cpus, 1]);
  if (cpus >= 4) threads.add(2 ** Math.round(Math.log2(Math.sqrt(cpus))));
  const out: Layout[] = [];
  for (const t of threads) {
    const layout = { instances: Math.min(cap, Math.max(1, Math.floor(cpus / t))), intraOpThreads: t };
    if (!out.some((l) => l.instances === layout.instances && l.intraOpThreads === layout.intraOpThreads)) out.push(layout);
  }
  return out;
}

function batchSizes(cap: number): number[] {
  const out: number[] = [];
  for (let b = 1; b < cap; b *= 2) out.push(b);
  out.push(Math.max(1, cap));
  return out;
}

/**
 * The batch size of one layout's measurements: 1 unless batching pays (BATCH_GAIN) in figures confirmed in
 * paired rounds (remeasure), then the smallest near the best.
 */
export function pickBatch(points: Measurement[], confirmed = true): { batch: number; rowsPerS: number } {
  const single = points.find((p) => p.batch === 1);
  const top = Math.max(...points.map((p) => p.rowsPerS));
  if (single && (!confirmed || top < single.rowsPerS * (1 + BATCH_GAIN))) return { batch: 1, rowsPerS: single.rowsPerS };
  const near = points
    .filter((p) => p.rowsPerS >= top * (1 - BATCH_NEAR) && (!single || p.rowsPerS >= single.rowsPerS * (1 + BATCH_GAIN)))
    .sort((a, b) => a.batch - b.batch)[0]!;
  return { batch: near.batch, rowsPerS: near.rowsPerS };
}

/**
 * On a shared machine a neighbour's burst only ever slows a run, and it can fall on one batch size and
 * not another: the two sizes the choice turns on (single rows and the best so far) are measured once more,
 * after the others, in paired rounds (measureLayout), and these figures decide. Resolves false when the
 * time for measuring ran out before they could be (the once-measured figures then never turn batching
 * on), true otherwise.
 *
 * Each round does the same work at both sizes: `top.batch` single rows one after the other against one
 * batch of `top.batch`. Rounds of unequal length are not comparable by their quickest: of many short rounds
 * one often falls between a neighbour's bursts, of two long ones hardly ever, so single rows would look
 * quicker than they are (measured here: single rows of ResNet-50 on a 1-core slot at 16.2 rows/s by their
 * quickest round, against 14.4 over a 3.5 s run; and batching refused on one worker while its twin,
 * loading beside it, measured 31 % more rows/s from batches). On a machine this noisy (single rows of the
 * same model measured 12.8 to 16.5 rows/s from one load to the next) a choice within about 15 % stays a
 * close call; settings fix it where it matters (`batching.max_batch_size`).
 */
async function remeasure(
  session: OnnxSession,
  layout: Layout,
  points: Measurement[],
  feeds: (rows: number) => NamedTensors,
  deadline: number,
): Promise<boolean> {
  const single = points.find((x) => x.batch === 1);
  const top = points.reduce((a, b) => (b.rowsPerS > a.rowsPerS ? b : a));
  if (!single || single === top) return true;
  if (performance.now() >= deadline) return false;
  const again = await measureLayout(session, layout, [1, top.batch], feeds, deadline, { runs: [top.batch, 1] });
  for (const [p, q] of [
    [single, again[0]!],
    [top, again[1]!],
  ] as const) {
    p.msPerBatch = q.msPerBatch;
    p.rowsPerS = q.rowsPerS;
  }
  return true;
}

/**
 * Rows per second of a layout at each of `batches`: every slot runs a batch at once, a round of each size
 * in turn, after one warm-up round each; each size's quickest round counts.
 *
 * `paired`: the rounds of the sizes do the same work (`runs[k]` batches of size k one after the other on
 * each slot), their order alternates from round to round (so a slow stretch falls on both alike), at least
 * three rounds are run unless the deadline passes, and each size's median round counts: one burst from a
 * neighbour moves a median little, where it can decide which size has the quickest round.
 */
async function measureLayout(
  session: OnnxSession,
  layout: Layout,
  batches: number[],
  feeds: (rows: number) => NamedTensors,
  deadline: number,
  paired?: { runs: number[] },
): Promise<Measurement[]> {
  const templates = batches.map((b) => feeds(b));
  const runs = paired?.runs ?? batches.map(() => 1);
  /** Per size, the quickest run's compute time (the warm-up's left out). */
  const computes = batches.map(() => Number.POSITIVE_INFINITY);
  const round = (k: number, n: number, warmUp = false): Promise<unknown> =>
    Promise.all(
      Array.from({ length: session.instances }, async () => {
        for (let i = 0; i < n; i++) {
          const r = await session.run(copy(templates[k]!));
          if (!warmUp) computes[k] = Math.min(computes[k]!, r.computeMs);
        }
      }),
    );
  for (let k = 0; k < templates.length; k++) await round(k, 1, true);
  const times: number[][] = batches.map(() => []);
  const t0 = performance.now();
  for (let r = 0; ; r++) {
    for (let j = 0; j < templates.length; j++) {
      const k = paired && r % 2 === 1 ? templates.length - 1 - j : j;
      const t = performance.now();
      await round(k, runs[k]!);
      times[k]!.push((performance.now() - t) / runs[k]!);
    }
    const n = times[0]!.length;
    const elapsed = performance.now() - t0;
    const late = performance.now() >= deadline;
    if (paired) {
      if ((n >= 3 && (elapsed >= 30 * batches.length || late)) || (n >= 2 && late) || n >= 5000) break;
      continue;
    }
    // Three rounds and 30 ms a size at least (hundreds of rounds for a small model), or two once past
    // 300 ms a size or the deadline.
    if ((n >= 3 && elapsed >= 30 * batches.length) || (n >= 2 && (elapsed >= 300 * batches.length || late)) || n >= 5000) break;
  }
  return batches.map((batch, k) => {
    const msPerBatch = paired ? median(times[k]!) : Math.min(...times[k]!);
    const computeMs = Number.isFinite(computes[k]!) ? { computeMs: round3(computes[k]!) } : {};
    return { ...layout, batch, msPerBatch: round3(msPerBatch), rowsPerS: round3((session.instances * batch * 1000) / msPerBatch), ...computeMs };
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Inputs of `rows` rows for measuring (random values in [0, 1) for floats, zeros otherwise); undefined when a non-batch dim is dynamic. */
function feedMaker(sig: ModelSignature): ((rows: number) => NamedTensors) | undefined {
  const batched = hasDynamicBatchAxis(sig);
  for (const spec of sig.inputs) {
    const rest = batched ? spec.shape.slice(1) : spec.shape;
    if (!rest.every((d) => typeof d === 'number' && d >= 0)) return undefined;
    if (!datatypeOfOrt(spec.type)) return undefined;
  }
  return (rows) => {
    const out: NamedTensors = {};
    let seed = 1;
    for (const spec of sig.inputs) {
      const rest = (batched ? spec.shape.slice(1) : spec.shape) as number[];
      const dims = batched ? [rows, ...rest] : rest;
      const n = dims.reduce((a, b) => a * b, 1);
      const info = datatypeOfOrt(spec.type)!;
      let data: Tensor['data'];
      if (!info.array) data = new Array<string>(n).fill('');
      else {
        data = new info.array(n);
        if (info.float && info.ort !== 'float16') {
          const f = data as Float32Array;
          for (let i = 0; i < n; i++) {
            seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
            f[i] = seed / 4294967296;
          }
        }
      }
      out[spec.name] = { type: spec.type, dims, data } as Tensor;
    }
    return out;
  };
}

/** A fresh copy of every input (a run moves its buffers to the slot's thread). */
function copy(feeds: NamedTensors): NamedTensors {
  const out: NamedTensors = {};
  for (const name in feeds) {
    const t = feeds[name]!;
    out[name] = { ...t, data: t.data.slice() } as Tensor;
  }
  return out;
}

function finish(
  req: PlanRequest,
  layout: Layout,
  maxBatchSize: number,
  measured: Measurement[],
  started: number,
  reason: string,
  chosen: PlanSource,
  inline = false,
): ExecutionPlan {
  return {
    instances: layout.instances,
    intraOpThreads: layout.intraOpThreads,
    maxBatchSize,
    sources: {
      instances: req.fixed.instances?.source ?? chosen,
      intraOpThreads: req.fixed.intraOpThreads?.source ?? chosen,
      maxBatchSize: req.fixed.maxBatchSize?.source ?? (measured.some((m) => m.batch > 1) ? chosen : 'default'),
    },
    cpus: req.cpus.cpus,
    cpuSource: req.cpus.source,
    measured,
    measureMs: Math.round(performance.now() - started),
    reason,
    inline,
  };
}

function layoutText(l: Layout): string {
  return `${l.instances} slot${l.instances === 1 ? '' : 's'} × ${l.intraOpThreads} thread${l.intraOpThreads === 1 ? '' : 's'}`;
}

function fmtRate(x: number): string {
  return x >= 100 ? String(Math.round(x)) : x.toFixed(1);
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
