import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger, sampleAccess } from '../src/logger.ts';

function capture(): { stream: Writable; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  return { stream, lines };
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

test('json lines by default: level, time, msg, service, module and the fields', async () => {
  const { stream, lines } = capture();
  createLogger({ service: 'inferrer', stream }).child({ module: 'access' }).info('request', { reqId: 'r1', status: 200, ms: 1.5 });
  await settle();
  const o = JSON.parse(lines[0]!);
  assert.equal(o.level, 'info');
  assert.equal(o.msg, 'request');
  assert.equal(o.service, 'inferrer');
  assert.equal(o.module, 'access');
  assert.equal(o.status, 200);
  assert.match(o.time, /^\d{4}-\d\d-\d\dT/);
});

test('pretty: one line for people with time, level, module, message and key=value fields; errors by code and message', async () => {
  const { stream, lines } = capture();
  const log = createLogger({ service: 'inferrer', stream, format: 'pretty' }).child({ module: 'access' });
  log.info('request', { reqId: 'r1', status: 200, path: '/api/v1/models/iris/prediction', note: 'two words' });
  log.warn('slow', { err: Object.assign(new Error('model iris not found'), { code: 'MODEL_NOT_FOUND' }) });
  await settle();
  assert.match(lines[0]!, /^\d\d:\d\d:\d\d\.\d{3} \S*INFO\s.* access request reqId=r1 status=200 path=\/api\/v1\/models\/iris\/prediction note="two words"$/);
  assert.doesNotMatch(lines[0]!, /^\{/);
  assert.match(lines[1]!, /WARN.* access slow err=MODEL_NOT_FOUND: model iris not found$/);
});

test('access lines: every error, and successes at the sampled share', () => {
  assert.equal(sampleAccess(500, 0), true);
  assert.equal(sampleAccess(404, 0), true);
  assert.equal(sampleAccess(200, 1), true);
  assert.equal(sampleAccess(200, 0), false);
  let kept = 0;
  for (let i = 0; i < 10_000; i++) if (sampleAccess(200, 0.1)) kept++;
  assert.ok(kept > 800 && kept < 1200, `about a tenth kept (${kept})`);
});
