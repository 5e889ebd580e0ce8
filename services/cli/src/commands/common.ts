/** What every command module shares: the context its actions get, and small argument parsers. */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import type { InferrerClient } from '../client.ts';
import type { Io } from '../output.ts';

/** What each command's action gets: the output and a client built from the global options. */
export interface Context {
  io(cmd: Command): Io;
  client(cmd: Command): InferrerClient;
}

/** An action that returns its exit code. */
export function act<A extends unknown[]>(fn: (...args: A) => Promise<number>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    process.exitCode = await fn(...args);
  };
}

export function positiveInt(what: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${what} must be a positive integer`);
    return n;
  };
}
