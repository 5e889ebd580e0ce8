/**
 * The README and the docs name files of this repository (`test/e2e/deadlines.test.ts` proves a limit,
 * `deploy/swarm-stack.yml` is what to deploy): every such name in backticks must exist, so a rename or a
 * deleted test cannot leave a page pointing at nothing. Paths the code writes at run time (git-ignored, as
 * `bench/results/`) and templates (`<recipe>`) are not files to find.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

const REPO = path.resolve(import.meta.dirname, '..', '..');
const ROOTS = ['test', 'packages', 'services', 'bench', 'deploy', 'scripts', 'docs', '.ci'];
const PAGES = [
  'README.md',
  'bench/README.md',
  ...readdirSync(path.join(REPO, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

/** Every backticked `root/…` path of a page, without a `:function` or `:line` suffix. */
function namedPaths(page: string): string[] {
  const text = readFileSync(path.join(REPO, page), 'utf8');
  const found = new Set<string>();
  for (const m of text.matchAll(/`([^`\s]+)`/g)) {
    const p = m[1]!.replace(/:.*$/, '');
    if (ROOTS.some((r) => p.startsWith(`${r}/`)) && !/[<>*{}$]/.test(p)) found.add(p);
  }
  return [...found];
}

function ignored(p: string): boolean {
  try {
    execFileSync('git', ['check-ignore', '-q', p], { cwd: REPO });
    return true;
  } catch {
    return false;
  }
}

test('every repository file the README and docs name exists', () => {
  const missing: string[] = [];
  let checked = 0;
  for (const page of PAGES) {
    for (const p of namedPaths(page)) {
      if (ignored(p)) continue;
      checked++;
      if (!existsSync(path.join(REPO, p))) missing.push(`${page}: ${p}`);
    }
  }
  assert.ok(checked > 50, `only ${checked} paths found: the pattern no longer matches how the docs name files`);
  assert.deepEqual(missing, []);
});
