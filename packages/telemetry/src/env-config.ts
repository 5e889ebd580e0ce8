/**
 * Shared pieces of every service's config module: parse a zod schema over the environment (only the keys
 * the schema names, so unrelated variables never matter), report every problem at once, deep-freeze.
 */
import os from 'node:os';
import { z } from 'zod';
import { EXIT_CONFIG } from './exit.ts';

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(service: string, problems: string[]) {
    super(`invalid ${service} configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export function loadEnvConfig<S extends z.ZodObject, C>(service: string, schema: S, env: NodeJS.ProcessEnv, build: (e: z.infer<S>) => C): C {
  const picked: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const v = env[key];
    if (v !== undefined && v !== '') picked[key] = v;
  }
  const r = schema.safeParse(picked);
  if (!r.success) {
    throw new ConfigError(
      service,
      r.error.issues.map(
        (i) => `${i.path.join('.')}: ${i.message}${picked[String(i.path[0])] !== undefined ? ` (got ${JSON.stringify(picked[String(i.path[0])])})` : ''}`,
      ),
    );
  }
  return deepFreeze(build(r.data));
}

export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as object)) deepFreeze(v);
  }
  return value;
}

/** "true"/"false"/"1"/"0"/"yes"/"no"/"on"/"off" as a boolean. */
export function envFlag() {
  return z
    .string()
    .transform((s) => s.trim().toLowerCase())
    .pipe(z.enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off']))
    .transform((s) => ['true', '1', 'yes', 'on'].includes(s));
}

/** The logging settings every service takes. */
export const LOG_ENV = {
  LOG_LEVEL: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
  /** json (one object per line, for collectors) or pretty (for people at a terminal; the launcher's default there). */
  LOG_FORMAT: z.enum(['json', 'pretty']).default('json'),
};

/** The settings of a service that serves requests: its access lines and how it accepts connections. */
export const SERVING_ENV = {
  /**
   * Descriptors of the listening socket, each accepting one connection per event-loop turn
   * (@inferrer/http acceptors.ts): a busy process still takes new connections promptly.
   */
  ACCEPTORS: z.coerce.number().int().min(1).max(256).default(64),
  /** One info line per request (request id, model, version, status, ms); off saves a little on the hot path. */
  ACCESS_LOG: envFlag().default(true),
  /** Share of successful requests that get an access line (0 to 1); errors always do. */
  ACCESS_LOG_SAMPLE: z.coerce.number().min(0).max(1).default(1),
};

/** A service's id in logs and headers: letters, digits, `.`, `_`, `-`; by default the host's name. */
export function envServiceId() {
  return z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/)
    .default(
      os
        .hostname()
        .slice(0, 64)
        .replace(/[^A-Za-z0-9._-]/g, '-'),
    );
}

/** A comma-separated list of the given words. */
export function envList<const T extends readonly [string, ...string[]]>(words: T) {
  return z
    .string()
    .transform((s) =>
      s
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.enum(words)).min(1));
}

/** Prints a ConfigError and exits with EXIT_CONFIG (78); anything else is rethrown. */
export function exitOnConfigError(err: unknown): never {
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n`);
    process.exit(EXIT_CONFIG);
  }
  throw err;
}
