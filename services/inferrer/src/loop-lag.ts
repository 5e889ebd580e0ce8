/**
 * The Inferrer's event-loop delay over the last second: how late its clocks look at what arrived. Under
 * deep overload the loop is busy for hundreds of milliseconds at a time, and a request (or a body's
 * bytes) waits that long in the kernel before it is read; deadline.ts and the body guard take that time
 * into account instead of charging it to the client.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

/** The timer the delay is measured with fires this often (ms); its own period is not delay. */
const RESOLUTION_MS = 10;

class LoopLag {
  ms = 0;
  readonly #histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });

  constructor() {
    this.#histogram.enable();
    setInterval(() => {
      const h = this.#histogram;
      this.ms = h.count > 0 ? Math.max(0, h.percentile(99) / 1e6 - RESOLUTION_MS) : 0;
      h.reset();
    }, 1000).unref();
  }
}

let lag: LoopLag | undefined;

/** The 99th percentile of the event loop's delay over the last second (ms); measured from the first call on. */
export function loopLagMs(): number {
  lag ??= new LoopLag();
  return lag.ms;
}
