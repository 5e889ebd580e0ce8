/**
 * Who holds a folder in `.staging` or `.trash`. Several writers (Inferrer replicas) share one volume, so a
 * folder there is either work in progress of a live writer or the leftover of one that died (kill -9
 * mid-upload, a crash mid-delete). Each folder is named after its owner (`<host>~<pid>~…`) and touched
 * every few seconds while it is held, so any writer can tell the two apart without asking anyone:
 *
 * - held by this process: in progress;
 * - owned by another process on this host that no longer runs: a leftover, reclaimed at once;
 * - anything else (other hosts, older names): a leftover once untouched for longer than the lease.
 */
import os from 'node:os';
import { utimes } from 'node:fs/promises';
import path from 'node:path';

const HOST =
  os
    .hostname()
    .replace(/[^A-Za-z0-9.-]/g, '-')
    .slice(0, 64) || 'host';
const OWNER = /^([A-Za-z0-9.-]+)~(\d+)~/;

export class Leases {
  /** A folder untouched for this long belongs to no live writer. */
  readonly leaseMs: number;
  readonly #held = new Set<string>();
  #timer: NodeJS.Timeout | undefined;

  constructor(leaseMs: number) {
    this.leaseMs = leaseMs;
  }

  /** A folder name this process owns: `<host>~<pid>~<suffix>`. */
  name(suffix: string): string {
    return `${HOST}~${process.pid}~${suffix}`;
  }

  hold(dir: string): void {
    this.#held.add(path.resolve(dir));
    if (!this.#timer) {
      this.#timer = setInterval(() => void this.#touch(), Math.max(50, Math.floor(this.leaseMs / 6)));
      this.#timer.unref();
    }
  }

  release(dir: string): void {
    this.#held.delete(path.resolve(dir));
    if (this.#held.size === 0 && this.#timer) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  /** Whether `dir` (last touched at `mtimeMs`) is a leftover that no live writer holds. */
  isLeftover(dir: string, mtimeMs: number, now = Date.now()): boolean {
    if (this.#held.has(path.resolve(dir))) return false;
    const owner = OWNER.exec(path.basename(dir));
    if (owner && owner[1] === HOST) {
      const pid = Number(owner[2]);
      if (pid === process.pid) return now - mtimeMs > this.leaseMs; // an earlier process with our pid (a restarted container)
      if (!alive(pid)) return true;
    }
    return now - mtimeMs > this.leaseMs;
  }

  async #touch(): Promise<void> {
    const now = new Date();
    for (const dir of this.#held) await utimes(dir, now, now).catch(() => this.release(dir));
  }
}

/** This process as an owner tag (`<host>~<pid>`), for records that a live writer holds. */
export function ownerTag(): string {
  return `${HOST}~${process.pid}`;
}

/** Whether the process an owner tag names is certainly gone: it ran on this host and no longer runs. */
export function ownerGone(tag: string): boolean {
  const owner = OWNER.exec(`${tag}~`);
  return owner !== null && owner[1] === HOST && Number(owner[2]) !== process.pid && !alive(Number(owner[2]));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
