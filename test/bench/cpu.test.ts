import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import { CpuWindow } from '../../bench/lib/measure.ts';

// A child that keeps its main thread busy for `ms` and one worker thread busy for `workerMs`, then exits
// after it says it is done (so that its /proc entries are still there when the window closes).
const BUSY = `
const { Worker } = require('node:worker_threads');
const spin = (ms) => { const end = Date.now() + ms; while (Date.now() < end); };
const w = new Worker('const end = Date.now() + Number(process.argv[2]); while (Date.now() < end);', { eval: true, argv: [process.argv[2]] });
w.on('exit', () => { spin(Number(process.argv[1])); process.stdout.write('done'); setTimeout(() => {}, 60_000); });
`;

describe('bench CPU bill', { skip: process.platform !== 'linux' && 'reads /proc' }, () => {
  test("a window bills a process tree's CPU per answer, and its main thread's share apart", async () => {
    const child = spawn(process.execPath, ['-e', BUSY, '600', '400'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const window = new CpuWindow({ busy: child.pid });
      window.open();
      await once(child.stdout!, 'data');
      window.close();
      const bill = window.bill(2, 0.1, 1);
      assert.ok(bill, 'a bill on Linux');
      // About 1 s of CPU (0.4 s on a worker thread, then 0.6 s on the main thread) over 2 answers. Loops
      // timed by the clock use less CPU where a loaded machine deschedules them: only lower bounds hold.
      const all = bill.perRequestUs.busy!;
      const main = bill.mainThreadUs.busy!;
      assert.ok(all >= 250_000, `all threads: ${all} µs per answer`);
      assert.ok(main >= 150_000, `main thread: ${main} µs per answer`);
      assert.ok(all - main >= 50_000, `the worker thread's CPU is counted with the process but not as its main thread's (all ${all}, main ${main})`);
      assert.equal(bill.serverUsPerRequest, all);
      assert.equal(bill.generatorUsPerRequest, 50_000);
      assert.equal(window.bill(0, 0, 1), undefined, 'no answers: no bill');
    } finally {
      child.kill();
    }
  });
});
