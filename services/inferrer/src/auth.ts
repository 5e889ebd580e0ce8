/**
 * API keys with scopes, and rate limits. Keys come from API_KEYS_FILE
 * (`{"keys": [{"key": "…", "scopes": ["admin", "predict"], "name": "ci"}]}`), travel as
 * `Authorization: Bearer <key>`, and are compared in constant time (SHA-256 digests, every key checked).
 *
 * Scopes: `admin` manages models (upload, update, delete, load/unload, import); `predict` runs inference and
 * reads metadata. Health, metrics, docs and the welcome routes are public. Without keys the prediction
 * routes are open and the management routes are closed, unless the operator starts with AUTH_DISABLED.
 * 401: no or unknown credentials; 403: a valid key without the scope, or management closed.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { z } from 'zod';
import { InferrerError } from '@inferrer/core';
import type { InferrerConfig } from './config.ts';

export type Scope = 'admin' | 'predict';
export type Access = Scope | 'public';

const KeysFileSchema = z
  .object({
    keys: z
      .array(
        z
          .object({
            key: z.string().min(16, 'keys must be at least 16 characters'),
            scopes: z.array(z.enum(['admin', 'predict'])).min(1),
            name: z.string().max(64).optional(),
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
}

export interface Principal {
  /** `key:<name>` for a key, `ip:<address>` without one. */
  id: string;
  scopes: Set<Scope> | 'all';
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

export function loadKeys(file: string): KeyEntry[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`API_KEYS_FILE ${file} cannot be read as JSON: ${(err as Error).message}`);
  }
  const r = KeysFileSchema.safeParse(parsed);
  if (!r.success) throw new Error(`API_KEYS_FILE ${file} is invalid: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return r.data.keys.map((k, i) => ({ digest: digest(k.key), scopes: new Set(k.scopes), id: `key:${k.name ?? `#${i + 1}`}` }));
}

/** Which scope a route needs. Anything not listed needs `predict`, so a new route is never open by accident. */
export function accessFor(method: string, path: string): Access {
  if (method === 'GET' && /^\/(|help|metrics|openapi\.json|docs(\/.*)?|health\/(live|ready)|v2|v2\/health\/(live|ready))$/.test(path)) return 'public';
  if (/^\/api\/v1\/models\/[^/]+\/?$/.test(path) && (method === 'PUT' || method === 'POST' || method === 'DELETE')) return 'admin';
  if (/^\/api\/v1\/models\/[^/]+\/(import|canary|promote|rollback|default)\/?$/.test(path)) return 'admin';
  if (/^\/v2\/repository\/models\/[^/]+\/(load|unload)$/.test(path)) return 'admin';
  // Drift: attaching a profile or starting a capture changes the store; reading scores is for predict keys.
  if ((method === 'PUT' || method === 'POST') && /^\/api\/v1\/models\/[^/]+\/(versions\/[^/]+\/profile|profile\/capture)\/?$/.test(path)) return 'admin';
  return 'predict';
}

export class Auth {
  readonly #keys: KeyEntry[];
  readonly #disabled: boolean;
  readonly #perKey: RateLimiterMemory | undefined;
  readonly #perIp: RateLimiterMemory | undefined;

  constructor(config: InferrerConfig) {
    this.#keys = config.apiKeysFile ? loadKeys(config.apiKeysFile) : [];
    this.#disabled = config.authDisabled;
    this.#perKey = config.rateLimitKeyRps > 0 ? new RateLimiterMemory({ points: config.rateLimitKeyRps, duration: 1 }) : undefined;
    this.#perIp = config.rateLimitIpRps > 0 ? new RateLimiterMemory({ points: config.rateLimitIpRps, duration: 1 }) : undefined;
  }

  /** How the server runs, for the start-up log and banner. */
  get mode(): 'keys' | 'disabled' | 'closed-management' {
    if (this.#disabled) return 'disabled';
    return this.#keys.length > 0 ? 'keys' : 'closed-management';
  }

  /** Checks credentials and rate limits for one request; throws 401/403/429 InferrerErrors. */
  async check(req: IncomingMessage, method: string, path: string): Promise<Principal> {
    const access = accessFor(method, path);
    const ip = req.socket.remoteAddress ?? 'unknown';
    const key = this.#identify(req.headers.authorization);
    if (access === 'public') return { id: `ip:${ip}`, scopes: new Set() };
    let principal: Principal;
    if (this.#disabled) {
      principal = key ?? { id: `ip:${ip}`, scopes: 'all' };
    } else if (this.#keys.length === 0) {
      if (access === 'admin') {
        throw new InferrerError('FORBIDDEN', 'the management API is closed: configure API_KEYS_FILE with an admin key (or start with AUTH_DISABLED=true for a local demo)');
      }
      principal = { id: `ip:${ip}`, scopes: 'all' };
    } else {
      if (!key) {
        throw new InferrerError('UNAUTHORIZED', req.headers.authorization ? 'the API key is not valid' : 'this route needs an API key: send Authorization: Bearer <key>', { scope: access });
      }
      if (!key.scopes.has(access)) throw new InferrerError('FORBIDDEN', `the API key does not carry the '${access}' scope this route needs`, { scope: access });
      principal = { id: key.id, scopes: key.scopes };
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
    return found ? { id: found.id, scopes: found.scopes } : undefined;
  }

  async #limit(limiter: RateLimiterMemory | undefined, id: string): Promise<void> {
    if (!limiter) return;
    try {
      await limiter.consume(id);
    } catch (res) {
      if (!(res instanceof RateLimiterRes)) throw res;
      const retryAfter = Math.max(1, Math.ceil(res.msBeforeNext / 1000));
      throw new InferrerError('RATE_LIMITED', `too many requests from ${id.startsWith('key:') ? 'this API key' : 'this address'}; retry after ${retryAfter} s`, {}, { retryAfter });
    }
  }
}
