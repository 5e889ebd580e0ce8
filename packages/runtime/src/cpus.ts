/**
 * How many cores this process may use: the cores it may run on (os.availableParallelism follows the CPU
 * affinity), capped by a container's CPU quota (cgroup v2 cpu.max, or v1 cpu.cfs_quota_us ÷
 * cpu.cfs_period_us), unless a setting says (the launcher gives each of N modelhosts on one machine its
 * share: CPUS = cores ÷ N).
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';

export interface CpuBudget {
  cpus: number;
  /** Where the figure comes from, for the logs and the model's execution plan. */
  source: string;
}

function read(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** The container's CPU quota in cores (fractions round up), or undefined when there is none. */
export function cgroupCpuQuota(root = '/sys/fs/cgroup'): number | undefined {
  const v2 = read(`${root}/cpu.max`);
  if (v2 !== undefined) {
    const [quota, period] = v2.split(/\s+/);
    if (quota === 'max' || !quota || !period) return undefined;
    const q = Number(quota) / Number(period);
    return Number.isFinite(q) && q > 0 ? Math.max(1, Math.ceil(q - 1e-9)) : undefined;
  }
  const quota = Number(read(`${root}/cpu/cpu.cfs_quota_us`));
  const period = Number(read(`${root}/cpu/cpu.cfs_period_us`));
  if (!(quota > 0) || !(period > 0)) return undefined;
  return Math.max(1, Math.ceil(quota / period - 1e-9));
}

export function cpuBudget(setting?: number, root?: string): CpuBudget {
  if (setting !== undefined && setting > 0) return { cpus: Math.floor(setting), source: 'CPUS' };
  const cores = os.availableParallelism();
  const quota = cgroupCpuQuota(root);
  if (quota !== undefined && quota < cores) return { cpus: quota, source: `the container's CPU quota (${quota} of ${cores} cores)` };
  return { cpus: cores, source: `${cores} core${cores === 1 ? '' : 's'} available` };
}
