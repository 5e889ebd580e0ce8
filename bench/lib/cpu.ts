/**
 * CPU time of process trees, from /proc (Linux only; elsewhere every reading is undefined). Used to show
 * where a request's CPU goes: per service, in microseconds of CPU per request.
 */
import { readFileSync, readdirSync } from 'node:fs';

const TICKS_PER_S = 100; // USER_HZ: 100 on every Linux architecture Node supports

/** A process's parent and CPU ticks (all its threads), or with `thread` those of one of its threads. */
function statOf(pid: number, thread?: number): { ppid: number; ticks: number } | undefined {
  try {
    const text = readFileSync(thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) };
  } catch {
    return undefined;
  }
}

/** `root` and every live descendant. */
function tree(root: number): number[] {
  const parents = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const s = statOf(pid);
    if (!s) continue;
    const list = parents.get(s.ppid) ?? [];
    list.push(pid);
    parents.set(s.ppid, list);
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    out.push(p);
    for (const c of parents.get(p) ?? []) walk(c);
  };
  walk(root);
  return out;
}

/** CPU seconds (user + system) used so far by each named process tree. */
export function cpuSeconds(roots: Record<string, number | undefined>): Record<string, number> | undefined {
  if (process.platform !== 'linux') return undefined;
  const out: Record<string, number> = {};
  for (const [name, pid] of Object.entries(roots)) {
    if (pid === undefined) continue;
    let ticks = 0;
    for (const p of tree(pid)) ticks += statOf(p)?.ticks ?? 0;
    out[name] = ticks / TICKS_PER_S;
  }
  return out;
}

/** CPU seconds used so far by the main thread of each named process (a Node service's event loop). */
export function mainThreadSeconds(roots: Record<string, number | undefined>): Record<string, number> | undefined {
  if (process.platform !== 'linux') return undefined;
  const out: Record<string, number> = {};
  for (const [name, pid] of Object.entries(roots)) {
    if (pid === undefined) continue;
    out[name] = (statOf(pid, pid)?.ticks ?? 0) / TICKS_PER_S;
  }
  return out;
}

export function cpuDelta(after: Record<string, number> | undefined, before: Record<string, number> | undefined): Record<string, number> | undefined {
  if (!after || !before) return undefined;
  const out: Record<string, number> = {};
  for (const k of Object.keys(after)) out[k] = after[k]! - (before[k] ?? 0);
  return out;
}

/** CPU seconds (all processes, all cores) the machine has been busy so far; undefined off Linux. */
export function machineBusySeconds(): number | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    return (f.reduce((a, b) => a + b, 0) - idle) / TICKS_PER_S;
  } catch {
    return undefined;
  }
}
