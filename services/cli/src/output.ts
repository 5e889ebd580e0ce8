/**
 * What the CLI prints: tables and aligned fields for people (cli-table3, borderless), JSON for scripts
 * (`--json`), progress on standard error so that standard output stays what a script reads.
 */
import Table from 'cli-table3';

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  /** `--json`: print what the server answered (or a JSON summary), no tables. */
  json: boolean;
  /** Standard error is a terminal: progress bars redraw one line. */
  tty: boolean;
}

export function processIo(json: boolean): Io {
  return {
    out: (text) => void process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
    err: (text) => void process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
    json,
    tty: process.stderr.isTTY === true,
  };
}

const BORDERLESS = {
  top: '',
  'top-mid': '',
  'top-left': '',
  'top-right': '',
  bottom: '',
  'bottom-mid': '',
  'bottom-left': '',
  'bottom-right': '',
  left: '',
  'left-mid': '',
  mid: '',
  'mid-mid': '',
  right: '',
  'right-mid': '',
  middle: '  ',
};

/** Columns under a header row, as `kubectl get` prints them. */
export function table(head: string[], rows: unknown[][]): string {
  const t = new Table({ head: head.map((h) => h.toUpperCase()), chars: BORDERLESS, style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 } });
  for (const r of rows) t.push(r.map(cell));
  return t
    .toString()
    .split('\n')
    .map((l) => l.trimEnd())
    .join('\n');
}

/** `name  value` lines, names aligned. */
export function fields(pairs: [string, unknown][]): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${k.padEnd(width)}  ${cell(v)}`).join('\n');
}

export function cell(v: unknown): string {
  if (v === undefined || v === null || v === '') return '-';
  if (typeof v === 'number') return num(v);
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) return `[${v.map(cell).join(', ')}]`;
  return JSON.stringify(v);
}

/** Integers as they are; other numbers with 5 significant digits (0.99995, 7.7502e-11). */
export function num(x: number): string {
  if (Number.isInteger(x) || !Number.isFinite(x)) return String(x);
  return String(Number(x.toPrecision(5)));
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  do {
    v /= 1024;
    u++;
  } while (v >= 1024 && u < units.length - 1);
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

export function seconds(s: number): string {
  if (s < 60) return `${Math.ceil(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.ceil(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.ceil((s % 3600) / 60)} min`;
}

export function json(value: unknown): string {
  return JSON.stringify(value, null, 2);
}
