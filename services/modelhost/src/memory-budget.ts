/**
 * The memory budget of one modelhost for the models it holds (MODEL_MEMORY_BYTES): what each loaded model
 * costs, what a load will need, and which idle models to unload to make room.
 *
 * A model's cost is measured when it loads: the resident memory the process gained while its sessions were
 * created and warmed (loads run one at a time on a worker, so nothing else loads meanwhile). A measurement
 * can only tell what the process had to take from the system, though: memory freed by an unloaded model
 * is reused by the next one without growing the process. So the cost counted is never below what the
 * upload's validation saw one session of this version hold once created (times its instances), on a fresh
 * runtime thread of a process of its own (`validation.resident_bytes`). Creating a session takes more
 * than it keeps (the file's bytes, copies of the weights, all freed once it is made; three halves of what
 * it keeps for an MLP, `bench/README.md` part 9), so before a load the room made is for its peak there
 * (`validation.memory_bytes`) or the last measurement of the version here, the larger.
 *
 * Counting is not enough to hold the budget in real memory: what an unloaded model gave back stays in the
 * allocator (fragmentation) and the process's memory drifts above what its models count. So the budget
 * also watches the process: its resident memory outside the main thread's JavaScript heap (garbage there
 * waits for V8's next full collection: 40–85 MB of it between two in the bench's workers, whatever their
 * models) above the least it was seen holding besides its models (`resident`); room is made, and models
 * unloaded after a load, by the larger of the two figures. That works only where released memory can go back to the system:
 * glibc raises its mmap threshold after the first large block is freed, after which a released session's
 * weights stay in the heap and the process grows whatever is unloaded; the launcher and the images fix the
 * threshold (MALLOC_MMAP_THRESHOLD_=131072), so a released model's memory is given back.
 *
 * Which idle models go first is by how often they are asked for per byte they hold (lookups of every
 * version, loaded or not, halved every few hundred lookups so that old traffic fades, as in TinyLFU), least
 * recently used first among equals: a model asked for once does not push out one asked for every second,
 * it goes itself at the next load.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { VersionRecord } from '@inferrer/model-store';

/** What a loaded model looks like to the budget. */
export interface Resident {
  name: string;
  version: number;
  costBytes: number;
  lastUsed: number;
  /** Requests that hold it (from lookup to answer). */
  leases: number;
  pinned: boolean;
  preload: boolean;
}

/** A cgroup limit above this is "no limit" (cgroup v1 reports 2^63 rounded down to pages). */
const NO_LIMIT = 2 ** 60;
const MiB = 1024 * 1024;
/** Room made beyond its file for a model that shares its graph's session (its weights' tensors, a template's first creation). */
const SHARED_EXTRA_BYTES = 64 * 1024;
/** Lookups between two halvings of every count: at least this, and at least ten per model loaded. */
const AGING_LOOKUPS = 1000;

/** The memory this process may use: its cgroup's limit (v2, then v1), else the host's memory. */
export function memoryLimit(read: (file: string) => string = (f) => readFileSync(f, 'utf8')): { bytes: number; source: 'cgroup' | 'host' } {
  for (const file of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    try {
      const text = read(file).trim();
      const n = Number(text);
      if (text !== 'max' && Number.isFinite(n) && n > 0 && n < NO_LIMIT) return { bytes: n, source: 'cgroup' };
    } catch {
      // not there: the next one, or the host
    }
  }
  return { bytes: os.totalmem(), source: 'host' };
}

/**
 * The budget when MODEL_MEMORY_BYTES is not set: 70 % of the container's (or host's) memory, less what the
 * worker itself holds once started (`baselineBytes`), at least 64 MiB. The rest is headroom for requests
 * in flight and the allocator's slack.
 */
export function defaultBudget(limitBytes: number, baselineBytes: number): number {
  return Math.max(64 * MiB, Math.floor(limitBytes * 0.7 - baselineBytes));
}

export class MemoryBudget {
  readonly limitBytes: number;
  /** Last measured cost of a version (with its instances) on this worker: `${name}@${version}x${instances}`. */
  readonly #measured = new Map<string, number>();

  /**
   * Lookups per version on this worker (by name, then version), halved every aging window. By name first:
   * a model's name is a string already hashed, where a `name@version` key would be a new string to hash at
   * every lookup, and choosing what to unload looks up every loaded model.
   */
  readonly #lookups = new Map<string, Map<number, number>>();
  #sinceAging = 0;
  /** The least resident memory seen beside what the models counted: the process's own. */
  #ownBytes = Number.POSITIVE_INFINITY;

  constructor(limitBytes: number) {
    this.limitBytes = limitBytes;
  }

  /** Counts a lookup of a version (a request for it, found loaded or not); `loaded` models set the window. */
  touch(name: string, version: number, loaded: number): void {
    let versions = this.#lookups.get(name);
    if (versions === undefined) this.#lookups.set(name, (versions = new Map()));
    versions.set(version, (versions.get(version) ?? 0) + 1);
    if (++this.#sinceAging < Math.max(AGING_LOOKUPS, 10 * loaded)) return;
    this.#sinceAging = 0;
    for (const [model, counts] of this.#lookups) {
      for (const [v, n] of counts) {
        if (n < 2) counts.delete(v);
        else counts.set(v, n / 2);
      }
      if (counts.size === 0) this.#lookups.delete(model);
    }
  }

  /** A version's lookups, aged. */
  frequency(name: string, version: number): number {
    return this.#lookups.get(name)?.get(version) ?? 0;
  }

  /**
   * What the models hold in real memory by the process's resident bytes now (`rssBytes`) and what they
   * count (`countedBytes`): the resident bytes less the process's own, the least resident memory ever seen
   * beside the count.
   */
  resident(rssBytes: number, countedBytes: number): number {
    this.#ownBytes = Math.min(this.#ownBytes, rssBytes - countedBytes);
    return rssBytes - this.#ownBytes;
  }

  /**
   * What creating a version's sessions takes at its peak: its validation's measurement, else twice its file
   * plus 1 MiB. A model that shares its graph's session (`shared`) reads its weights: its file and 64 KiB.
   */
  peak(version: VersionRecord, instances: number, shared = false): number {
    if (shared) return version.bytes + SHARED_EXTRA_BYTES;
    if (version.validation && version.validation.memory_bytes > 0) return version.validation.memory_bytes * instances;
    return (2 * version.bytes + MiB) * instances;
  }

  /**
   * The least a loaded version counts: what its session held at validation, never below its file's bytes
   * (the weights are copied into the session; records validated before the reading was made exact can
   * carry a low one), else its peak (or the file's guess). A model that shares its graph's session holds
   * its weights: its file's bytes.
   */
  floor(version: VersionRecord, instances: number, shared = false): number {
    if (shared) return version.bytes;
    const held = version.validation?.resident_bytes;
    const peak = this.peak(version, instances);
    if (held !== undefined && held > 0) return Math.max(Math.min(held, peak / instances), version.bytes) * instances;
    return peak;
  }

  /** What a load of this version must find room for. */
  expected(id: string, version: VersionRecord, instances: number, shared = false): number {
    return Math.max(this.peak(version, instances, shared), this.#measured.get(`${id}x${instances}`) ?? 0);
  }

  /**
   * Records a load's measurement; returns the cost to count for it. A model that shares its graph's session
   * counts its weights alone: what the worker gained over its load is the template's session when it is the
   * first of its structure (kept for the others, the worker's own from then on) and the plan's measurement,
   * which is given back; counted, they would teach the budget's watch an own memory too low.
   */
  measured(id: string, version: VersionRecord, instances: number, grewBytes: number, shared = false): number {
    if (shared) return this.floor(version, instances, true);
    this.#measured.set(`${id}x${instances}`, Math.max(0, grewBytes));
    return Math.max(this.floor(version, instances, shared), grewBytes);
  }

  /** Bytes counted for `models`. */
  static used(models: Iterable<{ costBytes: number }>): number {
    let n = 0;
    for (const m of models) n += m.costBytes;
    return n;
  }

  /**
   * The models to unload so that `needBytes` more fit beside `usedBytes` and at least `count` models go:
   * idle ones (no lease, not `busy`), never pinned ones; models without `preload` before those with it,
   * the fewest lookups per byte first, then the least recently used. Undefined when even all of them would
   * not do.
   */
  victims<T extends Resident>(models: Iterable<T>, usedBytes: number, needBytes: number, busy: (m: T) => boolean, count = 0): T[] | undefined {
    let over = usedBytes + needBytes - this.limitBytes;
    if (over <= 0 && count <= 0) return [];
    // Each candidate's place is worked out once, not in every comparison of the sort: with two hundred
    // models loaded, choosing took a tenth of a load's time on the event loop.
    const idle: { m: T; preload: number; score: number }[] = [];
    for (const m of models) {
      if (m.leases === 0 && !m.pinned && !busy(m))
        idle.push({ m, preload: Number(m.preload), score: this.frequency(m.name, m.version) / Math.max(1, m.costBytes) });
    }
    idle.sort((a, b) => a.preload - b.preload || a.score - b.score || a.m.lastUsed - b.m.lastUsed);
    const out: T[] = [];
    for (const { m } of idle) {
      if (over <= 0 && out.length >= count) break;
      out.push(m);
      over -= m.costBytes;
    }
    return over <= 0 && out.length >= count ? out : undefined;
  }
}
