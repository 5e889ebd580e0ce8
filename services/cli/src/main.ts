/**
 * The `inferrer` command (bin/inferrer.mjs runs this through tsx; `pnpm inferrer …` in the repository).
 * The command tree is in program.ts; this maps what ends it to exit codes: a usage error (unknown command
 * or option, a bad argument) 2, a failed request 1, else what the command returned.
 */
import { CommanderError } from 'commander';
import { ClientError } from './client.ts';
import { EXIT_USAGE, createProgram } from './program.ts';

const program = createProgram();
const args = process.argv.slice(2);
try {
  if (args.length === 0) {
    program.outputHelp();
  } else {
    await program.parseAsync(args, { from: 'user' });
  }
} catch (err) {
  if (err instanceof CommanderError) {
    // Help and --version end with code 0 ("commander.helpDisplayed", "commander.version"); every other is a usage error.
    process.exitCode = err.exitCode === 0 ? 0 : EXIT_USAGE;
  } else {
    const what =
      err instanceof ClientError
        ? err.message
        : (err as NodeJS.ErrnoException).code === 'ENOENT'
          ? `no such file: ${(err as NodeJS.ErrnoException).path}`
          : (err as Error).message;
    process.stderr.write(`inferrer: ${what}\n`);
    process.exitCode = 1;
  }
}
