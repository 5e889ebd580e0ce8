/**
 * Counters and histograms labelled by model, kept and written out in Prometheus' text format here instead
 * of by prom-client, which keeps the modelhost's other metrics.
 *
 * Why: a worker that serves many models holds a label set per model in each of these families (about 90
 * lines of exposition per model, most of them histogram buckets), and prom-client formats every line anew
 * on each scrape, in one synchronous stretch of the event loop: for 400 models (36,600 lines, 3.4 MB) about
 * 100 ms on a 2-core machine (46 to 170 ms for 250), during which every request on the worker waits; the
 * metrics service scrapes every 5 s, Prometheus on top. Here each series keeps its label text, written once
 * when the series is created, and its numbers in a Float64Array: a scrape only joins numbers to that text,
 * and the families are written a few at a time with the event loop let go between them
 * (test/model-series.test.ts checks the text against prom-client's for the same observations).
 */
import { setImmediate as nextTurn } from 'node:timers/promises';

type Labels<L extends string> = Record<L, string>;

interface Series<L extends string> {
  labels: Labels<L>;
  /** `model="m",version="1",service="modelhost"`: the series' labels (in labelNames order), then the default labels. */
  text: string;
  /** A counter: [value]. A histogram: the count of each bucket on its own (not cumulative), then sum, then count. */
  values: Float64Array;
}

export interface FamilyOptions<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
}

/** A label value as the text format writes it: backslash, newline and double quote escaped. */
function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** A sample's value as Prometheus reads it (integers without a fraction, infinities as ±Inf). */
function number(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(v);
}

abstract class Family<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  protected readonly series = new Map<string, Series<L>>();
  readonly #defaults: string;
  readonly #width: number;

  constructor(opts: FamilyOptions<L>, defaults: string, width: number) {
    this.name = opts.name;
    this.help = opts.help;
    this.labelNames = opts.labelNames;
    this.#defaults = defaults;
    this.#width = width;
  }

  abstract readonly type: 'counter' | 'histogram';

  #key(labels: Labels<L>): string {
    let key = '';
    for (const n of this.labelNames) {
      const v = labels[n];
      if (typeof v !== 'string') throw new TypeError(`${this.name}: label ${n} must be a string (got ${typeof v})`);
      key += `${v}\u0000`;
    }
    return key;
  }

  protected entry(labels: Labels<L>): Series<L> {
    const key = this.#key(labels);
    let s = this.series.get(key);
    if (s === undefined) {
      const own = this.labelNames.map((n) => `${n}="${escapeLabel(labels[n])}"`);
      if (this.#defaults !== '') own.push(this.#defaults);
      const kept = {} as Labels<L>;
      for (const n of this.labelNames) kept[n] = labels[n];
      s = { labels: kept, text: own.join(','), values: new Float64Array(this.#width) };
      this.series.set(key, s);
    }
    return s;
  }

  /** Forgets the series with exactly these labels. */
  remove(labels: Labels<L>): void {
    this.series.delete(this.#key(labels));
  }

  /** The label sets of every series. */
  labelSets(): Labels<L>[] {
    return [...this.series.values()].map((s) => s.labels);
  }

  /** Appends the family's lines (help, type, samples) to `out`. */
  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`);
    for (const s of this.series.values()) this.lines(s, out);
  }

  protected abstract lines(s: Series<L>, out: string[]): void;
}

export class ModelCounter<L extends string> extends Family<L> {
  readonly type = 'counter';

  constructor(opts: FamilyOptions<L>, defaults: string) {
    super(opts, defaults, 1);
  }

  inc(labels: Labels<L>, value = 1): void {
    if (!Number.isFinite(value) || value < 0) throw new TypeError(`${this.name}: a counter goes up by a finite amount ≥ 0 (got ${value})`);
    this.entry(labels).values[0]! += value;
  }

  protected lines(s: Series<L>, out: string[]): void {
    out.push(`${this.name}{${s.text}} ${number(s.values[0]!)}`);
  }
}

export class ModelHistogram<L extends string> extends Family<L> {
  readonly type = 'histogram';
  readonly #bounds: readonly number[];
  /** `le="0.005"` for each bound, then `le="+Inf"`. */
  readonly #le: string[];

  constructor(opts: FamilyOptions<L> & { buckets: readonly number[] }, defaults: string) {
    super(opts, defaults, opts.buckets.length + 2);
    this.#bounds = [...opts.buckets].sort((a, b) => a - b);
    this.#le = [...this.#bounds.map((b) => `le="${number(b)}"`), 'le="+Inf"'];
  }

  observe(labels: Labels<L>, value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`${this.name}: not a finite number: ${value}`);
    const v = this.entry(labels).values;
    const n = this.#bounds.length;
    // The first bucket whose bound holds the value; above every bound only the count (+Inf) has it.
    let i = 0;
    while (i < n && value > this.#bounds[i]!) i++;
    if (i < n) v[i]!++;
    v[n]! += value;
    v[n + 1]!++;
  }

  protected lines(s: Series<L>, out: string[]): void {
    const v = s.values;
    const n = this.#bounds.length;
    let acc = 0;
    for (let i = 0; i < n; i++) {
      acc += v[i]!;
      out.push(`${this.name}_bucket{${this.#le[i]},${s.text}} ${acc}`);
    }
    out.push(`${this.name}_bucket{${this.#le[n]},${s.text}} ${number(v[n + 1]!)}`);
    out.push(`${this.name}_sum{${s.text}} ${number(v[n]!)}`);
    out.push(`${this.name}_count{${s.text}} ${number(v[n + 1]!)}`);
  }
}

/** Families written this many at a time, the event loop let go between them (a histogram of 400 models: 2 to 3 ms). */
const FAMILIES_PER_TURN = 1;

/** The per-model families of one registry, with the registry's default labels on every series. */
export class ModelSeries {
  readonly #families: Family<string>[] = [];
  readonly #defaults: string;

  constructor(defaultLabels: Record<string, string>) {
    this.#defaults = Object.entries(defaultLabels)
      .map(([n, v]) => `${n}="${escapeLabel(v)}"`)
      .join(',');
  }

  counter<L extends string>(opts: FamilyOptions<L>): ModelCounter<L> {
    const c = new ModelCounter(opts, this.#defaults);
    this.#families.push(c as unknown as Family<string>);
    return c;
  }

  histogram<L extends string>(opts: FamilyOptions<L> & { buckets: readonly number[] }): ModelHistogram<L> {
    const h = new ModelHistogram(opts, this.#defaults);
    this.#families.push(h as unknown as Family<string>);
    return h;
  }

  /** Every family's lines in the text format, a family and its samples per block, blocks separated by a blank line. */
  async render(): Promise<string> {
    const blocks: string[] = [];
    for (let i = 0; i < this.#families.length; i++) {
      if (i > 0 && i % FAMILIES_PER_TURN === 0) await nextTurn();
      const out: string[] = [];
      this.#families[i]!.render(out);
      blocks.push(out.join('\n'));
    }
    return blocks.join('\n\n');
  }
}
