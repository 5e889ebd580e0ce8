/**
 * The one canonical form of a request target. The path is split into segments and each segment is
 * percent-decoded exactly once; routes match those decoded segments case-sensitively, and handlers get
 * their parameters from them (never decoded a second time). An invalid encoding is a 400.
 *
 * What this means for path tricks: `/API/v1/...` and `/%41PI/...` only match a route spelled that way
 * (none is); `%2F` inside a segment stays inside it (a model name `a/b`, refused by the name rule);
 * `//`, a trailing `/` and `;params` make segments no route has, so they reach no route.
 */
import { InferrerError } from '@inferrer/core';

export interface Target {
  /** Decoded segments: `/api/v1/models/iris` → `['api', 'v1', 'models', 'iris']`; `/` → `[]`. */
  segments: string[];
  /** The path re-encoded from the decoded segments (for logs and express's req.path). */
  path: string;
  /** The raw query string without `?` ('' when none). */
  query: string;
}

/** Longest path accepted; longer targets are refused before any work. */
const MAX_PATH = 8192;

export function parseTarget(url: string): Target {
  const q = url.indexOf('?');
  const raw = q === -1 ? url : url.slice(0, q);
  const query = q === -1 ? '' : url.slice(q + 1);
  if (raw.length > MAX_PATH)
    throw new InferrerError('INVALID_REQUEST', `the request path is longer than ${MAX_PATH} characters`, { limit: MAX_PATH, got: raw.length });
  if (raw[0] !== '/') throw new InferrerError('INVALID_REQUEST', 'the request target must be a path starting with /');
  if (raw === '/') return { segments: [], path: '/', query };
  const parts = raw.slice(1).split('/');
  const segments = new Array<string>(parts.length);
  let canonical = true;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (p.indexOf('%') === -1) {
      segments[i] = p;
      continue;
    }
    canonical = false;
    try {
      segments[i] = decodeURIComponent(p);
    } catch {
      throw new InferrerError('INVALID_REQUEST', `the request path has an invalid percent-encoding in segment ${i + 1} (${JSON.stringify(p.slice(0, 64))})`, {
        segment: i + 1,
      });
    }
  }
  return { segments, path: canonical ? raw : `/${segments.map(encodeSegment).join('/')}`, query };
}

/** A decoded segment written back in its canonical encoding (unreserved characters plain, the rest escaped). */
export function encodeSegment(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
