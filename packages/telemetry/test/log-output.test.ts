/**
 * Batched log output: real child processes writing through the real logger to a real pipe, counting the
 * write system calls with strace where it is installed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';

const TELEMETRY = path.resolve(import.meta.dirname, '..', 'src', 'index.ts');

/** Runs `body` (TypeScript, with `createLogger` imported) in a child node; returns its stdout lines. */
function run(body: string, prefix: string[] = []): { lines: string[]; status: number | null; stderr: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'inferrer-log-'));
  const file = path.join(dir, 'child.mts');
  writeFileSync(file, `import { createLogger } from ${JSON.stringify(TELEMETRY)};\nconst log = createLogger({ service: 'test' });\n${body}\n`);
  const r = spawnSync(prefix[0] ?? process.execPath, [...prefix.slice(1), ...(prefix.length ? [process.execPath] : []), '--import', 'tsx', file], {
    encoding: 'utf8',
    cwd: path.resolve(import.meta.dirname, '..'),
  });
  return { lines: r.stdout.split('\n').filter(Boolean), status: r.status, stderr: r.stderr };
}

describe('batched log output', () => {
  test('every line arrives, whole and in order, when the process ends normally', () => {
    const r = run(`for (let i = 0; i < 5000; i++) log.info('line', { i });`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.lines.length, 5000);
    r.lines.forEach((l, i) => assert.equal(JSON.parse(l).i, i));
  });

  test('lines of the last turn are written before process.exit and before a crash', () => {
    const exit = run(`log.info('before exit', { n: 1 }); log.warn('still buffered', { n: 2 }); process.exit(3);`);
    assert.equal(exit.status, 3);
    assert.deepEqual(
      exit.lines.map((l) => JSON.parse(l).msg),
      ['before exit', 'still buffered'],
    );
    const crash = run(`log.error('about to crash'); setImmediate(() => { log.info('last words'); throw new Error('boom'); });`);
    assert.notEqual(crash.status, 0);
    assert.match(crash.stderr, /boom/);
    assert.deepEqual(
      crash.lines.map((l) => JSON.parse(l).msg),
      ['about to crash', 'last words'],
    );
  });

  test('lines logged in one turn go out in one write, not one write each', (t) => {
    if (spawnSync('strace', ['-V']).status !== 0) return t.skip('strace is not installed');
    const trace = path.join(mkdtempSync(path.join(os.tmpdir(), 'inferrer-strace-')), 'trace.txt');
    const r = run(`for (let i = 0; i < 200; i++) log.info('line', { i });`, ['strace', '-f', '-e', 'trace=write,writev', '-o', trace]);
    assert.equal(r.lines.length, 200, r.stderr);
    const writesToStdout = readFileSync(trace, 'utf8')
      .split('\n')
      .filter((l) => /\b(write|writev)\(1, (\[\{iov_base=)?"\{\\"/.test(l)); // log lines, not esbuild's own pipe
    assert.ok(writesToStdout.length >= 1 && writesToStdout.length <= 2, `${writesToStdout.length} writes for 200 lines`);
  });
});
