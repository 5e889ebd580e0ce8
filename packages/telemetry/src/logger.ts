/**
 * Logging with winston. JSON lines by default: every line has `level`, `time`, `msg`, `service`; modules
 * take `logger.child({module})`; requests add `reqId`. Errors go under `err` as {type, code, message, stack}.
 * `pretty` (LOG_FORMAT=pretty; the launcher's default on a terminal) prints the same fields for people:
 * `12:03:04.567 INFO  access request reqId=… status=200 ms=1.2`.
 */
import winston from 'winston';
import { batchedStdout } from './log-output.ts';

export type Logger = winston.Logger;

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export type LogFormat = 'json' | 'pretty';

const renameMessage = winston.format((info) => {
  const out = info as Record<string | symbol, unknown>;
  if (out.msg === undefined) out.msg = out.message;
  delete out.message;
  return info;
});

const serializeErr = winston.format((info) => {
  const out = info as Record<string, unknown>;
  if (out.err instanceof Error) out.err = errorFields(out.err);
  return info;
});

export function errorFields(err: Error, withStack = true): Record<string, unknown> {
  const e = err as Error & { code?: unknown };
  const f: Record<string, unknown> = { type: e.name, message: e.message };
  if (e.code !== undefined) f.code = e.code;
  if (withStack && e.stack) f.stack = e.stack;
  if (e.cause instanceof Error) f.cause = errorFields(e.cause, withStack);
  return f;
}

export interface LoggerOptions {
  service: string;
  level?: LogLevel;
  /** Defaults to stdout, batched (log-output.ts); tests pass a stream to read lines back. */
  stream?: NodeJS.WritableStream;
  format?: LogFormat;
}

export function createLogger(opts: LoggerOptions): Logger {
  return winston.createLogger({
    level: opts.level ?? 'info',
    defaultMeta: { service: opts.service },
    format: winston.format.combine(
      winston.format.timestamp({ alias: 'time' }),
      serializeErr(),
      renameMessage(),
      winston.format((info) => {
        delete (info as Record<string, unknown>).timestamp;
        return info;
      })(),
      opts.format === 'pretty' ? pretty() : winston.format.json(),
    ),
    transports: [new winston.transports.Stream({ stream: opts.stream ?? batchedStdout() })],
  });
}

const COLOURS: Record<string, string> = { error: '\x1b[31m', warn: '\x1b[33m', info: '\x1b[36m', debug: '\x1b[90m' };
/** Fields every line has, shown in front or not at all (the launcher already names the service). */
const FRONT = new Set(['level', 'time', 'msg', 'service', 'module']);

/** One line for people: time, level, module, message, then the other fields as key=value. */
function pretty(): winston.Logform.Format {
  return winston.format.printf((info) => {
    const f = info as Record<string, unknown>;
    const time = typeof f.time === 'string' ? f.time.slice(11, 23) : '';
    const level = String(f.level);
    let line = `${time} ${COLOURS[level] ?? ''}${level.toUpperCase().padEnd(5)}\x1b[0m ${f.module ? `${String(f.module)} ` : ''}${String(f.msg)}`;
    for (const [k, v] of Object.entries(f)) {
      if (FRONT.has(k) || v === undefined) continue;
      if (k === 'err' && v && typeof v === 'object') {
        const e = v as { code?: string; message?: string; stack?: string };
        line += ` err=${e.code ?? ''}${e.code ? ': ' : ''}${e.message ?? ''}`;
        if (e.stack && level === 'error') line += `\n${e.stack}`;
        continue;
      }
      line += ` ${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`;
    }
    return line;
  });
}

/**
 * Whether to write the access line of a request: always for an error answer, and for a success with
 * probability `sample` (ACCESS_LOG_SAMPLE, 0 to 1), so a busy service can keep its log small.
 */
export function sampleAccess(status: number, sample: number): boolean {
  return status >= 400 || sample >= 1 || (sample > 0 && Math.random() < sample);
}
