/**
 * Batch jobs on the shared volume (the model store's jobs area, MODEL_DIR/.jobs): the disk is the truth,
 * the queue only says which job to work on next.
 *
 *   <root>/<id>/state.json        JobRecord, written temp + rename
 *   <root>/<id>/input             the upload as it came
 *   <root>/<id>/items.ndjson      one line per item (ItemLine), in input order
 *   <root>/<id>/chunks.json       byte offset in items.ndjson where each chunk starts (and the end)
 *   <root>/<id>/files/            images taken out of an archive
 *   <root>/<id>/results/<chunk>-<failed>.ndjson   the results of one chunk, written temp + rename
 *
 * A chunk's results appear at once and complete, or not at all, so a chunk done twice (a worker that died
 * after writing, a job handed out twice) is still one file per chunk index: readers take the first file of
 * each index. Progress is the list of result files, so any Inferrer can answer for any job.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { InferrerError, storageError, writeAtomic } from '@inferrer/core';
import { ownerGone } from '@inferrer/model-store';
import { FINAL_STATES, type ItemLine, type JobRecord } from './types.ts';

const RESULT_FILE = /^(\d{8})-(\d+)\.ndjson$/;
const JOB_ID = /^j[a-z0-9]{8,40}$/;

/**
 * The one answer for a job that is not there: also for a job another API key owns, so a client cannot tell
 * the two apart (job-service.ts).
 */
export function jobNotFound(id: string): InferrerError {
  return new InferrerError('JOB_NOT_FOUND', `job ${id.slice(0, 80)} not found`, { job: id.slice(0, 80) });
}

export interface ChunkProgress {
  /** Failed items per finished chunk. */
  chunks: Map<number, number>;
  done: number;
  failed: number;
}

export class JobStore {
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  async init(): Promise<void> {
    await mkdir(this.root, { recursive: true });
  }

  static newId(): string {
    return `j${Date.now().toString(36)}${randomBytes(6).toString('hex')}`;
  }

  /** Checks the id's shape (never a path outside the jobs area) and names JOB_NOT_FOUND otherwise. */
  static checkId(id: string): string {
    if (!JOB_ID.test(id)) throw jobNotFound(id);
    return id;
  }

  dir(id: string): string {
    return path.join(this.root, JobStore.checkId(id));
  }

  file(id: string, name: string): string {
    return path.join(this.dir(id), name);
  }

  /** Creates the job's folder and state; on a full volume STORAGE_FULL, with nothing left behind. */
  async create(rec: JobRecord): Promise<void> {
    try {
      await mkdir(path.join(this.dir(rec.id), 'results'), { recursive: true });
      await this.write(rec);
    } catch (err) {
      await rm(this.dir(rec.id), { recursive: true, force: true });
      throw storageError(err);
    }
  }

  async read(id: string): Promise<JobRecord | undefined> {
    try {
      return JSON.parse(await readFile(this.file(id, 'state.json'), 'utf8')) as JobRecord;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || err instanceof SyntaxError) return undefined;
      throw err;
    }
  }

  async get(id: string): Promise<JobRecord> {
    const rec = await this.read(id);
    if (!rec) throw jobNotFound(id);
    return rec;
  }

  async write(rec: JobRecord): Promise<void> {
    await writeAtomic(this.file(rec.id, 'state.json'), `${JSON.stringify(rec, null, 1)}\n`);
  }

  /**
   * Read, change, write. A job in a final state stays in it: the change is not applied (a worker finishing
   * a chunk never undoes a cancel), and the current record comes back.
   */
  async update(id: string, change: (rec: JobRecord) => Partial<JobRecord>): Promise<JobRecord> {
    const rec = await this.get(id);
    if (FINAL_STATES.has(rec.state)) return rec;
    const next = { ...rec, ...change(rec) };
    await this.write(next);
    return next;
  }

  async list(): Promise<JobRecord[]> {
    let entries: string[];
    try {
      entries = await readdir(this.root);
    } catch {
      return [];
    }
    const out: JobRecord[] = [];
    for (const e of entries) {
      if (!JOB_ID.test(e)) continue;
      const rec = await this.read(e).catch(() => undefined);
      if (rec) out.push(rec);
    }
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  }

  /** Finished chunks and their failed counts, from the names of the result files. */
  async progress(rec: JobRecord): Promise<ChunkProgress> {
    const chunks = new Map<number, number>();
    let names: string[] = [];
    try {
      names = await readdir(path.join(this.dir(rec.id), 'results'));
    } catch {
      // no results yet
    }
    for (const n of names) {
      const m = RESULT_FILE.exec(n);
      if (!m) continue;
      const c = Number(m[1]);
      if (!chunks.has(c)) chunks.set(c, Number(m[2]));
    }
    let done = 0;
    let failed = 0;
    for (const [c, f] of chunks) {
      done += chunkSize(rec, c);
      failed += f;
    }
    return { chunks, done, failed };
  }

  /** Writes one chunk's result lines at once (temp + rename); a chunk already written is left as it is. */
  async writeChunk(rec: JobRecord, chunk: number, lines: string[], failed: number): Promise<void> {
    const dir = path.join(this.dir(rec.id), 'results');
    const prefix = `${String(chunk).padStart(8, '0')}-`;
    const existing = (await readdir(dir).catch(() => [] as string[])).find((n) => n.startsWith(prefix) && RESULT_FILE.test(n));
    if (existing) return;
    await writeAtomic(path.join(dir, `${prefix}${failed}.ndjson`), lines.length ? `${lines.join('\n')}\n` : '');
  }

  /** The items of one chunk, read from items.ndjson by the chunk's byte range. */
  async readChunk(rec: JobRecord, chunk: number, offsets: number[]): Promise<ItemLine[]> {
    const start = offsets[chunk]!;
    const end = offsets[chunk + 1]!;
    const fh = await open(this.file(rec.id, 'items.ndjson'), 'r');
    try {
      const buf = Buffer.allocUnsafe(end - start);
      let read = 0;
      while (read < buf.length) {
        const r = await fh.read(buf, read, buf.length - read, start + read);
        if (r.bytesRead === 0) break;
        read += r.bytesRead;
      }
      return buf
        .subarray(0, read)
        .toString('utf8')
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => JSON.parse(l) as ItemLine);
    } finally {
      await fh.close();
    }
  }

  async offsets(rec: JobRecord): Promise<number[]> {
    return JSON.parse(await readFile(this.file(rec.id, 'chunks.json'), 'utf8')) as number[];
  }

  /**
   * The results in input order: every finished chunk from the first up to the first one not finished yet
   * (so a running job gives a prefix, never a gap). Yields file streams' chunks.
   */
  async *results(rec: JobRecord): AsyncGenerator<Buffer> {
    const { chunks } = await this.progress(rec);
    const dir = path.join(this.dir(rec.id), 'results');
    for (let c = 0; c < rec.chunks; c++) {
      const failed = chunks.get(c);
      if (failed === undefined) return;
      for await (const b of createReadStream(path.join(dir, `${String(c).padStart(8, '0')}-${failed}.ndjson`))) yield b as Buffer;
    }
  }

  /** Items covered by the contiguous finished prefix of chunks. */
  async prefixItems(rec: JobRecord): Promise<number> {
    const { chunks } = await this.progress(rec);
    let n = 0;
    for (let c = 0; c < rec.chunks && chunks.has(c); c++) n += chunkSize(rec, c);
    return n;
  }

  async remove(id: string): Promise<void> {
    const dir = this.dir(id);
    // Renamed first, so a half-removed job is never read as one.
    const gone = path.join(this.root, `.removing-${id}-${randomBytes(4).toString('hex')}`);
    try {
      await rename(dir, gone);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    await rm(gone, { recursive: true, force: true });
  }

  /**
   * Retention: removes finished jobs whose end lies more than `retentionMs` back, submissions stuck in
   * RECEIVING (an Inferrer that died during an upload: at once when it ran on this host, else after an
   * hour), and leftovers of removals.
   */
  async sweep(retentionMs: number, now = Date.now()): Promise<string[]> {
    const removed: string[] = [];
    for (const e of await readdir(this.root).catch(() => [] as string[])) {
      if (e.startsWith('.removing-')) {
        await rm(path.join(this.root, e), { recursive: true, force: true });
        continue;
      }
      if (!JOB_ID.test(e)) continue;
      const rec = await this.read(e);
      let expired = false;
      if (!rec) {
        // A folder without a readable state: only old ones go (a submission may be creating it right now).
        const s = await stat(path.join(this.root, e)).catch(() => undefined);
        expired = s !== undefined && now - s.mtimeMs > 3600_000;
      } else if (FINAL_STATES.has(rec.state)) expired = now - Date.parse(rec.finishedAt ?? rec.createdAt) > retentionMs;
      else if (rec.state === 'RECEIVING') expired = (rec.receiver !== undefined && ownerGone(rec.receiver)) || now - Date.parse(rec.createdAt) > 3600_000;
      if (expired) {
        await this.remove(e);
        removed.push(e);
      }
    }
    return removed;
  }
}

export function chunkSize(rec: Pick<JobRecord, 'total' | 'chunkItems'>, chunk: number): number {
  return Math.max(0, Math.min(rec.chunkItems, rec.total - chunk * rec.chunkItems));
}
