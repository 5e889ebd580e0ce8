/**
 * A reader for the Prometheus text exposition format (what prom-client and every exporter serve): one
 * sample per line, `name{label="value",…} value [timestamp]`; # HELP / # TYPE lines are skipped.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const ESCAPES: Record<string, string> = { '\\': '\\', '"': '"', n: '\n' };

/**
 * The samples of `text`; with `keep`, only those of the metric names it keeps (the other lines' labels and
 * values are not read: a worker of many models serves tens of thousands of lines, most of them not wanted).
 */
export function parsePromText(text: string, keep?: (name: string) => boolean): Sample[] {
  const out: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const s = parseLine(line, keep);
    if (s) out.push(s);
  }
  return out;
}

/** Whether a character code can be part of a metric name: [A-Za-z0-9_:]. */
function nameChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 58) || c === 95;
}

function parseLine(line: string, keep: ((name: string) => boolean) | undefined): Sample | undefined {
  let i = 0;
  while (i < line.length && nameChar(line.charCodeAt(i))) i++;
  const name = line.slice(0, i);
  if (!name || (keep !== undefined && !keep(name))) return undefined;
  const labels: Record<string, string> = {};
  if (line[i] === '{') {
    i++;
    for (;;) {
      while (line[i] === ' ' || line[i] === ',') i++;
      if (line[i] === '}') {
        i++;
        break;
      }
      const eq = line.indexOf('=', i);
      if (eq < 0 || line[eq + 1] !== '"') return undefined;
      const key = line.slice(i, eq).trim();
      let value = '';
      let j = eq + 2;
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === '\\' && j + 1 < line.length) value += ESCAPES[line[++j]!] ?? line[j];
        else value += line[j];
      }
      if (j >= line.length) return undefined;
      labels[key] = value;
      i = j + 1;
    }
  }
  const rest = line.slice(i).trim().split(/\s+/);
  const value = parseValue(rest[0] ?? '');
  return value === undefined ? undefined : { name, labels, value };
}

function parseValue(v: string): number | undefined {
  if (v === '+Inf' || v === 'Inf') return Infinity;
  if (v === '-Inf') return -Infinity;
  if (v === 'NaN') return NaN;
  const n = Number(v);
  return v !== '' && !Number.isNaN(n) ? n : undefined;
}
