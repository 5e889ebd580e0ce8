/**
 * API keys with scopes, and rate limits. Keys come from API_KEYS_FILE
 * (`{"keys": [{"key": "…", "scopes": ["admin", "predict"], "name": "ci"}]}`), travel as
 * `Authorization: Bearer <key>`, and are compared in constant time (SHA-256 digests, every key checked).
 *
 * Scopes: `admin` manages models (upload, update, delete, load/unload, import); `predict` runs inference and
 * reads metadata. Health, metrics, docs and the welcome routes are public. Each route declares the scope it
 * needs next to its handler (http/route.ts); the router hands that scope to `check`, so the check always
 * concerns the route that will run. Without keys the prediction routes are open and the management routes
 * are closed, unless the operator starts with AUTH_DISABLED.
 * 401: no or unknown credentials; 403: a valid key without the scope, or management closed.
 *
 * A key's batch jobs are its own (docs/jobs.md#who-sees-a-job): the principal carries the `owner` a job
 * records, `key:<name>`, or for a key without a name a fingerprint of the key, so its jobs follow the key
 * and not its place in the file.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { z } from 'zod';
import { InferrerError } from '@inferrer/core';
import type { InferrerConfig } from './config.ts';
import { ClientAddresses } from './http/client-address.ts';
import type { Access } from './http/route.ts';

export type Scope = Exclude<Access, 'public'>;

const KeysFileSchema = z
  .object({
    keys: z
      .array(
        z
          .object({
            key: z.string().min(16, 'keys must be at least 16 characters'),
            scopes: z.array(z.enum(['admin', 'predict'])).min(1),
            // Logged, and kept with the key's batch jobs: a plain word, never one an unnamed key's `#N` could be.
            name: z
              .string()
              .regex(/^[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}$/, 'a name is 1 to 64 letters, digits, . _ @ : - (starting with a letter or digit)')
              .optional(),
          })
          .strict(),
      )
      .max(10_000),
  })
  .strict();

interface KeyEntry {
  digest: Buffer;
  scopes: Set<Scope>;
  /** Safe to log and to use as a rate-limit key (never the key itself). */
  id: string;
  /** Whose batch jobs this key submits and sees (jobOwner). */
  owner: string;
}

export interface Principal {
  /** `key:<name>` for a key, `ip:<address>` without one. */
  id: string;
  scopes: Set<Scope> | 'all';
  /** With a key: the owner its batch jobs record (`key:<name>`, `key-sha256:<fingerprint>`); none without one. */
  owner?: string;
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/**
 * The owner a key's batch jobs record: its name, so a key replaced by a new one of the same name keeps its
 * jobs; a key without a name has no stable name (`#2` changes when a key above it is removed), so it is known
 * by a fingerprint of the key itself (64 bits of a SHA-256 kept apart from the one compared above).
 */
function jobOwner(key: string, name: string | undefined): string {
  if (name !== undefined) return `key:${name}`;
  return `key-sha256:${createHash('sha256').update(`inferrer job owner\n${key}`).digest('hex').slice(0, 16)}`;
}

export function loadKeys(file: string): KeyEntry[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`API_KEYS_FILE ${file} cannot be read as JSON: ${(err as Error).message}`);
  }
  const r = KeysFileSchema.safeParse(parsed);
  if (!r.success) throw new Error(`API_KEYS_FILE ${file} is invalid: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return r.data.keys.map((k, i) => ({
    digest: digest(k.key),
    scopes: new Set(k.scopes),
    id: `key:${k.name ?? `#${i + 1}`}`,
    owner: jobOwner(k.key, k.name),
  }));
}

export class Auth {
  readonly #keys: KeyEntry[];
  readonly #disabled: boolean;
  readonly #perKey: RateLimiterMemory | undefined;
  readonly #perIp: RateLimiterMemory | undefined;
  readonly #clients: ClientAddresses;

  constructor(config: InferrerConfig) {
    this.#keys = config.apiKeysFile ? loadKeys(config.apiKeysFile) : [];
    this.#disabled = config.authDisabled;
    this.#clients = new ClientAddresses(config.clientIpv6PrefixBits);
    this.#perKey = config.rateLimitKeyRps > 0 ? new RateLimiterMemory({ points: config.rateLimitKeyRps, duration: 1 }) : undefined;
    this.#perIp = config.rateLimitIpRps > 0 ? new RateLimiterMemory({ points: config.rateLimitIpRps, duration: 1 }) : undefined;
  }

  /** How the server runs, for the start-up log and banner. */
  get mode(): 'keys' | 'disabled' | 'closed-management' {
    if (this.#disabled) return 'disabled';
    return this.#keys.length > 0 ? 'keys' : 'closed-management';
  }

  /** Checks credentials and rate limits for one request to a route needing `access`; throws 401/403/429 InferrerErrors. */
  check(req: IncomingMessage, access: Access): Promise<Principal> {
    return this.checkCredentials(req.headers.authorization, req.socket.remoteAddress ?? 'unknown', access);
  }

  /** The same check for a call that carries its `authorization` elsewhere (gRPC metadata), from `address`. */
  async checkCredentials(authorization: string | undefined, address: string, access: Access): Promise<Principal> {
    const key = this.#identify(authorization);
    // An IPv6 client is its prefix: a fresh address from the same /64 does not get a fresh allowance.
    const ip = this.#clients.of(address);
    if (access === 'public') return { id: `ip:${ip}`, scopes: new Set() };
    let principal: Principal;
    if (this.#disabled) {
      principal = key ?? { id: `ip:${ip}`, scopes: 'all' };
    } else if (this.#keys.length === 0) {
      if (access === 'admin') {
        throw new InferrerError(
          'FORBIDDEN',
          'the management API is closed: configure API_KEYS_FILE with an admin key (or start with AUTH_DISABLED=true for a local demo)',
        );
      }
      principal = { id: `ip:${ip}`, scopes: 'all' };
    } else {
      if (!key) {
        throw new InferrerError('UNAUTHORIZED', authorization ? 'the API key is not valid' : 'this route needs an API key: send Authorization: Bearer <key>', {
          scope: access,
        });
      }
      if (!key.scopes.has(access)) throw new InferrerError('FORBIDDEN', `the API key does not carry the '${access}' scope this route needs`, { scope: access });
      principal = { id: key.id, scopes: key.scopes, owner: key.owner };
    }
    await this.#limit(principal.id.startsWith('key:') ? this.#perKey : this.#perIp, principal.id);
    return principal;
  }

  #identify(header: string | undefined): (Principal & { scopes: Set<Scope> }) | undefined {
    if (!header || this.#keys.length === 0) return undefined;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) return undefined;
    const d = digest(m[1]!);
    let found: KeyEntry | undefined;
    // Every key is compared, so the time taken does not tell which one (or whether any) matched.
    for (const k of this.#keys) if (timingSafeEqual(k.digest, d) && !found) found = k;
    return found ? { id: found.id, scopes: found.scopes, owner: found.owner } : undefined;
  }

  async #limit(limiter: RateLimiterMemory | undefined, id: string): Promise<void> {
    if (!limiter) return;
    try {
      await limiter.consume(id);
    } catch (res) {
      if (!(res instanceof RateLimiterRes)) throw res;
      const retryAfter = Math.max(1, Math.ceil(res.msBeforeNext / 1000));
      throw new InferrerError(
        'RATE_LIMITED',
        `too many requests from ${id.startsWith('key:') ? 'this API key' : 'this address'}; retry after ${retryAfter} s`,
        {},
        { retryAfter },
      );
    }
  }
}
