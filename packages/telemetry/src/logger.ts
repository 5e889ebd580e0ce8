/**
 * JSON-lines logging with winston. Every line has `level`, `time`, `msg`, `service`; modules take
 * `logger.child({module})`; requests add `reqId`. Errors go under `err` as {type, code, message, stack}.
 */
import winston from 'winston';
import { batchedStdout } from './log-output.ts';

export type Logger = winston.Logger;

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

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
      winston.format.json(),
    ),
    transports: [new winston.transports.Stream({ stream: opts.stream ?? batchedStdout() })],
  });
}
