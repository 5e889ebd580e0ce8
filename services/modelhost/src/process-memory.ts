/**
 * A ceiling on the worker's own memory (PROCESS_MEMORY_BYTES), so that a request that makes a model
 * allocate more than the machine has is refused instead of killing the worker.
 *
 * What a run allocates is chosen by the request wherever a shape comes from its values (Expand, Tile,
 * ConstantOfShape, Range, Pad, Resize to sizes it sent): a 136-byte request can ask a 100-byte model for
 * a 6 GB tensor. Without a ceiling the allocation succeeds (the kernel overcommits), the run fills it, and
 * the kernel's OOM killer ends the worker mid-run, or another process on the machine; the balancer then
 * sends the same request to the next worker, which dies too. ONNX Runtime cannot be told to stop a run,
 * and a run cannot be bounded before it starts (its sizes depend on the values), so the bound is the
 * process's data segment (RLIMIT_DATA: its private writable memory, which is where the runtime's tensors
 * live): past it an allocation fails, the runtime fails the run with "Failed to allocate memory", and the
 * request gets 413 INFERENCE_TOO_COSTLY while the worker and its other models carry on.
 *
 * Node has no call for setrlimit, so the ceiling is set on this process from outside, by util-linux's
 * `prlimit` (in every Debian image). Where it cannot be set (no prlimit, not Linux) the worker says so and
 * runs without one.
 */
import { execFileSync } from 'node:child_process';
import { openSync, readFileSync, readSync } from 'node:fs';
import { getHeapStatistics } from 'node:v8';

/** The default ceiling: 90 % of the memory limit (the container's, else the host's). */
export function defaultProcessMemory(limitBytes: number): number {
  return Math.floor(limitBytes * 0.9);
}

/** Sets this process's data-segment ceiling (soft and hard) to `bytes`; the reason it could not, if it could not. */
export function limitProcessMemory(
  bytes: number,
  run: (file: string, args: string[]) => unknown = (file, args) => execFileSync(file, args, { stdio: 'pipe', timeout: 5000 }),
): string | undefined {
  if (process.platform !== 'linux') return `not Linux (${process.platform})`;
  try {
    run('prlimit', ['--pid', String(process.pid), `--data=${bytes}:${bytes}`]);
    return undefined;
  } catch (err) {
    return (err as Error).message.split('\n')[0]!.slice(0, 200);
  }
}

/**
 * What this process may still take under a data-segment ceiling of `bytes`: the ceiling less its data
 * segment now (VmData in /proc/self/status, what RLIMIT_DATA counts). Infinity where it cannot be read.
 */
export function memoryRoom(bytes: number, status = () => readFileSync('/proc/self/status', 'utf8')): () => number {
  return () => {
    let kb: string | undefined;
    try {
      kb = /^VmData:\s+(\d+) kB/m.exec(status())?.[1];
    } catch {
      // not Linux, or no /proc
    }
    return kb === undefined ? Number.POSITIVE_INFINITY : bytes - Number(kb) * 1024;
  };
}

let reader: (() => number) | undefined;

/**
 * This process's resident memory outside V8's heap (resident bytes less the heap's size), read at every load
 * and eviction and by `GET /v1/models`; one reader per process. `process.memoryUsage()` reads
 * /proc/self/stat, which the kernel builds by walking every thread of the process (a worker has dozens: the
 * runtime's, libuv's, V8's); /proc/self/statm is two counters, read again through one kept descriptor. Its
 * unit, the page, is learned from the first reading beside Node's. Where /proc cannot be read (not Linux),
 * Node's reading is used.
 *
 * For a second or two after a collection shrinks V8's heap, the pages it freed are still resident (a helper
 * thread unmaps them) but no longer in the heap's size, and read as native memory here. Taking off the
 * largest heap size of the last few seconds instead was tried: the budget's watch, which learns the worker's
 * own memory as the least it has read, then learned it too low whenever the pages had gone sooner, and
 * unloaded models for memory they did not hold (bench/README.md part 9).
 */
export function nativeResidentReader(): () => number {
  reader ??= createReader();
  return reader;
}

function createReader(): () => number {
  const heap = (): number => getHeapStatistics().total_heap_size;
  try {
    const fd = openSync('/proc/self/statm', 'r');
    const buf = Buffer.alloc(256);
    // statm: size resident shared text lib data dirty, in pages; reading from offset 0 builds it anew.
    const pages = (): number => Number(buf.toString('latin1', 0, readSync(fd, buf, 0, buf.length, 0)).split(' ', 2)[1]);
    const first = pages();
    if (first > 0) {
      const page = 2 ** Math.round(Math.log2(process.memoryUsage.rss() / first));
      return () => pages() * page - heap();
    }
  } catch {
    // not Linux, or no /proc: Node's reading
  }
  return () => process.memoryUsage.rss() - heap();
}
