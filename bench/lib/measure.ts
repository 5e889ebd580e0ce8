/**
 * One measured load point with its CPU bill: the load result, the CPU each server process tree used per
 * answered request during the measured window, and how busy the rest of the machine was (other
 * processes: the noise that a shared machine adds).
 */
import { cpuDelta, cpuSeconds, machineBusySeconds, mainThreadSeconds } from './cpu.ts';
import { type AnyLoadSpec, type LoadResult, runLoad } from './load.ts';

export interface CpuBill {
  /** Microseconds of CPU per 2xx answer, per server process tree (each with its threads and children). */
  perRequestUs: Record<string, number>;
  /** Of perRequestUs, what each process's main thread (a Node service's event loop) used. */
  mainThreadUs: Record<string, number>;
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

/**
 * The CPU that `pids` (process trees) and the machine use between `open` and `close` (the measured window),
 * turned into a CpuBill by `bill` once the window's answers are counted.
 */
export class CpuWindow {
  readonly #pids: Record<string, number | undefined>;
  #before: Record<string, number> | undefined;
  #after: Record<string, number> | undefined;
  #mainBefore: Record<string, number> | undefined;
  #mainAfter: Record<string, number> | undefined;
  #busyBefore: number | undefined;
  #busyAfter: number | undefined;

  constructor(pids: Record<string, number | undefined>) {
    this.#pids = pids;
  }

  open(): void {
    this.#before = cpuSeconds(this.#pids);
    this.#mainBefore = mainThreadSeconds(this.#pids);
    this.#busyBefore = machineBusySeconds();
  }

  close(): void {
    this.#after = cpuSeconds(this.#pids);
    this.#mainAfter = mainThreadSeconds(this.#pids);
    this.#busyAfter = machineBusySeconds();
  }

  /** `ok`: 2xx answers in the window; `generatorCpuS`: what the load generator used in it; `seconds`: its length. */
  bill(ok: number, generatorCpuS: number, seconds: number): CpuBill | undefined {
    const used = cpuDelta(this.#after, this.#before);
    if (!used || this.#busyBefore === undefined || this.#busyAfter === undefined || ok === 0) return undefined;
    const perRequestUs: Record<string, number> = {};
    let server = 0;
    for (const [k, v] of Object.entries(used)) {
      perRequestUs[k] = (v / ok) * 1e6;
      server += v;
    }
    const mainThreadUs: Record<string, number> = {};
    for (const [k, v] of Object.entries(cpuDelta(this.#mainAfter, this.#mainBefore) ?? {})) mainThreadUs[k] = (v / ok) * 1e6;
    return {
      perRequestUs,
      mainThreadUs,
      serverUsPerRequest: (server / ok) * 1e6,
      generatorUsPerRequest: (generatorCpuS / ok) * 1e6,
      otherCores: Math.max(0, (this.#busyAfter - this.#busyBefore - server - generatorCpuS) / seconds),
    };
  }
}

export async function measure<S extends AnyLoadSpec>(spec: S, pids: Record<string, number | undefined>, generator?: string): Promise<Measured> {
  const window = new CpuWindow(pids);
  const load = await runLoad(
    spec,
    () => window.open(),
    () => window.close(),
    generator,
  );
  const cpu = window.bill(load.ok, load.generatorCpuS, load.seconds);
  return cpu ? { load, cpu } : { load };
}
