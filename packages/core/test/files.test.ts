import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { InferrerError, bodyToFile, writeAtomic } from '@inferrer/core';

async function tempDir(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'inferrer-files-'));
}

describe('writeAtomic', () => {
  test('replaces the file with the new text and leaves no temporary file', async () => {
    const dir = await tempDir();
    try {
      const file = path.join(dir, 'state.json');
      await writeFile(file, 'old');
      await writeAtomic(file, 'new');
      assert.equal(await readFile(file, 'utf8'), 'new');
      assert.deepEqual(await readdir(dir), ['state.json']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a failed rename removes the temporary file and leaves the target as it was', async () => {
    const dir = await tempDir();
    try {
      // A folder in the target's place: the temporary file is written, the rename over it fails.
      const target = path.join(dir, 'taken');
      await writeFile(path.join(dir, 'keep'), 'x');
      await mkdir(path.join(target, 'inside'), { recursive: true });
      await assert.rejects(writeAtomic(target, 'text'));
      assert.deepEqual((await readdir(dir)).sort(), ['keep', 'taken']);
      assert.deepEqual(await readdir(target), ['inside']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('bodyToFile', () => {
  /** One request to a server whose handler runs bodyToFile; resolves with the handler's outcome and the client's status. */
  async function upload(body: Buffer, maxBytes: number, file: string): Promise<{ outcome: number | InferrerError; status: number }> {
    let outcome: Promise<number | InferrerError> = Promise.resolve(0);
    const server = http.createServer((req, res) => {
      outcome = bodyToFile(req, file, maxBytes, (got) => new InferrerError('BODY_TOO_LARGE', `over ${maxBytes}`, { limit: maxBytes, got })).then(
        (n) => n,
        (e: InferrerError) => e,
      );
      void outcome.then((o) => {
        res.writeHead(typeof o === 'number' ? 200 : 413, { connection: 'close' });
        res.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const status = await new Promise<number>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end(body);
      });
      return { outcome: await outcome, status };
    } finally {
      server.close();
    }
  }

  test('writes the whole body and resolves with its size', async () => {
    const dir = await tempDir();
    try {
      const file = path.join(dir, 'body');
      const { outcome, status } = await upload(Buffer.from('0123456789'), 10, file);
      assert.equal(outcome, 10);
      assert.equal(status, 200);
      assert.equal(await readFile(file, 'utf8'), '0123456789');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("a body over the limit is the caller's error and the client still reads the answer", async () => {
    const dir = await tempDir();
    try {
      const { outcome, status } = await upload(Buffer.alloc(64 * 1024, 1), 1000, path.join(dir, 'body'));
      assert.ok(outcome instanceof InferrerError);
      assert.equal(outcome.code, 'BODY_TOO_LARGE');
      assert.equal(status, 413);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
