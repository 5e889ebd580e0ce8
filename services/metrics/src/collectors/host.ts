/**
 * Host figures of the machine the metrics service runs on: CPU use, load, memory, disk, network, and GPU
 * utilisation and memory from `nvidia-smi` where it is installed (absent: no GPU figures, no error).
 * In a container these are what the container sees (node-exporter in the deploy files covers every node).
 */
import { execFile } from 'node:child_process';
import { readFile, statfs } from 'node:fs/promises';
import os from 'node:os';

export interface GpuStatus {
  index: string;
  name: string;
  utilization_ratio: number;
  memory_used_bytes: number;
  memory_total_bytes: number;
}

export interface HostStatus {
  hostname: string;
  cpu_cores: number;
  cpu_usage_ratio: number;
  load_average: { '1m': number; '5m': number; '15m': number };
  memory_total_bytes: number;
  memory_available_bytes: number;
  disk: { path: string; total_bytes: number; free_bytes: number } | null;
  network: { device: string; receive_bytes: number; transmit_bytes: number }[];
  gpus: GpuStatus[];
}

const MIB = 1024 * 1024;

export function parseNvidiaSmi(csv: string): GpuStatus[] {
  return csv
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => {
      const [index, name, util, used, total] = l.split(',').map((x) => x.trim());
      return {
        index: index!,
        name: name!,
        utilization_ratio: Number(util) / 100 || 0,
        memory_used_bytes: Number(used) * MIB || 0,
        memory_total_bytes: Number(total) * MIB || 0,
      };
    });
}

/** /proc/net/dev: bytes received and sent per interface (loopback left out). */
export function parseNetDev(text: string): HostStatus['network'] {
  const out: HostStatus['network'] = [];
  for (const line of text.split('\n').slice(2)) {
    const m = /^\s*([^:\s]+):\s*(.*)$/.exec(line);
    if (!m || m[1] === 'lo') continue;
    const f = m[2]!.trim().split(/\s+/).map(Number);
    out.push({ device: m[1]!, receive_bytes: f[0] ?? 0, transmit_bytes: f[8] ?? 0 });
  }
  return out;
}

export class HostCollector {
  readonly #diskPath: string;
  #nvidiaSmi: string | undefined;
  #lastCpu: { idle: number; total: number } | undefined;
  status: HostStatus | undefined;

  constructor(diskPath: string, nvidiaSmi: string | undefined) {
    this.#diskPath = diskPath;
    this.#nvidiaSmi = nvidiaSmi;
  }

  async collect(): Promise<void> {
    const cpus = os.cpus();
    const cpu = cpus.reduce(
      (a, c) => ({ idle: a.idle + c.times.idle, total: a.total + c.times.user + c.times.nice + c.times.sys + c.times.idle + c.times.irq }),
      { idle: 0, total: 0 },
    );
    const prev = this.#lastCpu;
    this.#lastCpu = cpu;
    const usage = prev && cpu.total > prev.total ? 1 - (cpu.idle - prev.idle) / (cpu.total - prev.total) : 0;
    const [load1, load5, load15] = os.loadavg();
    const [available, disk, network, gpus] = await Promise.all([memAvailable(), this.#disk(), netDev(), this.#gpus()]);
    this.status = {
      hostname: os.hostname(),
      cpu_cores: cpus.length,
      cpu_usage_ratio: Number(Math.max(0, Math.min(1, usage)).toFixed(4)),
      load_average: { '1m': load1!, '5m': load5!, '15m': load15! },
      memory_total_bytes: os.totalmem(),
      memory_available_bytes: available,
      disk,
      network,
      gpus,
    };
  }

  async #disk(): Promise<HostStatus['disk']> {
    try {
      const s = await statfs(this.#diskPath);
      return { path: this.#diskPath, total_bytes: s.blocks * s.bsize, free_bytes: s.bavail * s.bsize };
    } catch {
      return null;
    }
  }

  #gpus(): Promise<GpuStatus[]> {
    const bin = this.#nvidiaSmi;
    if (!bin) return Promise.resolve([]);
    return new Promise((resolve) => {
      execFile(bin, ['--query-gpu=index,name,utilization.gpu,memory.used,memory.total', '--format=csv,noheader,nounits'], { timeout: 5000 }, (err, stdout) => {
        if (err) {
          // Not installed (or no driver): stop asking.
          if ((err as NodeJS.ErrnoException).code === 'ENOENT' || typeof (err as { code?: unknown }).code === 'number') this.#nvidiaSmi = undefined;
          resolve([]);
          return;
        }
        resolve(parseNvidiaSmi(stdout));
      });
    });
  }
}

async function memAvailable(): Promise<number> {
  try {
    const m = /MemAvailable:\s+(\d+) kB/.exec(await readFile('/proc/meminfo', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return os.freemem();
}

async function netDev(): Promise<HostStatus['network']> {
  try {
    return parseNetDev(await readFile('/proc/net/dev', 'utf8'));
  } catch {
    return [];
  }
}
