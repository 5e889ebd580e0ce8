/**
 * The model repository on the shared volume. One folder per model; versions are immutable folders;
 * `model.json` and the store generation are written temp-then-rename; every writer holds the store
 * lock, so several Inferrer replicas can share one volume. Readers (modelhosts) take no lock.
 *
 *   <root>/.generation          bumped after every change; modelhosts poll it
 *   <root>/.staging/<owner>~<id>/   uploads being validated (same filesystem, so publishing is a rename)
 *   <root>/.trash/<owner>~<name>-<id>/   deleted models, removed in the background
 *   <root>/<name>/model.json    ModelRecord
 *   <root>/<name>/<version>/model.onnx
 *
 * A full volume refuses every write with STORAGE_FULL and leaves the store as it was, except that a delete
 * still succeeds (it needs no space: a rename, then the generation written in place). Folders in .staging
 * and .trash that no live writer holds (see leases.ts) are reclaimed by `sweep()`, at `init()` and whenever
 * the owner calls it.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { link, mkdir, readFile, readdir, rename, rm, stat, utimes, writeFile, open } from 'node:fs/promises';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import { InferrerError, type ModelSignature, firstAxisProblem, parseModelName, storageError, writeAtomic } from '@inferrer/core';
import { Leases } from './leases.ts';
import { type OnnxFileFacts, checkOnnxFile } from './onnx-check.ts';
import { checkStacAgainstSignature, parseStacItem } from './stac-mlm.ts';
import {
  type CaptureRequest,
  type ModelConfig,
  type ModelPatch,
  type ModelRecord,
  type StoredProfile,
  type UploadMetadata,
  type VersionRecord,
  parseProfile,
} from './records.ts';

export const MODEL_FILE = 'model.onnx';
/** The STAC item of a version, beside its ONNX file. */
export const STAC_FILE = 'stac-item.json';
const RECORD_FILE = 'model.json';
const GENERATION_FILE = '.generation';
/** The header in which every request from an Inferrer to a worker carries the store generation it last wrote (ModelStore.written). */
export const STORE_GENERATION_HEADER = 'x-store-generation';

/** Creates a session (in the runtime) to prove the model runs; returns its signature. */
export type ModelValidator = (file: string, config: ModelConfig) => Promise<ModelSignature>;

/** What validating an upload found. */
export interface ModelInspection {
  facts: OnnxFileFacts;
  signature: ModelSignature;
  /** What validation cost, where it was measured (a separate process): peak memory above its baseline, what the session held, and time. */
  cost?: { memory_bytes: number; resident_bytes?: number; ms: number };
}

/** The whole validation of a staged upload (`file` inside `folder`): structure, then a session. */
export type ModelInspector = (file: string, folder: string, config: ModelConfig) => Promise<ModelInspection>;

/** Validation in this process: the structural check, then `validate` (a session) where given. */
export function inspectInProcess(validate?: ModelValidator): ModelInspector {
  return async (file, folder, config) => {
    const facts = await checkOnnxFile(file, folder);
    const signature = validate ? await validate(file, config) : { inputs: [], outputs: [] };
    return { facts, signature };
  };
}

export interface ModelStoreOptions {
  /** Runs after the structural check, before the version becomes visible (in this process). */
  validate?: ModelValidator;
  /** Replaces the structural check and `validate` (the Inferrer runs both in a child process). */
  inspect?: ModelInspector;
  /** How long a writer waits for the lock before MODEL_CONFLICT. */
  lockWaitMs?: number;
  /** A .staging or .trash folder untouched for this long belongs to no live writer (default 30 s). */
  leaseMs?: number;
}

export interface ResolvedVersion {
  record: ModelRecord;
  version: VersionRecord;
  /** Absolute path of the ONNX file. */
  file: string;
}

export class ModelStore {
  readonly root: string;
  readonly #inspect: ModelInspector;
  readonly #lockWaitMs: number;
  readonly #leases: Leases;
  #written = 0;

  constructor(root: string, opts: ModelStoreOptions = {}) {
    this.root = path.resolve(root);
    this.#inspect = opts.inspect ?? inspectInProcess(opts.validate);
    this.#lockWaitMs = opts.lockWaitMs ?? 30_000;
    this.#leases = new Leases(opts.leaseMs ?? 30_000);
  }

  /** Creates the store folders if missing and reclaims leftovers (writers only); returns what it reclaimed. */
  async init(): Promise<string[]> {
    await mkdir(path.join(this.root, '.staging'), { recursive: true });
    await mkdir(path.join(this.root, '.trash'), { recursive: true });
    try {
      await stat(path.join(this.root, GENERATION_FILE));
    } catch {
      await writeAtomic(path.join(this.root, GENERATION_FILE), '0\n');
    }
    return this.sweep();
  }

  /**
   * Removes what no live writer holds: .staging and .trash folders of writers that died (mid-upload,
   * mid-delete) and temporary files of interrupted atomic writes. Returns the paths removed (relative).
   */
  async sweep(now = Date.now()): Promise<string[]> {
    const removed: string[] = [];
    const reclaim = async (p: string, leftover: (mtimeMs: number) => boolean): Promise<void> => {
      const s = await stat(p).catch(() => undefined);
      if (!s || !leftover(s.mtimeMs)) return;
      await rm(p, { recursive: true, force: true });
      removed.push(path.relative(this.root, p));
    };
    for (const dir of ['.staging', '.trash']) {
      for (const entry of await readdir(path.join(this.root, dir)).catch(() => [] as string[])) {
        const p = path.join(this.root, dir, entry);
        await reclaim(p, (m) => this.#leases.isLeftover(p, m, now));
      }
    }
    // Temporary files of a write-then-rename that never got to the rename (the rename is the commit).
    const old = (m: number): boolean => now - m > this.#leases.leaseMs;
    for (const entry of await readdir(this.root).catch(() => [] as string[])) {
      const p = path.join(this.root, entry);
      if (TEMP_FILE.test(entry)) await reclaim(p, old);
      else if (!entry.startsWith('.')) {
        for (const inner of await readdir(p).catch(() => [] as string[])) if (TEMP_FILE.test(inner)) await reclaim(path.join(p, inner), old);
      }
    }
    return removed;
  }

  /** A monotonically increasing number that changes with every write to the store. */
  async generation(): Promise<number> {
    try {
      return Number((await readFile(path.join(this.root, GENERATION_FILE), 'utf8')).trim()) || 0;
    } catch {
      return 0;
    }
  }

  /**
   * The last generation this process wrote (0 before its first change). The Inferrer's requests carry it
   * to the workers (X-Store-Generation), which catch up before they serve: a change is in force as soon
   * as the request that made it is answered.
   */
  get written(): number {
    return this.#written;
  }

  async list(): Promise<ModelRecord[]> {
    let entries: string[];
    try {
      entries = await readdir(this.root);
    } catch {
      return [];
    }
    const out: ModelRecord[] = [];
    for (const name of entries.sort()) {
      // Only folders a name maps to (a folder named outside the rules could be neither read nor deleted).
      if (name.startsWith('.') || !isStoredName(name)) continue;
      const rec = await this.#readRecord(name).catch(() => undefined);
      if (rec) out.push(rec);
    }
    return out;
  }

  async get(rawName: string): Promise<ModelRecord> {
    const name = parseModelName(rawName);
    const rec = await this.#readRecord(name).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined;
      throw err;
    });
    if (!rec) throw new InferrerError('MODEL_NOT_FOUND', `model ${name} not found`, { model: name });
    return rec;
  }

  /** The given version, or the model's default version. */
  async resolve(rawName: string, version?: number): Promise<ResolvedVersion> {
    const record = await this.get(rawName);
    const want = version ?? record.default_version;
    const v = record.versions.find((x) => x.version === want);
    if (!v) {
      throw new InferrerError('VERSION_NOT_FOUND', `model ${record.name} version ${want} not found`, {
        model: record.name,
        version: want,
        versions: record.versions.map((x) => x.version),
      });
    }
    return { record, version: v, file: path.join(this.root, record.name, String(v.version), v.file) };
  }

  /**
   * A folder on the store's filesystem where an upload can be written before `put`; held by this process
   * (never swept) until `put` or `discard` ends it.
   */
  async stagingDir(): Promise<string> {
    const dir = path.join(this.root, '.staging', this.#leases.name(randomUUID()));
    await mkdir(dir, { recursive: true }).catch((err) => {
      throw storageError(err);
    });
    this.#leases.hold(dir);
    return dir;
  }

  /** Removes an upload's staging folder (given the folder or a file in it) without publishing it; only folders from stagingDir(). */
  async discard(fileOrDir: string): Promise<void> {
    const p = path.resolve(fileOrDir);
    const stagingRoot = path.join(this.root, '.staging');
    const staging = path.dirname(p) === stagingRoot ? p : path.dirname(p);
    if (path.dirname(staging) !== stagingRoot) return;
    await rm(staging, { recursive: true, force: true });
    this.#leases.release(staging);
  }

  /**
   * Publishes `file` (inside a folder from `stagingDir()`) as a new version of `rawName`, creating the
   * model if needed. Validation happens before anything is visible; on any failure the store is left
   * exactly as it was and the staging folder is removed.
   */
  async put(rawName: string, file: string, meta: UploadMetadata = {}): Promise<{ record: ModelRecord; version: VersionRecord; created: boolean }> {
    const staging = path.dirname(path.resolve(file));
    // Only a folder from stagingDir() is ours to remove; anything else is left exactly where it is.
    const ours = path.dirname(staging) === path.join(this.root, '.staging');
    try {
      if (!ours) throw new InferrerError('INTERNAL', 'uploads must be written into a staging folder of this store');
      const name = parseModelName(rawName);
      const staged = path.join(staging, MODEL_FILE);
      if (file !== staged) await rename(file, staged);
      const stac = meta.stac === undefined ? undefined : parseStacItem(meta.stac);
      const profile = meta.profile === undefined ? undefined : parseProfile(meta.profile, { source: 'upload' });
      const { bytes, sha256 } = await digest(staged);
      const existing = await this.#readRecord(name).catch(() => undefined);
      const config = { ...(existing?.config ?? {}), ...(meta.config ?? {}) };
      const { facts, signature, cost } = await this.#inspect(staged, staging, config);
      if (stac) {
        if (signature.inputs.length > 0) checkStacAgainstSignature(stac, signature);
        await writeFile(path.join(staging, STAC_FILE), JSON.stringify(stac, null, 2));
      }

      return await this.#locked(async () => {
        const current = await this.#readRecord(name).catch(() => undefined);
        const now = new Date().toISOString();
        const next = current ? Math.max(0, ...current.versions.map((v) => v.version)) + 1 : 1;
        const version: VersionRecord = {
          version: next,
          created_at: now,
          file: MODEL_FILE,
          bytes,
          sha256,
          inputs: signature.inputs,
          outputs: signature.outputs,
          onnx: { ir_version: facts.irVersion, opsets: facts.opsets, producer: facts.producer, operators: facts.operators, nodes: facts.nodes },
          ...(cost ? { validation: cost } : {}),
          ...(stac ? { stac } : {}),
          ...(profile ? { profile } : {}),
        };
        const record: ModelRecord = current
          ? {
              ...current,
              updated_at: now,
              description: meta.description ?? meta.model_description ?? current.description,
              config: { ...current.config, ...(meta.config ?? {}) },
              ...(meta.labels ? { labels: meta.labels } : {}),
              default_version: meta.make_default === false ? current.default_version : next,
              versions: [...current.versions, version],
            }
          : {
              name,
              description: meta.description ?? meta.model_description ?? '',
              default_version: next,
              created_at: now,
              updated_at: now,
              config: meta.config ?? {},
              ...(meta.labels ? { labels: meta.labels } : {}),
              versions: [version],
            };
        checkBatchAxis(record);
        const modelDir = path.join(this.root, name);
        await mkdir(modelDir, { recursive: true });
        const versionDir = path.join(modelDir, String(next));
        await rename(staging, versionDir);
        this.#leases.release(staging);
        // The record and the generation change together or not at all: keep the old record as a hard link
        // (no data blocks needed, so it works on a full disk) and put it back if either write fails.
        const recordFile = path.join(modelDir, RECORD_FILE);
        const previous = `${recordFile}.prev`;
        if (current) await link(recordFile, previous).catch(() => rm(previous, { force: true }).then(() => link(recordFile, previous)));
        try {
          await writeAtomic(recordFile, JSON.stringify(record, null, 2));
          await this.#bumpGeneration();
        } catch (err) {
          if (current) await rename(previous, recordFile);
          await rm(versionDir, { recursive: true, force: true });
          if (!current) await rm(modelDir, { recursive: true, force: true });
          throw err;
        } finally {
          await rm(previous, { force: true });
        }
        return { record, version, created: !current };
      });
    } catch (err) {
      throw storageError(err);
    } finally {
      if (ours) await this.discard(staging);
    }
  }

  /** Updates description, config, labels or the default version. */
  async update(rawName: string, patch: ModelPatch): Promise<ModelRecord> {
    const name = parseModelName(rawName);
    return this.#locked(async () => {
      const current = await this.get(name);
      for (const v of Object.keys(patch.traffic ?? {})) {
        if (!current.versions.some((x) => x.version === Number(v))) {
          throw new InferrerError('VERSION_NOT_FOUND', `model ${name} version ${v} not found`, { model: name, version: Number(v) });
        }
      }
      const share = Object.values(patch.traffic ?? {}).reduce((a, b) => a + b, 0);
      if (share > 100) throw new InferrerError('INVALID_REQUEST', `the traffic split gives ${share}% to canaries; at most 100%`, { got: share });
      if (patch.default_version !== undefined && !current.versions.some((v) => v.version === patch.default_version)) {
        throw new InferrerError('VERSION_NOT_FOUND', `model ${name} version ${patch.default_version} not found`, {
          model: name,
          version: patch.default_version,
        });
      }
      const record: ModelRecord = {
        ...current,
        updated_at: new Date().toISOString(),
        description: patch.description ?? patch.model_description ?? current.description,
        config: patch.config ? { ...current.config, ...patch.config } : current.config,
        ...(patch.labels ? { labels: patch.labels } : {}),
        default_version: patch.default_version ?? current.default_version,
        ...(patch.enabled !== undefined ? { enabled: patch.enabled } : {}),
        // No split and none asked for (a rollback without a canary) is no change either.
        ...(patch.traffic !== undefined && (current.traffic !== undefined || Object.keys(patch.traffic).length > 0) ? { traffic: patch.traffic } : {}),
      };
      checkBatchAxis(record);
      // A patch that changes nothing writes nothing (and wakes no worker).
      if (JSON.stringify({ ...record, updated_at: current.updated_at }) === JSON.stringify(current)) return current;
      await writeAtomic(path.join(this.root, name, RECORD_FILE), JSON.stringify(record, null, 2));
      await this.#bumpGeneration();
      return record;
    });
  }

  /**
   * Attaches a drift reference profile to an existing version (replacing any it had), in one atomic write
   * of the record; a capture of that version in progress ends. Workers pick it up with the generation.
   */
  async setProfile(rawName: string, version: number, profile: StoredProfile): Promise<VersionRecord> {
    const name = parseModelName(rawName);
    return this.#locked(async () => {
      const current = await this.get(name);
      const v = this.#version(current, version);
      const next: VersionRecord = { ...v, profile };
      const { capture, ...rest } = current;
      const record: ModelRecord = {
        ...rest,
        updated_at: new Date().toISOString(),
        ...(capture && capture.version !== version ? { capture } : {}),
        versions: current.versions.map((x) => (x.version === version ? next : x)),
      };
      await writeAtomic(path.join(this.root, name, RECORD_FILE), JSON.stringify(record, null, 2));
      await this.#bumpGeneration();
      return next;
    });
  }

  /** Asks the workers to gather a profile from the next `samples` rows of `version` (replaces a capture in progress). */
  async requestCapture(rawName: string, version: number, samples: number): Promise<CaptureRequest> {
    const name = parseModelName(rawName);
    return this.#locked(async () => {
      const current = await this.get(name);
      this.#version(current, version);
      const capture: CaptureRequest = { version, samples, requested_at: new Date().toISOString() };
      await writeAtomic(path.join(this.root, name, RECORD_FILE), JSON.stringify({ ...current, updated_at: capture.requested_at, capture }, null, 2));
      await this.#bumpGeneration();
      return capture;
    });
  }

  #version(record: ModelRecord, version: number): VersionRecord {
    const v = record.versions.find((x) => x.version === version);
    if (!v)
      throw new InferrerError('VERSION_NOT_FOUND', `model ${record.name} version ${version} not found`, {
        model: record.name,
        version,
        versions: record.versions.map((x) => x.version),
      });
    return v;
  }

  /**
   * Removes a whole model: one rename out of sight, the generation, then deletion in the background. All
   * or nothing: if the generation cannot be written the model is put back. Needs no free space.
   */
  async remove(rawName: string): Promise<void> {
    const name = parseModelName(rawName);
    await this.#locked(async () => {
      await this.get(name);
      const modelDir = path.join(this.root, name);
      const trash = path.join(this.root, '.trash', this.#leases.name(`${name}-${randomUUID()}`));
      await rename(modelDir, trash);
      this.#leases.hold(trash);
      try {
        await utimes(trash, new Date(), new Date()).catch(() => {});
        await this.#bumpGeneration();
      } catch (err) {
        await rename(trash, modelDir);
        this.#leases.release(trash);
        throw err;
      }
      void rm(trash, { recursive: true, force: true })
        .catch(() => {})
        .finally(() => this.#leases.release(trash));
    });
  }

  async #readRecord(name: string): Promise<ModelRecord> {
    return JSON.parse(await readFile(path.join(this.root, name, RECORD_FILE), 'utf8')) as ModelRecord;
  }

  async #bumpGeneration(): Promise<void> {
    const file = path.join(this.root, GENERATION_FILE);
    const next = (await this.generation()) + 1;
    const text = `${next}\n`;
    try {
      await writeAtomic(file, text);
    } catch (err) {
      if (storageError(err) === err) throw err;
      // A full volume has no block for a new file, but the generation's own block is there: a few digits
      // written in place (readers that catch it half-written see a change, which is all they look for).
      const fh = await open(file, 'r+');
      try {
        await fh.write(text, 0);
        await fh.truncate(Buffer.byteLength(text));
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
    this.#written = Math.max(this.#written, next);
  }

  async #locked<T>(fn: () => Promise<T>): Promise<T> {
    await mkdir(this.root, { recursive: true });
    let release: () => Promise<void>;
    try {
      release = await lockfile.lock(this.root, {
        lockfilePath: path.join(this.root, '.write.lock'),
        stale: 15_000,
        update: 5_000,
        retries: { retries: Math.ceil(this.#lockWaitMs / 100), minTimeout: 50, maxTimeout: 200, factor: 1.2 },
        realpath: false,
      });
    } catch (err) {
      const full = storageError(err);
      if (full !== err) throw full;
      throw new InferrerError('MODEL_CONFLICT', 'another writer holds the model store lock; retry', {}, { cause: err });
    }
    try {
      return await fn();
    } catch (err) {
      throw storageError(err);
    } finally {
      await release().catch(() => {});
    }
  }
}

/** `<name>.<uuid>.tmp`, as writeAtomic (@inferrer/core) names its temporary files. */
const TEMP_FILE = /\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.tmp$/;

/** Whether a folder in the store root is one that a model name maps to (parsing it gives it back). */
/**
 * Refuses a config that declares dim 0 the batch axis (`batching.batch_axis: first`) of a model with a
 * version where it cannot be one: a scalar, or a fixed dim 0. Versions whose signature is not known (no
 * validator) are left to the worker, which then runs their requests alone.
 */
function checkBatchAxis(record: ModelRecord): void {
  if (record.config.batching?.batch_axis !== 'first') return;
  for (const v of record.versions) {
    if (v.inputs.length === 0) continue;
    const problem = firstAxisProblem({ inputs: v.inputs, outputs: v.outputs });
    if (problem !== undefined) {
      throw new InferrerError(
        'INVALID_REQUEST',
        `config.batching.batch_axis "first" joins requests along dim 0 of every input and output, but in version ${v.version} of model ${record.name} ${problem}; use "auto" or "none"`,
        { field: 'config.batching.batch_axis', model: record.name, version: v.version },
      );
    }
  }
}

function isStoredName(name: string): boolean {
  try {
    return parseModelName(name) === name;
  } catch {
    return false;
  }
}

async function digest(file: string): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { bytes, sha256: hash.digest('hex') };
}
