/** Job input: format detection, rows → items with line numbers, archives → image items, limits. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { detectFormat, numberToken, prepareArchive, prepareRows, splitCsv } from '../src/jobs/job-input.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'inferrer-jobs-input-'));
});
after(async () => rm(dir, { recursive: true, force: true }));

const items = async (file: string) =>
  (await readFile(file, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
const limits = { maxBytes: 1 << 20, maxItems: 1000 };

test('CSV fields: quotes, numbers kept exact, non-finite values', () => {
  assert.deepEqual(splitCsv('1, 2,"a,""b""",x'), [
    { text: '1', quoted: false },
    { text: '2', quoted: false },
    { text: 'a,"b"', quoted: true },
    { text: 'x', quoted: false },
  ]);
  assert.equal(numberToken('9007199254740993'), '9007199254740993');
  assert.equal(numberToken('+007'), '7');
  assert.equal(numberToken('.5'), '0.5');
  assert.equal(numberToken('1e3'), '1000');
  assert.equal(numberToken('-inf'), '"-Infinity"');
  assert.equal(numberToken('NaN'), '"NaN"');
  assert.equal(numberToken('abc'), undefined);
  assert.equal(numberToken(''), undefined);
});

test('NDJSON rows: one item per non-empty line; bad lines fail with their line number', async () => {
  const input = path.join(dir, 'in.ndjson');
  await writeFile(input, '[1,2]\n\n{"values":[3,4]}\n{oops\n7\n{"a":[1],"b":[2]}\r\n[9007199254740993,1]\n');
  const out = path.join(dir, 'items.ndjson');
  const p = await prepareRows(input, out, 'ndjson', limits);
  assert.equal(p.total, 6);
  const it = await items(out);
  assert.deepEqual(
    it.map((i) => i.line),
    [1, 3, 4, 5, 6, 7],
  );
  assert.equal(it[0].v, '[1,2]');
  assert.equal(it[1].v, '[3,4]');
  assert.equal(it[2].err.code, 'INVALID_JSON');
  assert.match(it[2].err.message, /^line 4: /);
  assert.equal(it[3].err.code, 'INVALID_INPUT');
  assert.equal(it[4].v, '{"a":[1],"b":[2]}');
  assert.equal(it[5].v, '[9007199254740993,1]', 'big integers are kept as written');
});

test('CSV: a header line is skipped; a bad field fails its row only', async () => {
  const input = path.join(dir, 'in.csv');
  await writeFile(input, 'a,b,c\n1,2,3\n4,x,6\n\n7,8,9\n');
  const out = path.join(dir, 'items-csv.ndjson');
  const p = await prepareRows(input, out, 'csv', limits);
  assert.equal(p.total, 3);
  const it = await items(out);
  assert.deepEqual(
    it.map((i) => [i.line, i.v ?? i.err.message]),
    [
      [2, '[1,2,3]'],
      [3, 'line 3: field 2 ("x") is not a number'],
      [5, '[7,8,9]'],
    ],
  );
});

test('chunks: offsets cut items.ndjson at every chunk start', async () => {
  const input = path.join(dir, 'many.ndjson');
  await writeFile(input, '[1]\n'.repeat(300));
  const out = path.join(dir, 'many-items.ndjson');
  const p = await prepareRows(input, out, 'ndjson', limits);
  assert.equal(p.chunks, Math.ceil(300 / p.chunkItems));
  const text = await readFile(out);
  assert.equal(p.offsets.at(-1), text.length);
  const second = text.subarray(p.offsets[1]!, p.offsets[2]!).toString().split('\n').filter(Boolean);
  assert.equal(JSON.parse(second[0]!).i, p.chunkItems);
});

test('limits: more items than JOBS_MAX_ITEMS is JOB_TOO_LARGE; no rows is refused', async () => {
  const input = path.join(dir, 'big.ndjson');
  await writeFile(input, '[1]\n'.repeat(11));
  await assert.rejects(prepareRows(input, path.join(dir, 'x.ndjson'), 'ndjson', { maxBytes: 1 << 20, maxItems: 10 }), { code: 'JOB_TOO_LARGE' });
  await writeFile(input, '\n\n');
  await assert.rejects(prepareRows(input, path.join(dir, 'y.ndjson'), 'ndjson', limits), { code: 'INVALID_REQUEST' });
});

test('format: query, then Content-Type, then the first bytes', async () => {
  const f = path.join(dir, 'sniff');
  await writeFile(f, '1,2,3\n');
  assert.equal(await detectFormat(f, undefined, undefined), 'csv');
  assert.equal(await detectFormat(f, 'application/x-ndjson', undefined), 'ndjson');
  assert.equal(await detectFormat(f, 'text/csv', 'zip'), 'zip');
  await writeFile(f, Buffer.from('PK\x03\x04rest'));
  assert.equal(await detectFormat(f, 'application/octet-stream', undefined), 'zip');
  await assert.rejects(detectFormat(f, 'image/png', undefined), { code: 'UNSUPPORTED_MEDIA_TYPE' });
  await assert.rejects(detectFormat(f, undefined, 'xls'), { code: 'INVALID_REQUEST' });
});

test('archives: a tar becomes one item per file (hidden files skipped); broken archives are INVALID_ARCHIVE', async () => {
  const src = path.join(dir, 'src');
  await mkdir(path.join(src, 'sub'), { recursive: true });
  await writeFile(path.join(src, 'a.png'), 'AAAA');
  await writeFile(path.join(src, 'sub', 'b.jpg'), 'BBBB');
  await writeFile(path.join(src, '.DS_Store'), 'x');
  const tar = path.join(dir, 'imgs.tar');
  assert.equal(spawnSync('tar', ['-cf', tar, '-C', src, 'a.png', 'sub/b.jpg', '.DS_Store']).status, 0);
  const job = path.join(dir, 'job-tar');
  await mkdir(job);
  const p = await prepareArchive(tar, job, 'tar', limits);
  assert.equal(p.total, 2);
  const it = await items(path.join(job, 'items.ndjson'));
  assert.deepEqual(
    it.map((i) => i.name),
    ['a.png', 'sub/b.jpg'],
  );
  assert.equal(await readFile(path.join(job, it[1].file), 'utf8'), 'BBBB');

  const bad = path.join(dir, 'bad.zip');
  await writeFile(bad, Buffer.concat([Buffer.from('PK\x03\x04'), Buffer.alloc(64)]));
  const job2 = path.join(dir, 'job-zip');
  await mkdir(job2);
  await assert.rejects(prepareArchive(bad, job2, 'zip', limits), { code: 'INVALID_ARCHIVE' });
  const truncated = path.join(dir, 'trunc.tar');
  await writeFile(truncated, (await readFile(tar)).subarray(0, 700));
  await assert.rejects(prepareArchive(truncated, job2, 'tar', limits), { code: 'INVALID_ARCHIVE' });
  await assert.rejects(prepareArchive(tar, job2, 'tar', { maxBytes: 5, maxItems: 10 }), { code: 'JOB_TOO_LARGE' });
});
