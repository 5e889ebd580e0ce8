/**
 * Every command shown in the README and docs/ runs, the way a user pastes it. Shell blocks (```sh, ```bash,
 * ```shell) are split into commands (continuation lines and multi-line quotes joined); each curl command
 * runs in bash against a real cluster with `$B` set, in a folder holding the files the docs name
 * (`model.onnx`, `rows.csv`, `a.jpg`, …) beside links to the repository's `test/` and `models/`. curl runs
 * with `--fail-with-body`, so an HTTP error fails the command. Placeholders a user fills in (`<id>`, the
 * example job id) get the id of the last job submitted. Commands that cannot run here are listed below with
 * the test that covers them instead; a command of a kind not listed fails this test until it is.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { DEMO, REPO, type TestCluster, startTestCluster } from '../helpers/cluster.ts';

const run = promisify(execFile);

/** Commands that do not run against the test cluster, by how they start, with what covers them. */
const ELSEWHERE: [RegExp, string][] = [
  [/^npx -y pnpm@9 install --frozen-lockfile && npx -y pnpm@9 start$/, 'test/e2e/launcher.test.ts starts the launcher as `pnpm start` does'],
  [/^npx -y pnpm@9 install --frozen-lockfile && npx -y pnpm@9 test$/, 'CI (.ci/run) runs exactly this'],
  [
    /^([A-Z_]+=\S+ )*pnpm start\b/,
    'test/e2e/launcher.test.ts starts the launcher; the variables are each tested where they act (e.g. test/e2e/model-folder.test.ts)',
  ],
  [/^pnpm (inferrer|bench)\b/, 'test/e2e/cli.test.ts and the bench (bench/) run the CLI'],
  [/^ONNXRUNTIME_NODE_INSTALL=cuda/, 'downloads CUDA binaries: needs the internet and a GPU, neither of which CI has (docs/gpu.md)'],
  [/^(docker|docker-compose|DOCKER_BUILDKIT=\S+ docker)\b/, 'test/deploy/ runs the images, compose and the swarm stack on a real Docker engine'],
  [/^for s in .*docker service logs/, 'test/deploy/swarm.test.ts'],
  [/^export (INFERRER_REGISTRY|NFS_SERVER)=/, 'settings for a real registry and NFS server; test/deploy/swarm.test.ts deploys with local ones'],
  [/^kubectl\b/, 'no Kubernetes cluster here: test/deploy/k8s-manifests.test.ts checks the manifests'],
  [/^prometheus\b/, 'test/e2e/monitoring.test.ts runs a real Prometheus'],
  [/^promtool\b/, 'test/e2e/monitoring-rules.test.ts'],
  [/api\.eotdl\.com/, 'needs the internet: test/e2e/ import tests serve a STAC item on 127.0.0.1'],
];

/** Whole documents whose commands need another setup, and the tests that run them there. */
const ELSEWHERE_DOCS: Record<string, string> = {
  'docs/deploy.md': 'test/deploy/compose.test.ts and swarm.test.ts run the deployment on a real Docker engine',
  'docs/kubernetes.md': 'no Kubernetes cluster here: test/deploy/k8s-manifests.test.ts checks the manifests',
};

/** Commands that run locally without the cluster (making the files the next commands send). */
const LOCAL = /^(printf|echo|cat|base64|mkdir|cp|ls)\b/;

interface Command {
  doc: string;
  line: number;
  text: string;
}

/** The commands of every shell block of one markdown file. */
export function commandsOf(doc: string, markdown: string): Command[] {
  const out: Command[] = [];
  const lines = markdown.split('\n');
  let inBlock = false;
  let current: { text: string; line: number } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    if (/^```/.test(raw)) {
      inBlock = !inBlock && /^```(sh|bash|shell)\s*$/.test(raw);
      current = undefined;
      continue;
    }
    if (!inBlock) continue;
    if (current) {
      current.text += `\n${raw}`;
    } else {
      const t = raw.trim();
      if (t === '' || t.startsWith('#')) continue;
      current = { text: raw, line: i + 1 };
    }
    if (!continues(current.text)) {
      out.push({ doc, line: current.line, text: stripComment(current.text).trim() });
      current = undefined;
    }
  }
  return out;
}

/** Whether a command goes on to the next line: a trailing backslash, or a quote still open. */
function continues(text: string): boolean {
  if (/\\\s*$/.test(text)) return true;
  let single = false;
  let double = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '\\' && !single) {
      i++;
      continue;
    }
    if (ch === "'" && !double) single = !single;
    else if (ch === '"' && !single) double = !double;
    else if (ch === '#' && !single && !double && (i === 0 || /\s/.test(text[i - 1]!))) {
      const nl = text.indexOf('\n', i);
      if (nl === -1) break;
      i = nl;
    }
  }
  return single || double;
}

/** A trailing `# comment` of the last line (outside quotes). */
function stripComment(text: string): string {
  let single = false;
  let double = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '\\' && !single) {
      i++;
      continue;
    }
    if (ch === "'" && !double) single = !single;
    else if (ch === '"' && !single) double = !double;
    else if (ch === '#' && !single && !double && i > 0 && /\s/.test(text[i - 1]!)) return text.slice(0, i);
  }
  return text;
}

async function docs(): Promise<string[]> {
  const inDocs = (await readdir(path.join(REPO, 'docs'))).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`);
  return ['README.md', ...inDocs.sort(), 'bench/README.md', 'models/demo/README.md', 'test/fixtures/README.md'];
}

let c: TestCluster;
let work: string;

before(async () => {
  c = await startTestCluster({ modelhosts: 2 });
  work = await mkdtemp(path.join(os.tmpdir(), 'inferrer-docs-'));
  await symlink(path.join(REPO, 'test'), path.join(work, 'test'));
  await symlink(path.join(REPO, 'models'), path.join(work, 'models'));
  // The files the docs' commands name, made from the demo models and fixtures.
  for (const name of ['model.onnx', 'iris.onnx', 'iris-v2.onnx']) await copyFile(path.join(DEMO, 'iris.onnx'), path.join(work, name));
  const digit = path.join(REPO, 'test', 'fixtures', 'images', 'digit_7.png');
  await copyFile(digit, path.join(work, 'digit.png'));
  await copyFile(digit, path.join(work, 'b.png'));
  await sharp(digit).jpeg().toFile(path.join(work, 'a.jpg'));
  await sharp(digit).jpeg().toFile(path.join(work, 'photo.jpg'));
  await sharp(digit).webp().toFile(path.join(work, 'c.webp'));
  const rows = ['5.1,3.5,1.4,0.2', '6.7,2.5,5.8,1.8', '5.9,3.0,4.2,1.5'];
  await writeFile(path.join(work, 'rows.csv'), `${rows.join('\n')}\n`);
  const train = Array.from({ length: 200 }, (_, i) =>
    rows[i % rows.length]!.split(',')
      .map((v) => (Number(v) + (i % 7) * 0.01).toFixed(2))
      .join(','),
  );
  await writeFile(path.join(work, 'iris-train.csv'), `${train.join('\n')}\n`);
  await writeFile(path.join(work, 'profile.json'), JSON.stringify(train.map((r) => r.split(',').map(Number))));
  // A drift profile of iris as the operations guide's upload sends it: computed by the server from the rows.
  await run(
    'bash',
    ['-c', `curl -sS --fail-with-body -X PUT ${c.url}/api/v1/models/iris/versions/1/profile -H 'Content-Type: text/csv' --data-binary @iris-train.csv`],
    { cwd: work },
  );
  const stored = (await (await fetch(`${c.url}/api/v1/models/iris/versions/1/profile`)).json()) as Record<string, unknown>;
  const { http_status: _status, ...profile } = stored;
  await writeFile(path.join(work, 'iris-profile.json'), JSON.stringify(profile.profile ?? profile));
  const images = ['digit_7.png', 'batch_0.png', 'batch_1.png'].map((f) => path.join(REPO, 'test', 'fixtures', 'images', f));
  await run('/usr/bin/python3', ['-m', 'zipfile', '-c', path.join(work, 'digits.zip'), ...images]);
});
after(async () => {
  await c?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

test('every shell command in the README and docs runs against a real cluster, or names the test that covers it', async () => {
  const failures: string[] = [];
  const uncovered: string[] = [];
  let ran = 0;
  let jobId = '';
  for (const doc of await docs()) {
    let markdown: string;
    try {
      markdown = await readFile(path.join(REPO, doc), 'utf8');
    } catch {
      continue;
    }
    if (doc in ELSEWHERE_DOCS) continue;
    for (const cmd of commandsOf(doc, markdown)) {
      const where = `${cmd.doc}:${cmd.line}: ${cmd.text.split('\n')[0]!.slice(0, 140)}`;
      if (/^B=\S+$/.test(cmd.text)) continue;
      if (ELSEWHERE.some(([re]) => re.test(cmd.text))) continue;
      if (!cmd.text.startsWith('curl ') && !LOCAL.test(cmd.text)) {
        uncovered.push(where);
        continue;
      }
      const text = cmd.text.replaceAll('<id>', jobId).replace(/\bj[a-z0-9]{19,40}\b/g, jobId || '$&');
      try {
        const { stdout } = await run('bash', ['-c', `set -o pipefail; curl() { command curl --fail-with-body -sS "$@"; }\n${text}`], {
          cwd: work,
          env: { ...process.env, B: c.url, KEY: 'any-key-works-with-auth-disabled' },
          timeout: 60_000,
        });
        ran++;
        const id = /"id":"(j[a-z0-9]+)"/.exec(stdout)?.[1] ?? /Location: \/api\/v1\/jobs\/(j[a-z0-9]+)/i.exec(stdout)?.[1];
        if (id && /\/jobs\b/.test(text) && /-X POST/.test(text)) jobId = id;
      } catch (err) {
        const e = err as { code?: number; stdout?: string; stderr?: string };
        failures.push(`${where}\n    exit ${e.code}: ${(e.stdout ?? '').slice(0, 300)} ${(e.stderr ?? '').slice(0, 300)}`);
      }
    }
  }
  console.log(`ran ${ran} commands from the docs`);
  assert.deepEqual(uncovered, [], 'commands no test runs: run them here or name the test that covers them in ELSEWHERE');
  assert.deepEqual(failures, []);
  assert.ok(ran > 40, `ran ${ran} commands`);
});

test('the splitter joins continuation lines and multi-line quotes, and drops comments', () => {
  const md = [
    '```sh',
    'B=x',
    "curl -X POST $B -d '{",
    '  "a": 1}\'',
    'curl $B \\',
    '   -H x   # note',
    '# only a comment',
    '```',
    '```json',
    'curl not-a-command',
    '```',
  ].join('\n');
  assert.deepEqual(
    commandsOf('t.md', md).map((c) => c.text),
    ['B=x', 'curl -X POST $B -d \'{\n  "a": 1}\'', 'curl $B \\\n   -H x'],
  );
});
