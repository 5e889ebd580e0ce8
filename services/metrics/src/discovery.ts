/**
 * Where the modelhosts are: the configured list (local launcher), plus every address a DNS name resolves
 * to, asked again on each scrape so scaling shows up at once: Docker Swarm's `tasks.<service>` (one A
 * record per task; compose carries the same names as network aliases) and a Kubernetes headless Service
 * (one A record per ready pod, i.e. the Service's endpoints).
 */
import dns from 'node:dns/promises';

export interface DiscoveryOptions {
  modelhosts: string[];
  modelhostDns: { name: string; port: number }[];
}

export type Lookup = (name: string) => Promise<{ address: string; family: number }[]>;

const defaultLookup: Lookup = (name) => dns.lookup(name, { all: true });

export function createDiscovery(opts: DiscoveryOptions, lookup: Lookup = defaultLookup): () => Promise<{ urls: string[]; errors: string[] }> {
  return async () => {
    const urls = new Set(opts.modelhosts);
    const errors: string[] = [];
    await Promise.all(
      opts.modelhostDns.map(async ({ name, port }) => {
        try {
          for (const a of await lookup(name)) urls.add(`http://${a.family === 6 ? `[${a.address}]` : a.address}:${port}`);
        } catch (err) {
          // No task running yet (ENOTFOUND) is a state, not a crash: report it and try again next time.
          errors.push(`${name}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        }
      }),
    );
    return { urls: [...urls].sort(), errors };
  };
}
