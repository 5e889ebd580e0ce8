/**
 * Notices store changes: an fs watch on the store root (fast, where the filesystem reports events) plus a
 * periodic read of the store generation (always, since network volumes often report nothing). Either
 * way the registry refreshes once per new generation.
 */
import { watch, type FSWatcher } from 'node:fs';
import type { ModelStore } from '@inferrer/model-store';
import type { Logger } from '@inferrer/telemetry';
import type { ModelRegistry } from './registry.ts';

export class StoreWatcher {
  readonly #store: ModelStore;
  readonly #registry: ModelRegistry;
  readonly #log: Logger;
  readonly #intervalMs: number;
  #generation = -1;
  #timer: NodeJS.Timeout | undefined;
  #fsWatch: FSWatcher | undefined;
  #running: Promise<void> | undefined;
  #again = false;

  readonly #fsEvents: boolean;

  constructor(store: ModelStore, registry: ModelRegistry, logger: Logger, intervalMs: number, fsEvents = true) {
    this.#fsEvents = fsEvents;
    this.#store = store;
    this.#registry = registry;
    this.#log = logger.child({ module: 'watcher' });
    this.#intervalMs = intervalMs;
  }

  async start(): Promise<void> {
    this.#generation = await this.#store.generation();
    this.#timer = setInterval(() => void this.check(), this.#intervalMs);
    this.#timer.unref();
    if (!this.#fsEvents) return;
    try {
      this.#fsWatch = watch(this.#store.root, { persistent: false }, (_event, file) => {
        if (file === '.generation') void this.check();
      });
      this.#fsWatch.on('error', () => this.#fsWatch?.close());
    } catch {
      // Polling alone still works.
    }
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#fsWatch?.close();
  }

  /**
   * Undefined when the registry has been refreshed at `generation` or later; else one more check of the
   * store, which resolves when done (a store that still reads older, as an NFS client's attribute cache
   * may, is not waited for).
   */
  catchUp(generation: number): Promise<void> | undefined {
    return generation <= this.#generation ? undefined : this.check();
  }

  /** Refreshes the registry if the generation moved; concurrent calls collapse into one more pass. */
  async check(): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        const g = await this.#store.generation();
        if (g === this.#generation) continue;
        this.#log.debug('store changed', { generation: g });
        try {
          await this.#registry.refresh();
          this.#generation = g;
        } catch (err) {
          this.#log.error('refresh after a store change failed', { err });
        }
      } while (this.#again);
    })().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }
}
