import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { test } from 'node:test';
import { closeSignal } from '../src/protocol/inference.ts';

test("a connection's close signal takes a listener per group member without node's MaxListenersExceededWarning, and fires when the connection closes unanswered", async () => {
  const warnings: Error[] = [];
  const onWarning = (w: Error): void => void warnings.push(w);
  process.on('warning', onWarning);
  try {
    const res = Object.assign(new EventEmitter(), { writableFinished: false }) as unknown as ServerResponse;
    const signal = closeSignal(res);
    let fired = 0;
    for (let i = 0; i < 64; i++) signal.addEventListener('abort', () => fired++, { once: true });
    res.emit('close');
    // Warnings are emitted on the next tick.
    await new Promise((r) => setImmediate(r));
    assert.equal(fired, 64);
    assert.deepEqual(
      warnings.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message),
      [],
    );
  } finally {
    process.off('warning', onWarning);
  }
});
