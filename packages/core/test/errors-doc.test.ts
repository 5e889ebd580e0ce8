/** docs/errors.md lists every error code with its status, and nothing else (fastify's errors.test.js). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ERROR_CODES, InferrerError, statusOf } from '@inferrer/core';

const doc = readFileSync(path.resolve(import.meta.dirname, '..', '..', '..', 'docs', 'errors.md'), 'utf8');

test('every code is in docs/errors.md with its HTTP status, and the doc lists no other code', () => {
  const rows = [...doc.matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1]!, Number(m[2])] as const);
  const documented = new Map(rows);
  assert.equal(documented.size, rows.length, 'no code documented twice');
  for (const code of Object.keys(ERROR_CODES)) {
    assert.ok(documented.has(code), `${code} is documented (run: node --import tsx scripts/gen-errors-doc.ts > docs/errors.md)`);
    assert.equal(documented.get(code), statusOf(new InferrerError(code as keyof typeof ERROR_CODES, '')), `${code} has the right status`);
  }
  for (const code of documented.keys()) assert.ok(code in ERROR_CODES, `${code} in the doc exists in the catalogue`);
});
