// A second reporter for scripts/run-tests.mjs: each test file's time, slowest first, printed after the
// spec reporter's summary. CI has 30 minutes; this is where they go.
import path from 'node:path';

/** @public node --test loads it by its path (--test-reporter). */
export default async function* testTimes(source) {
  const perFile = new Map();
  for await (const event of source) {
    if ((event.type === 'test:pass' || event.type === 'test:fail') && event.data.nesting === 0 && event.data.file) {
      const file = path.relative(process.cwd(), event.data.file);
      perFile.set(file, (perFile.get(file) ?? 0) + (event.data.details?.duration_ms ?? 0));
    }
  }
  const rows = [...perFile].sort((a, b) => b[1] - a[1]);
  const total = rows.reduce((sum, [, ms]) => sum + ms, 0);
  yield `\ntime per test file (${(total / 1000).toFixed(0)} s in all):\n`;
  for (const [file, ms] of rows) yield `${(ms / 1000).toFixed(1).padStart(8)} s  ${file}\n`;
}
