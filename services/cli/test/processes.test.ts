/**
 * ManagedProcess with real child processes: a crash loop is given up after the restart limit, with the
 * process's last words; exit code 78 (a configuration error) is never restarted; a process that runs is
 * stopped with SIGTERM.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { EXIT_CONFIG } from '@inferrer/telemetry';
import { ManagedProcess, type ProcessFailure } from '../src/processes.ts';

// The restart timers do not hold the event loop open (the launcher's own work does): this does, here.
const keepAlive = setInterval(() => undefined, 1000);
after(() => clearInterval(keepAlive));

function run(script: string, restartLimit: number): { proc: ManagedProcess; lines: string[]; starts: number[]; gaveUp: Promise<ProcessFailure> } {
  const lines: string[] = [];
  const starts: number[] = [];
  const proc = new ManagedProcess(
    { name: 'svc', command: process.execPath, args: ['-e', script], env: process.env, restart: true, restartLimit },
    (name, line) => lines.push(`${name} | ${line}`),
  );
  proc.onStart = (pid) => starts.push(pid);
  const gaveUp = new Promise<ProcessFailure>((resolve) => (proc.onGiveUp = resolve));
  proc.start();
  return { proc, lines, starts, gaveUp };
}

test('a process that keeps crashing is given up after the restart limit, with its last lines of stderr', { timeout: 30_000 }, async () => {
  const { proc, lines, starts, gaveUp } = run('console.error("boom: cannot open the thing"); process.exit(3)', 2);
  const f = await gaveUp;
  assert.equal(f.reason, 'crash-loop');
  assert.equal(f.code, 3);
  assert.equal(f.restarts, 2);
  assert.equal(starts.length, 3, 'started once, restarted twice');
  assert.deepEqual(f.stderr, ['boom: cannot open the thing']);
  assert.ok(
    lines.some((l) => /svc exited \(code 3\) 3 times in a row .* giving up/.test(l)),
    lines.join('\n'),
  );
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(starts.length, 3, 'not started again after giving up');
  assert.equal(proc.pid, undefined);
});

test('exit code 78 is a configuration error: never restarted', { timeout: 30_000 }, async () => {
  const { lines, starts, gaveUp } = run(`console.error("invalid svc configuration:"); console.error("  LOG_LEVEL: bad"); process.exit(${EXIT_CONFIG})`, 5);
  const f = await gaveUp;
  assert.equal(f.reason, 'config');
  assert.equal(f.code, EXIT_CONFIG);
  assert.deepEqual(f.stderr, ['invalid svc configuration:', '  LOG_LEVEL: bad']);
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(starts.length, 1);
  assert.ok(!lines.some((l) => l.includes('restarting in')), lines.join('\n'));
});

test('stop: SIGTERM; a process that ignores it is killed after the grace period', { timeout: 30_000 }, async () => {
  const polite = run('process.on("SIGTERM", () => process.exit(0)); setInterval(() => {}, 1000); console.log("up")', 5);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(await polite.proc.stop(5000), 'stopped');
  const stubborn = run('process.on("SIGTERM", () => {}); setInterval(() => {}, 1000)', 5);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(await stubborn.proc.stop(300), 'killed');
  assert.equal(await stubborn.proc.stop(300), 'not running');
});
