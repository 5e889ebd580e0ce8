#!/usr/bin/env node
// Runs the test suites with node's own test runner (through tsx for TypeScript).
//   node scripts/run-tests.mjs            every suite: unit tests beside each package/service, then e2e
//   node scripts/run-tests.mjs unit|e2e   one group
//   node scripts/run-tests.mjs <files…>   just those files
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function find(dir, out = []) {
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const e of entries) {
    if (e === 'node_modules' || e.startsWith('.')) continue;
    const p = path.join(dir, e);
    if (statSync(p).isDirectory()) find(p, out);
    else if (e.endsWith('.test.ts')) out.push(path.relative(root, p));
  }
  return out.sort();
}

const unit = [...find(path.join(root, 'packages')), ...find(path.join(root, 'services'))];
const e2e = find(path.join(root, 'test'));
const args = process.argv.slice(2);
const files = args.length === 0 ? [...unit, ...e2e] : args[0] === 'unit' ? unit : args[0] === 'e2e' ? e2e : args;
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
// E2E suites start real clusters; run files one at a time so they do not fight over the two cores.
const r = spawnSync(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    '--test-concurrency=1',
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    `--test-reporter=${path.join(root, 'scripts', 'test-times.mjs')}`,
    '--test-reporter-destination=stdout',
    ...files,
  ],
  {
    cwd: root,
    stdio: 'inherit',
    // Tests load ONNX Runtime themselves too (answers compared in-process): its telemetry off, as in the services.
    env: { ORT_DISABLE_TELEMETRY: '1', ...process.env, NODE_ENV: 'test' },
  },
);
process.exit(r.status ?? 1);
