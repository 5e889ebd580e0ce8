/**
 * One measured load point with its CPU bill: the load result, the CPU each server process tree used per
 * answered request during the measured window, and how busy the rest of the machine was (other
 * processes: the noise that a shared machine adds).
 */
import { cpuDelta, cpuSeconds, machineBusySeconds } from './cpu.ts';
import { type AnyLoadSpec, type LoadResult, runLoad } from './load.ts';

export interface CpuBill {
  /** Microseconds of CPU per 2xx answer, per server process tree (each with its threads and children). */
  perRequestUs: Record<string, number>;
  /** Sum over the server's processes. */
  serverUsPerRequest: number;
  generatorUsPerRequest: number;
  /** Cores busy with anything else during the window (other processes, the kernel); ≈ 0 on a quiet machine. */
  otherCores: number;
}

export interface Measured {
  load: LoadResult;
  cpu?: CpuBill;
}

export async function measure<S extends AnyLoadSpec>(spec: S, pids: Record<string, number | undefined>, generator?: string): Promise<Measured> {
  let before: Record<string, number> | undefined;
  let after: Record<string, number> | undefined;
  let busyBefore: number | undefined;
  let busyAfter: number | undefined;
  const load = await runLoad(
    spec,
    () => {
      before = cpuSeconds(pids);
      busyBefore = machineBusySeconds();
    },
    () => {
      after = cpuSeconds(pids);
      busyAfter = machineBusySeconds();
    },
    generator,
  );
  const used = cpuDelta(after, before);
  if (!used || busyBefore === undefined || busyAfter === undefined || load.ok === 0) return { load };
  const perRequestUs: Record<string, number> = {};
  let server = 0;
  for (const [k, v] of Object.entries(used)) {
    perRequestUs[k] = (v / load.ok) * 1e6;
    server += v;
  }
  return {
    load,
    cpu: {
      perRequestUs,
      serverUsPerRequest: (server / load.ok) * 1e6,
      generatorUsPerRequest: (load.generatorCpuS / load.ok) * 1e6,
      otherCores: Math.max(0, (busyAfter - busyBefore - server - load.generatorCpuS) / load.seconds),
    },
  };
}
