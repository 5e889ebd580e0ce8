/**
 * Parsing request JSON the way inference clients write it: plain JSON.parse on the fast path; integers
 * beyond 2^53 kept exact (as bigint, through lossless-json) and the bare NaN / Infinity / -Infinity tokens
 * that Python's json module emits accepted, both only when the text needs it.
 */
import { isSafeNumber, parse as parseLossless } from 'lossless-json';
import { InferrerError } from '../errors.ts';

/**
 * An integer token long enough that a double may not hold it exactly. Fraction and exponent digits do not
 * count (0.12345678901234567 is an ordinary float), so float-heavy bodies keep the native parser.
 */
const LONG_INTEGER = /(?<![\d.eE])\d{16,}(?![\d.eE])/;
const NON_FINITE = /NaN|Infinity/;

export function parseInferenceJson(text: string): unknown {
  if (text.length === 0) throw new InferrerError('INVALID_JSON', 'the body is empty; send a JSON object');
  const exact = LONG_INTEGER.test(text);
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
