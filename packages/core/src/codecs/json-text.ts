/**
 * Parsing request JSON the way inference clients write it: plain JSON.parse on the fast path; integers
 * beyond 2^53 kept exact (as bigint, through lossless-json) and the bare NaN / Infinity / -Infinity tokens
 * that Python's json module emits accepted, both only when the text needs it.
 *
 * Nesting: V8's JSON.parse does not recurse, but most code that walks a parsed value does (String(),
 * JSON.stringify, lossless-json, structured clone), so a body of 100,000 nested brackets would overflow
 * the stack there. Every parse of client JSON that may reach such code is depth-limited here
 * (MAX_JSON_DEPTH, by one pass over the text before parsing). The tensor decoders walk at most a
 * tensor's rank deep and check the rank themselves, so they skip that pass on the native path.
 */
import { isSafeNumber, parse as parseLossless } from 'lossless-json';
import { InferrerError } from '../errors.ts';
import { type PackMode, type PackedArrays, packJsonArrays } from './json-tensor.ts';

/**
 * An integer token long enough that a double may not hold it exactly. Fraction and exponent digits do not
 * count (0.12345678901234567 is an ordinary float), so float-heavy bodies keep the native parser.
 */
const LONG_INTEGER = /(?<![\d.eE])\d{16,}(?![\d.eE])/;
const NON_FINITE = /NaN|Infinity/;

/** How deep client JSON may nest (arrays and objects), wherever a parsed value may be walked recursively. */
export const MAX_JSON_DEPTH = 64;

export interface JsonParseOptions {
  /**
   * Refuse text that nests deeper than this (INVALID_REQUEST) before parsing. Without it only the
   * lossless path (long integers) checks, at MAX_JSON_DEPTH, since lossless-json recurses.
   */
  maxDepth?: number;
}

export function parseInferenceJson(text: string, opts: JsonParseOptions = {}): unknown {
  if (text.length === 0) throw new InferrerError('INVALID_JSON', 'the body is empty; send a JSON object');
  const exact = LONG_INTEGER.test(text);
  if (opts.maxDepth !== undefined || exact) checkJsonDepth(text, opts.maxDepth ?? MAX_JSON_DEPTH);
  let source = text;
  if (!exact) {
    try {
      return JSON.parse(source);
    } catch (err) {
      if (!NON_FINITE.test(text)) throw invalid(err);
    }
  }
  if (NON_FINITE.test(text)) source = quoteNonFinite(text);
  try {
    return exact ? parseLossless(source, undefined, parseNumber) : JSON.parse(source);
  } catch (err) {
    throw invalid(err);
  }
}

/** Bodies shorter than this are parsed whole: scanning them for tensor arrays would not pay. */
export const PACK_MIN_BYTES = 8192;

/**
 * Request JSON as bytes [0, end) whose large numeric arrays under `keys` are parsed straight into typed
 * arrays (json-tensor.ts): `value` holds a marker for each, which `arrays.take` turns into its PackedArray.
 * The rest is parsed by parseInferenceJson; when the text is not JSON the error is the whole text's.
 */
export function parseTensorJson(
  bytes: Buffer,
  end: number,
  keys: readonly string[],
  mode: PackMode,
  hint?: number,
): { value: unknown; arrays: PackedArrays | undefined } {
  const packed = end >= PACK_MIN_BYTES ? packJsonArrays(bytes, end, keys, mode, hint) : undefined;
  if (packed) {
    try {
      return { value: parseInferenceJson(packed.skeleton), arrays: packed.arrays };
    } catch {
      // Parsed again whole below, so the error names what the client sent.
    }
  }
  return { value: parseInferenceJson(bytes.toString('utf8', 0, end)), arrays: undefined };
}

/**
 * The offset where `text` opens its (max+1)-th nested array or object, or -1 when it never nests that
 * deep. One pass, no recursion; strings are skipped. Text that is not JSON still gets an answer (the parse
 * that follows reports it).
 */
export function jsonDepthExceededAt(text: string, max: number): number {
  let depth = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return i;
    } else if (c === 0x5d || c === 0x7d) depth--;
    else if (c === 0x22) {
      for (i++; i < n; i++) {
        const s = text.charCodeAt(i);
        if (s === 0x5c) i++;
        else if (s === 0x22) break;
      }
    }
  }
  return -1;
}

/** Throws INVALID_REQUEST when `text` nests arrays and objects deeper than `max`. */
export function checkJsonDepth(text: string, max: number = MAX_JSON_DEPTH): void {
  const at = jsonDepthExceededAt(text, max);
  if (at >= 0)
    throw new InferrerError('INVALID_REQUEST', `the JSON nests arrays and objects deeper than ${max} levels (at character ${at})`, { limit: max, at });
}

function parseNumber(s: string): number | bigint {
  if (isSafeNumber(s)) return Number(s);
  if (/^-?\d+$/.test(s)) return BigInt(s);
  return Number(s);
}

function invalid(err: unknown): InferrerError {
  return new InferrerError('INVALID_JSON', `the body is not valid JSON: ${(err as Error).message}`);
}

/** Rewrites bare NaN, Infinity and -Infinity outside strings as the strings "NaN", "Infinity", "-Infinity". */
export function quoteNonFinite(text: string): string {
  let out = '';
  let last = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 0x5c) i++;
      else if (ch === 0x22) inString = false;
      continue;
    }
    if (ch === 0x22) {
      inString = true;
      continue;
    }
    let token: string | undefined;
    if (text.startsWith('NaN', i)) token = 'NaN';
    else if (text.startsWith('Infinity', i)) token = 'Infinity';
    else if (text.startsWith('-Infinity', i)) token = '-Infinity';
    if (token) {
      out += `${text.slice(last, i)}"${token}"`;
      i += token.length - 1;
      last = i + 1;
    }
  }
  return out + text.slice(last);
}
