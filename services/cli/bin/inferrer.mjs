#!/usr/bin/env node
// The `inferrer` command as a package bin (npx inferrer, a global install, pnpm link): the CLI is
// TypeScript, run through tsx, resolved from this package wherever it is installed or linked.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');
