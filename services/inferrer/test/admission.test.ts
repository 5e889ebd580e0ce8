/**
 * Edge admission (admission.ts): the limit is learned from the modelhosts' QUEUE_FULL refusals, follows
 * the capacity back up with each result, and is forgotten when the model has nothing in flight.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InferrerError } from '@inferrer/core';
import { Admission } from '../src/admission.ts';

/** A modelhost's QUEUE_FULL for a full queue (its count limit). */
function full(retryAfter = 1): InferrerError {
  return new InferrerError('QUEUE_FULL', 'the queue for this model is full', { limit: 16 }, { retryAfter });
}
const timedOut = new InferrerError('DEADLINE_EXCEEDED', 'late');

function refused(fn: () => unknown): InferrerError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof InferrerError);
    return err;
  }
  assert.fail('not refused');
}

describe('edge admission', () => {
  test('nothing is refused until a modelhost has said full', () => {
    const a = new Admission(10_000);
    const leaves = Array.from({ length: 1000 }, () => a.enter('m'));
    assert.equal(a.limitOf('m'), Infinity);
    for (const leave of leaves) leave(timedOut);
  });

  test('a QUEUE_FULL sets the limit to what the modelhosts held; more are refused with their Retry-After', () => {
    const a = new Admission(10_000);
    const leaves = Array.from({ length: 10 }, () => a.enter('m'));
    // The last one comes back full: the modelhosts held the other nine.
    leaves[9]!(full(3));
    assert.equal(a.limitOf('m'), 9);
    const err = refused(() => a.enter('m'));
    assert.equal(err.code, 'QUEUE_FULL');
    assert.equal(err.retryAfter, 3);
    assert.match(err.message, /'m' is at capacity/);
    // Other models are not held back.
    a.enter('other')();
    // One answered: room for one more.
    leaves[0]!();
    const next = a.enter('m');
    refused(() => a.enter('m'));
    // A refusal that comes back together with others lowers the limit step by step, never below one.
    next(full());
    for (const leave of leaves.slice(1, 8)) leave(full());
    assert.equal(a.limitOf('m'), 1);
    refused(() => a.enter('m'));
    leaves[8]!();
    // Nothing in flight: the limit is forgotten.
    assert.equal(a.limitOf('m'), Infinity);
  });

  test('each result raises the limit by 1/limit, so capacity regained is found again', () => {
    const a = new Admission(10_000);
    const leaves = Array.from({ length: 5 }, () => a.enter('m'));
    leaves[4]!(full());
    assert.equal(a.limitOf('m'), 4);
    // Four results in a row, each replaced at once, as under steady load.
    for (let i = 0; i < 4; i++) {
      leaves[i]!();
      leaves[i] = a.enter('m');
    }
    assert.ok(a.limitOf('m') > 4.9 && a.limitOf('m') < 5, `limit ${a.limitOf('m')}`);
    leaves[0]!();
    leaves[0] = a.enter('m');
    // Past five now: a fifth request in flight.
    assert.ok(a.limitOf('m') > 5);
    leaves[4] = a.enter('m');
    refused(() => a.enter('m'));
    for (const leave of leaves) leave(timedOut);
  });

  test("a refusal for a request's own short deadline leaves the limit alone; one for a long queue sets it", () => {
    const a = new Admission(10_000);
    const leaves = Array.from({ length: 4 }, () => a.enter('m'));
    // 10 s: a fresh request has about 8.8 s at a modelhost; a queue of 2 s is full only for a short deadline.
    leaves[0]!(new InferrerError('QUEUE_FULL', 'would wait', { waitMs: 2000, deadlineMs: 300 }));
    assert.equal(a.limitOf('m'), Infinity);
    leaves[1]!(new InferrerError('QUEUE_FULL', 'would wait', { waitMs: 8000, deadlineMs: 7500 }));
    assert.equal(a.limitOf('m'), 2);
    leaves[2]!();
    leaves[3]!();
  });

  test('a leave called twice counts once', () => {
    const a = new Admission(10_000);
    const one = a.enter('m');
    const two = a.enter('m');
    one(full());
    one(full());
    assert.equal(a.limitOf('m'), 1);
    refused(() => a.enter('m'));
    two();
    assert.equal(a.limitOf('m'), Infinity);
  });
});
