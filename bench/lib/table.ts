/** Plain-text tables and number formatting for the bench's output. */
export function table(header: string[], rows: (string | number)[][], align?: ('l' | 'r')[]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string =>
    r
      .map((c, i) => ((align?.[i] ?? (i === 0 ? 'l' : 'r')) === 'l' ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

export function fmt(n: number, digits = 1): string {
  if (!Number.isFinite(n)) return '-';
  return n.toFixed(digits);
}

/**
 * A ratio held against a target, to 2 decimals unless those would round it onto the other side of the
 * target (0.8995 against ≥ 0.90 is shown so, not as 0.90 beside FAIL): then to as many as it takes.
 */
export function fmtRatio(x: number, target: number, atLeast: boolean): string {
  const passes = (v: number): boolean => (atLeast ? v >= target : v <= target);
  for (let digits = 2; digits < 8; digits++) {
    const s = fmt(x, digits);
    if (passes(Number(s)) === passes(x)) return s;
  }
  return fmt(x, 8);
}

export function fmtRps(n: number): string {
  if (!Number.isFinite(n)) return '-';
  return n >= 100 ? Math.round(n).toString() : n.toFixed(1);
}

export function fmtMs(n: number): string {
  if (!Number.isFinite(n)) return '-';
  return n >= 100 ? Math.round(n).toString() : n >= 10 ? n.toFixed(1) : n.toFixed(2);
}

export function verdict(ok: boolean): string {
  return ok ? 'PASS' : 'FAIL';
}
