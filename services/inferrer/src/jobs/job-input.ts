/**
 * A job's input: the upload streamed to disk under a byte limit (never held whole in memory), its format
 * (NDJSON, CSV, zip or tar of images), and items.ndjson + chunks.json made from it in one streaming pass.
 *
 * Rows: every non-empty line is one item. A line that cannot be read (bad JSON, a CSV field that is not a
 * number) becomes an item that fails with its line number; the job goes on. Archives: every regular file
 * (hidden files and __MACOSX/ aside) is one image item, taken out into files/; an archive that cannot be
 * read fails the submission (INVALID_ARCHIVE).
 */
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, open } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { stringify as stringifyLossless } from 'lossless-json';
import tarStream from 'tar-stream';
import yauzl from 'yauzl';
import { InferrerError, MAX_JSON_DEPTH, bodyToFile, parseInferenceJson } from '@inferrer/core';
import type { ItemLine, JobFormat } from './types.ts';

export const ROW_CHUNK_ITEMS = 128;
export const IMAGE_CHUNK_ITEMS = 8;

export interface InputLimits {
  maxBytes: number;
  maxItems: number;
}

/** Streams the request body to `file`, refusing more than `maxBytes`; resolves with the byte count. */
export async function receiveBody(req: IncomingMessage, file: string, maxBytes: number): Promise<number> {
  const size = await bodyToFile(req, file, maxBytes, (got) =>
    tooLarge(
      `the job input is larger than the limit of ${maxBytes} bytes (JOBS_MAX_BYTES)`,
      got === undefined ? { limit: maxBytes } : { limit: maxBytes, got },
    ),
  );
  if (size === 0) throw new InferrerError('INVALID_REQUEST', 'the job input is empty: send NDJSON or CSV rows, or a zip/tar of images');
  return size;
}

const TYPES: Record<string, JobFormat> = {
  'application/x-ndjson': 'ndjson',
  'application/ndjson': 'ndjson',
  'application/jsonl': 'ndjson',
  'application/x-jsonlines': 'ndjson',
  'application/json-lines': 'ndjson',
  'application/json': 'ndjson',
  'text/csv': 'csv',
  'application/csv': 'csv',
  'application/zip': 'zip',
  'application/x-zip-compressed': 'zip',
  'application/x-tar': 'tar',
  'application/tar': 'tar',
  'application/gzip': 'tar',
  'application/x-gzip': 'tar',
  'application/x-gtar': 'tar',
  'application/tar+gzip': 'tar',
};

/** The format from ?format=, else the Content-Type, else the first bytes of the file. */
export async function detectFormat(file: string, contentType: string | undefined, asked: string | undefined): Promise<JobFormat> {
  if (asked !== undefined) {
    if (asked === 'ndjson' || asked === 'jsonl' || asked === 'csv' || asked === 'zip' || asked === 'tar') return asked === 'jsonl' ? 'ndjson' : asked;
    throw new InferrerError('INVALID_REQUEST', `format must be ndjson, csv, zip or tar, not ${JSON.stringify(asked.slice(0, 40))}`, {
      got: asked.slice(0, 40),
    });
  }
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (TYPES[type]) return TYPES[type];
  if (type.startsWith('multipart/'))
    throw new InferrerError('UNSUPPORTED_MEDIA_TYPE', 'send the job input as the request body (curl --data-binary @rows.ndjson), not as a form', { got: type });
  if (type && type !== 'application/octet-stream' && type !== 'text/plain') {
    throw new InferrerError(
      'UNSUPPORTED_MEDIA_TYPE',
      `a job takes NDJSON (application/x-ndjson), CSV (text/csv), zip (application/zip) or tar (application/x-tar), not ${type}`,
      { got: type },
    );
  }
  const head = Buffer.alloc(512);
  const fh = await open(file, 'r');
  const { bytesRead } = await fh.read(head, 0, 512, 0).finally(() => fh.close());
  const b = head.subarray(0, bytesRead);
  if (b[0] === 0x50 && b[1] === 0x4b && (b[2] === 3 || b[2] === 5)) return 'zip';
  if (b[0] === 0x1f && b[1] === 0x8b) return 'tar';
  if (bytesRead >= 262 && b.subarray(257, 262).toString('latin1') === 'ustar') return 'tar';
  const first = b.toString('utf8').trimStart()[0];
  return first === '[' || first === '{' ? 'ndjson' : 'csv';
}

export interface PreparedItems {
  total: number;
  chunkItems: number;
  chunks: number;
}

/** Writes items.ndjson lines and remembers where each chunk starts. */
class ItemWriter {
  readonly #out: WriteStream;
  readonly #chunkItems: number;
  readonly #maxItems: number;
  readonly offsets: number[] = [];
  #bytes = 0;
  #error: Error | undefined;
  count = 0;

  constructor(file: string, chunkItems: number, maxItems: number) {
    this.#out = createWriteStream(file);
    // Kept and thrown from add()/close(): an 'error' without a listener would end the process.
    this.#out.on('error', (err) => (this.#error ??= err));
    this.#chunkItems = chunkItems;
    this.#maxItems = maxItems;
  }

  async add(item: Omit<ItemLine, 'i'>): Promise<void> {
    if (this.#error) throw this.#error;
    if (this.count >= this.#maxItems) throw tooLarge(`the job has more than ${this.#maxItems} items (JOBS_MAX_ITEMS)`, { limit: this.#maxItems });
    if (this.count % this.#chunkItems === 0) this.offsets.push(this.#bytes);
    const line = `${JSON.stringify({ i: this.count, ...item })}\n`;
    this.count++;
    this.#bytes += Buffer.byteLength(line);
    if (!this.#out.write(line)) await new Promise<void>((r) => this.#out.once('drain', () => r()));
  }

  async close(): Promise<PreparedItems & { offsets: number[] }> {
    await new Promise<void>((resolve, reject) => this.#out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    if (this.#error) throw this.#error;
    this.offsets.push(this.#bytes);
    return { total: this.count, chunkItems: this.#chunkItems, chunks: this.offsets.length - 1, offsets: this.offsets };
  }

  destroy(): void {
    this.#out.destroy();
  }
}

/** Rows (NDJSON or CSV) → items. */
export async function prepareRows(
  input: string,
  itemsFile: string,
  format: 'ndjson' | 'csv',
  limits: InputLimits,
): Promise<PreparedItems & { offsets: number[] }> {
  const w = new ItemWriter(itemsFile, ROW_CHUNK_ITEMS, limits.maxItems);
  const rl = createInterface({ input: createReadStream(input, { encoding: 'utf8' }), crlfDelay: Infinity });
  let line = 0;
  let header: boolean | undefined;
  try {
    for await (const text of rl) {
      line++;
      if (text.trim().length === 0) continue;
      if (format === 'ndjson') {
        await w.add({ line, ...ndjsonRow(text, line) });
        continue;
      }
      const fields = splitCsv(text);
      if (header === undefined) {
        header = fields.some((f) => !f.quoted && numberToken(f.text) === undefined);
        if (header) continue;
      }
      await w.add({ line, ...csvRow(fields, line) });
    }
  } catch (err) {
    w.destroy();
    throw err;
  }
  const out = await w.close();
  if (out.total === 0) throw new InferrerError('INVALID_REQUEST', `the ${format === 'csv' ? 'CSV' : 'NDJSON'} input has no rows`);
  return out;
}

function ndjsonRow(text: string, line: number): Pick<ItemLine, 'v' | 'err'> {
  let value: unknown;
  try {
    // Depth-limited: the value is written back out (stringify recurses) and later decoded by a modelhost.
    value = parseInferenceJson(text, { maxDepth: MAX_JSON_DEPTH });
  } catch (err) {
    const e = err as InferrerError;
    if (e.code === 'INVALID_REQUEST') return { err: { code: 'INVALID_INPUT', message: `line ${line}: ${e.message}` } };
    return { err: { code: 'INVALID_JSON', message: `line ${line}: ${e.message.replace(/^the body is not valid JSON: /, 'not valid JSON: ')}` } };
  }
  if (Array.isArray(value)) return { v: text.trim() };
  if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    if ('values' in o) {
      const v = o.values;
      if (!v || typeof v !== 'object')
        return { err: { code: 'INVALID_INPUT', message: `line ${line}: "values" must be a row (a JSON array) or an object keyed by input name` } };
      return { v: stringifyLossless(v) ?? 'null' };
    }
    return { v: text.trim() };
  }
  return { err: { code: 'INVALID_INPUT', message: `line ${line}: expected a row (a JSON array), {"values": […]} or an object keyed by input name` } };
}

function csvRow(fields: CsvField[], line: number): Pick<ItemLine, 'v' | 'err'> {
  const parts: string[] = [];
  for (let k = 0; k < fields.length; k++) {
    const f = fields[k]!;
    if (f.quoted) {
      parts.push(JSON.stringify(f.text));
      continue;
    }
    const n = numberToken(f.text);
    if (n === undefined) {
      const shown = f.text.trim().slice(0, 40);
      return {
        err: {
          code: 'INVALID_INPUT',
          message: shown ? `line ${line}: field ${k + 1} (${JSON.stringify(shown)}) is not a number` : `line ${line}: field ${k + 1} is empty`,
        },
      };
    }
    parts.push(n);
  }
  return { v: `[${parts.join(',')}]` };
}

interface CsvField {
  text: string;
  quoted: boolean;
}

/** One CSV line (RFC 4180 quoting, no line breaks inside quotes). */
export function splitCsv(line: string): CsvField[] {
  const out: CsvField[] = [];
  let i = 0;
  for (;;) {
    while (line[i] === ' ' || line[i] === '\t') i++;
    if (line[i] === '"') {
      let text = '';
      i++;
      for (;;) {
        const j = line.indexOf('"', i);
        if (j < 0) {
          text += line.slice(i);
          i = line.length;
          break;
        }
        text += line.slice(i, j);
        if (line[j + 1] === '"') {
          text += '"';
          i = j + 2;
        } else {
          i = j + 1;
          break;
        }
      }
      const comma = line.indexOf(',', i);
      out.push({ text, quoted: true });
      if (comma < 0) return out;
      i = comma + 1;
    } else {
      const comma = line.indexOf(',', i);
      out.push({ text: (comma < 0 ? line.slice(i) : line.slice(i, comma)).trim(), quoted: false });
      if (comma < 0) return out;
      i = comma + 1;
    }
  }
}

/** A CSV number as JSON text (integers kept exact, NaN/±Infinity as the strings the codecs take), or undefined. */
export function numberToken(raw: string): string | undefined {
  const t = raw.trim();
  if (/^[+-]?\d+$/.test(t)) return BigInt(t).toString();
  if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(t)) {
    const n = Number(t);
    return Number.isFinite(n) ? String(n) : n > 0 ? '"Infinity"' : '"-Infinity"';
  }
  const s = /^([+-]?)(nan|inf|infinity)$/i.exec(t);
  if (s) return s[2]!.toLowerCase() === 'nan' ? '"NaN"' : s[1] === '-' ? '"-Infinity"' : '"Infinity"';
  return undefined;
}

/** Archive entries that are not items: folders, hidden files, macOS resource forks. */
function skipEntry(name: string): boolean {
  if (name.endsWith('/')) return true;
  const parts = name.split('/');
  return parts.some((p) => p.startsWith('.') || p === '__MACOSX');
}

function extensionOf(name: string): string {
  const ext = path.extname(name).toLowerCase();
  return /^\.[a-z0-9]{1,8}$/.test(ext) ? ext : '';
}

/** An archive of images → items (files taken out into `filesDir`). */
export async function prepareArchive(
  input: string,
  jobDir: string,
  format: 'zip' | 'tar',
  limits: InputLimits,
): Promise<PreparedItems & { offsets: number[] }> {
  const filesDir = path.join(jobDir, 'files');
  await mkdir(filesDir, { recursive: true });
  const w = new ItemWriter(path.join(jobDir, 'items.ndjson'), IMAGE_CHUNK_ITEMS, limits.maxItems);
  let bytes = 0;
  const take = async (name: string, stream: Readable): Promise<void> => {
    const rel = `files/${String(w.count).padStart(8, '0')}${extensionOf(name)}`;
    const limiter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        bytes += chunk.length;
        cb(
          bytes > limits.maxBytes ? tooLarge(`the archive unpacks to more than ${limits.maxBytes} bytes (JOBS_MAX_BYTES)`, { limit: limits.maxBytes }) : null,
          chunk,
        );
      },
    });
    await pipeline(stream, limiter, createWriteStream(path.join(jobDir, rel)));
    await w.add({ name: name.slice(0, 1024), file: rel });
  };
  try {
    if (format === 'zip') await readZip(input, take);
    else await readTar(input, take);
  } catch (err) {
    w.destroy();
    if (err instanceof InferrerError) throw err;
    throw new InferrerError('INVALID_ARCHIVE', `the ${format} archive cannot be read: ${(err as Error).message}`, { format });
  }
  const out = await w.close();
  if (out.total === 0) throw new InferrerError('INVALID_ARCHIVE', `the ${format} archive holds no files`, { format });
  return out;
}

function readZip(file: string, take: (name: string, stream: Readable) => Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true, autoClose: true, validateEntrySizes: true, strictFileNames: false, decodeStrings: true }, (err, zip) => {
      if (err || !zip) return reject(err ?? new Error('not a zip file'));
      let failed = false;
      const fail = (e: unknown): void => {
        if (failed) return;
        failed = true;
        zip.close();
        reject(e);
      };
      zip.on('error', fail);
      zip.on('end', () => {
        if (!failed) resolve();
      });
      zip.on('entry', (entry: yauzl.Entry) => {
        if (skipEntry(entry.fileName)) {
          zip.readEntry();
          return;
        }
        zip.openReadStream(entry, (e, stream) => {
          if (e || !stream) return fail(e ?? new Error(`cannot read ${entry.fileName}`));
          take(entry.fileName, stream).then(() => zip.readEntry(), fail);
        });
      });
      zip.readEntry();
    });
  });
}

async function readTar(file: string, take: (name: string, stream: Readable) => Promise<void>): Promise<void> {
  const head = Buffer.alloc(2);
  const fh = await open(file, 'r');
  await fh.read(head, 0, 2, 0).finally(() => fh.close());
  const extract = tarStream.extract();
  const source = createReadStream(file);
  const feed = head[0] === 0x1f && head[1] === 0x8b ? pipeline(source, createGunzip(), extract) : pipeline(source, extract);
  const entries = (async () => {
    for await (const entry of extract) {
      const type = entry.header.type ?? 'file';
      if ((type === 'file' || type === 'contiguous-file') && !skipEntry(entry.header.name)) await take(entry.header.name, entry as unknown as Readable);
      else entry.resume();
    }
  })();
  await Promise.all([feed, entries]);
}

function tooLarge(message: string, details: Record<string, unknown>): InferrerError {
  return new InferrerError('JOB_TOO_LARGE', message, details);
}
