/** nginx's stub_status page, read and kept as numbers (the balancer serves it at /nginx/status). */

export interface NginxStatus {
  up: boolean;
  error?: string;
  active: number;
  accepted: number;
  handled: number;
  requests: number;
  reading: number;
  writing: number;
  waiting: number;
}

/**
 *   Active connections: 2
 *   server accepts handled requests
 *    16 16 31
 *   Reading: 0 Writing: 1 Waiting: 1
 */
export function parseStubStatus(text: string): Omit<NginxStatus, 'up' | 'error'> {
  const active = /Active connections:\s*(\d+)/.exec(text);
  const counts = /accepts handled requests\s+(\d+)\s+(\d+)\s+(\d+)/.exec(text);
  const rww = /Reading:\s*(\d+)\s+Writing:\s*(\d+)\s+Waiting:\s*(\d+)/.exec(text);
  if (!active || !counts || !rww) throw new Error('not an nginx stub_status page');
  return {
    active: Number(active[1]),
    accepted: Number(counts[1]),
    handled: Number(counts[2]),
    requests: Number(counts[3]),
    reading: Number(rww[1]),
    writing: Number(rww[2]),
    waiting: Number(rww[3]),
  };
}

export class NginxCollector {
  readonly #url: string;
  readonly #timeoutMs: number;
  status: NginxStatus | undefined;

  constructor(url: string, timeoutMs: number) {
    this.#url = url;
    this.#timeoutMs = timeoutMs;
  }

  async collect(): Promise<void> {
    try {
      const res = await fetch(this.#url, { signal: AbortSignal.timeout(this.#timeoutMs) });
      if (!res.ok) throw new Error(`${this.#url} answered ${res.status}`);
      this.status = { up: true, ...parseStubStatus(await res.text()) };
    } catch (err) {
      // Keep the last counts so counters never go backwards while nginx is away.
      const last = this.status ?? { active: 0, accepted: 0, handled: 0, requests: 0, reading: 0, writing: 0, waiting: 0 };
      this.status = { ...last, up: false, error: (err as Error).message, active: 0, reading: 0, writing: 0, waiting: 0 };
    }
  }
}
