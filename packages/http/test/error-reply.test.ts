import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { InferrerError } from '@inferrer/core';
import { type ErrorBody, type ErrorLog, errorReply, sendError } from '../src/error-reply.ts';

/** A log that keeps its lines. */
function memoryLog(debug = true): ErrorLog & { lines: { level: string; msg: string; meta: Record<string, unknown> }[] } {
  const lines: { level: string; msg: string; meta: Record<string, unknown> }[] = [];
  return {
    lines,
    error: (msg, meta) => lines.push({ level: 'error', msg, meta }),
    debug: (msg, meta) => lines.push({ level: 'debug', msg, meta }),
    isDebugEnabled: () => debug,
  };
}

const plain: ErrorBody = (err) => ({ error: { code: err.code, message: err.message } });

describe('errorReply', () => {
  test('status from the kind, Retry-After where the error has one, the request id echoed, the body in the given shape', () => {
    const log = memoryLog();
    const r = errorReply(
      new InferrerError('MODEL_LOAD_FAILED', 'model iris could not be loaded', {}, { retryAfter: 2 }),
      (e, status) => ({ status, code: e.code }),
      log,
      {
        reqId: 'r1',
        method: 'POST',
        path: '/x',
      },
    );
    assert.equal(r.status, 503);
    assert.deepEqual(r.headers, { 'content-type': 'application/json', 'x-request-id': 'r1', 'retry-after': '2' });
    assert.deepEqual(JSON.parse(r.body), { status: 503, code: 'MODEL_LOAD_FAILED' });
    assert.equal(log.lines.length, 1);
    assert.equal(log.lines[0]!.level, 'error');
    assert.equal(log.lines[0]!.msg, 'request failed');
    assert.ok(log.lines[0]!.meta.err instanceof InferrerError, '5xx are logged with the error itself (stack and cause)');
  });

  test('a 4xx is logged at debug only (the access line has its code), without a stack', () => {
    const quiet = memoryLog(false);
    errorReply(new InferrerError('MODEL_NOT_FOUND', 'model iris not found'), plain, quiet, { reqId: 'r2' });
    assert.deepEqual(quiet.lines, []);
    const log = memoryLog();
    const r = errorReply(new InferrerError('MODEL_NOT_FOUND', 'model iris not found'), plain, log, { reqId: 'r2' });
    assert.equal(r.status, 404);
    assert.equal(r.headers['retry-after'], undefined);
    assert.deepEqual(log.lines, [
      {
        level: 'debug',
        msg: 'request refused',
        meta: {
          reqId: 'r2',
          method: undefined,
          path: undefined,
          status: 404,
          err: { type: 'InferrerError', code: 'MODEL_NOT_FOUND', message: 'model iris not found' },
        },
      },
    ]);
  });

  test('load shed on purpose (a full queue, a passed deadline, a draining worker) is a 5xx logged like a refusal, at debug only', () => {
    for (const [code, status] of [
      ['QUEUE_FULL', 503],
      ['DEADLINE_EXCEEDED', 504],
      ['SERVER_DRAINING', 503],
    ] as const) {
      const quiet = memoryLog(false);
      const r = errorReply(new InferrerError(code, 'shed', {}, { retryAfter: 1 }), plain, quiet, { reqId: 'r5' });
      assert.equal(r.status, status);
      assert.deepEqual(quiet.lines, [], `${code} is not logged at info or above`);
      const log = memoryLog();
      errorReply(new InferrerError(code, 'shed'), plain, log, { reqId: 'r5' });
      assert.equal(log.lines.length, 1);
      assert.equal(log.lines[0]!.level, 'debug');
      assert.equal(log.lines[0]!.msg, 'request refused');
    }
  });

  test('an error with a 4xx status (express middleware) is INVALID_REQUEST; anything unknown is INTERNAL without its message', () => {
    const log = memoryLog();
    const notFound = Object.assign(new Error('Not Found'), { status: 404 });
    assert.deepEqual(JSON.parse(errorReply(notFound, plain, log, { reqId: 'r3' }).body), { error: { code: 'INVALID_REQUEST', message: 'Not Found' } });
    const r = errorReply(new TypeError('x is undefined at /srv/app/file.ts:3'), plain, log, { reqId: 'r4' });
    assert.equal(r.status, 500);
    assert.deepEqual(JSON.parse(r.body), { error: { code: 'INTERNAL', message: 'internal error' } });
  });
});

describe('sendError', () => {
  async function serve(handler: http.RequestListener, run: (port: number) => Promise<void>): Promise<void> {
    const server = http.createServer(handler);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      await run((server.address() as AddressInfo).port);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  }

  test('writes the reply with its length', async () => {
    await serve(
      (_req, res) => sendError(res, new InferrerError('INVALID_INPUT', 'input x: expected 4 values, got 2'), plain, memoryLog(), { reqId: 'abc' }),
      async (port) => {
        const res = await fetch(`http://127.0.0.1:${port}/`);
        assert.equal(res.status, 400);
        assert.equal(res.headers.get('x-request-id'), 'abc');
        const text = await res.text();
        assert.equal(res.headers.get('content-length'), String(Buffer.byteLength(text)));
        assert.deepEqual(JSON.parse(text), { error: { code: 'INVALID_INPUT', message: 'input x: expected 4 values, got 2' } });
      },
    );
  });

  test('an answer already under way is cut: the client sees the connection end, not a second status', async () => {
    await serve(
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"values":[');
        sendError(res, new Error('late failure'), plain, memoryLog(), { reqId: 'late' });
      },
      async (port) => {
        const outcome = await fetch(`http://127.0.0.1:${port}/`).then(
          async (res) => {
            assert.equal(res.status, 200);
            return res.text().then(
              () => 'complete',
              () => 'cut',
            );
          },
          () => 'cut',
        );
        assert.equal(outcome, 'cut');
      },
    );
  });
});
