/**
 * What can be checked of deploy/docker/*.Dockerfile without a Docker engine (none runs here, so no image
 * has been built by these checks): multi-stage, a pinned base, a non-root user, a HEALTHCHECK, an
 * exec-form command that exists in the repository, a frozen production install with the pnpm the
 * workspace pins, every workspace package the service needs copied in, onnxruntime-node's CUDA download
 * skipped in CPU images and done in the GPU one, and a build context (.dockerignore) that keeps what the
 * image needs and leaves out node_modules and tests.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { REPO, type Yaml, dockerfiles, finalStage, parseDockerfile, readYaml, stageExec } from './lib/deploy-files.ts';
import { NODE_FLAGS } from '../../services/cli/src/paths.ts';

const rootPackage = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as {
  name: string;
  packageManager: string;
  dependencies?: Record<string, string>;
};

/** Workspace folders by package name (packages/*, services/*). */
function workspace(): Map<string, { dir: string; deps: string[] }> {
  const out = new Map<string, { dir: string; deps: string[] }>();
  for (const group of ['packages', 'services']) {
    for (const d of existsSync(path.join(REPO, group)) ? readdirSync(path.join(REPO, group)).sort() : []) {
      const file = path.join(REPO, group, d, 'package.json');
      if (!existsSync(file)) continue;
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name: string; dependencies?: Record<string, string> };
      out.set(pkg.name, {
        dir: `${group}/${d}`,
        deps: Object.entries(pkg.dependencies ?? {})
          .filter(([, v]) => v.startsWith('workspace:'))
          .map(([k]) => k),
      });
    }
  }
  return out;
}

/** Docker's .dockerignore matching, enough for the patterns used here (*, **, leading !, no character classes). */
function dockerignore(): (p: string) => boolean {
  const rules = readFileSync(path.join(REPO, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pat = (negate ? l.slice(1) : l).replace(/^\/+|\/+$/g, '');
      const segs = pat.split('/');
      const body = segs
        .map((seg, i) => {
          if (seg === '**') return '(?:[^/]+/)*';
          const glob = seg
            .replace(/[.+^${}()|[\]\\]/g, '\\$&')
            .replace(/\*/g, '[^/]*')
            .replace(/\?/g, '[^/]');
          return i < segs.length - 1 ? `${glob}/` : glob;
        })
        .join('');
      const re = new RegExp(`^${body}(?:/.*)?$`);
      return { negate, re };
    });
  return (p) => {
    let excluded = false;
    for (const r of rules) if (r.re.test(p)) excluded = !r.negate;
    return excluded;
  };
}

const files = dockerfiles();
const excluded = dockerignore();
const ws = workspace();

describe('.dockerignore', () => {
  test('leaves out installed and generated files, tests and models', () => {
    for (const p of [
      'node_modules',
      'packages/core/node_modules',
      'services/modelhost/node_modules/express',
      'packages/runtime/test/x.test.ts',
      'test/e2e/a.test.ts',
      'models/demo/iris/1/model.onnx',
      '.git',
      '.inferrer/models',
    ]) {
      assert.ok(excluded(p), `${p} should be excluded`);
    }
  });
  test('keeps what the images need', () => {
    for (const p of [
      'package.json',
      'pnpm-lock.yaml',
      'pnpm-workspace.yaml',
      'nginx/nginx.conf.template',
      'nginx/render.sh',
      'nginx/balancer.sh',
      'deploy/docker/build-ca/README.md',
      'deploy/docker/build-ca/host.crt',
      'packages/runtime/src/index.ts',
      'services/modelhost/src/main.ts',
      'services/inferrer/src/main.ts',
    ]) {
      assert.ok(!excluded(p), `${p} must reach the build context`);
    }
  });
});

describe('Dockerfiles', () => {
  test('one per image: inferrer, modelhost, modelhost-gpu, metrics, balancer', () => {
    assert.deepEqual(files.map((f) => path.basename(f, '.Dockerfile')).sort(), ['balancer', 'inferrer', 'metrics', 'modelhost', 'modelhost-gpu']);
  });

  for (const file of files) {
    const df = parseDockerfile(file);
    const last = finalStage(df);
    const all = df.stages.flatMap((s) => s.instructions);
    const isNode = !file.endsWith('balancer.Dockerfile');

    test(`${file}: builds with the classic builder too: no syntax directive, no BuildKit-only flags`, () => {
      const text = readFileSync(path.join(REPO, file), 'utf8');
      assert.doesNotMatch(text, /^#\s*syntax\s*=/im, `${file}: a syntax directive makes BuildKit pull a frontend image`);
      for (const i of all)
        assert.doesNotMatch(i.args, /(^|\s)--(chmod|mount|link|parents|exclude|checksum|network)\b/, `${file}: ${i.op} ${i.args.slice(0, 60)}: BuildKit-only`);
    });

    test(`${file}: pinned bases, non-root user, health check, exec-form command`, () => {
      for (const s of df.stages) {
        if (df.stages.some((o) => o.name === s.from)) continue; // FROM an earlier stage
        assert.match(s.from, /^[\w./-]+:[\w.-]+$/, `${file}: base image without a tag: ${s.from}`);
        assert.doesNotMatch(s.from, /:latest$/, `${file}: ${s.from}`);
      }
      const user = last.instructions.filter((i) => i.op === 'USER').at(-1)?.args;
      assert.ok(user && !/^(root|0)(:|$)/.test(user), `${file}: the final stage must switch to a non-root USER`);
      assert.ok(
        last.instructions.some((i) => i.op === 'HEALTHCHECK' && / CMD /.test(` ${i.args} `)),
        `${file}: no HEALTHCHECK`,
      );
      const cmd = [...(stageExec(last, 'ENTRYPOINT') ?? []), ...(stageExec(last, 'CMD') ?? [])];
      assert.ok(cmd.length > 0, `${file}: no exec-form CMD/ENTRYPOINT`);
      for (const c of last.instructions.filter((i) => i.op === 'COPY' && !/--from=/.test(i.args))) {
        const parts = c.args.split(/\s+/).filter((a) => !a.startsWith('--'));
        for (const src of parts.slice(0, -1)) {
          assert.ok(existsSync(path.join(REPO, src)), `${file}: COPY source ${src} does not exist`);
          assert.ok(!excluded(src.replace(/\/$/, '')), `${file}: COPY source ${src} is excluded by .dockerignore`);
        }
      }
    });

    if (!isNode) {
      test(`${file}: nginx >= 1.27.3 by default (for "resolve"), balancer.sh runs nginx with render.sh's config`, () => {
        const m = /^nginx:(\d+)\.(\d+)(?:\.(\d+))?/.exec(last.from);
        assert.ok(m, `${file}: expected an official nginx image with a version tag, got ${last.from}`);
        const [major, minor, patch] = [Number(m[1]), Number(m[2]), m[3] === undefined ? Infinity : Number(m[3])];
        assert.ok(major > 1 || minor > 27 || (minor === 27 && patch >= 3), `${file}: ${last.from} has no "server … resolve" (needs 1.27.3)`);
        assert.deepEqual(stageExec(last, 'ENTRYPOINT'), ['/usr/local/bin/inferrer-balancer']);
        const copies = last.instructions.filter((i) => i.op === 'COPY').map((i) => i.args);
        assert.ok(copies.some((a) => a.includes('nginx/render.sh') && a.endsWith('/usr/local/bin/inferrer-render-nginx')));
        assert.ok(copies.some((a) => a.includes('nginx/balancer.sh') && a.endsWith('/usr/local/bin/inferrer-balancer')));
        assert.ok(copies.some((a) => a.startsWith('nginx/nginx.conf.template /etc/inferrer/nginx.conf.template')));
      });
      continue;
    }

    test(`${file}: multi-stage, frozen production install with the workspace's pnpm, every needed package copied`, () => {
      assert.ok(df.stages.length >= 2, `${file}: not multi-stage`);
      const cmd = stageExec(last, 'CMD') ?? [];
      const main = cmd.find((a) => /^services\/[a-z-]+\/src\/main\.ts$/.test(a)) as string;
      assert.ok(main, `${file}: CMD runs no service`);
      assert.deepEqual(cmd, ['node', ...NODE_FLAGS[main.split('/')[1] as keyof typeof NODE_FLAGS], '--import', 'tsx', main]);
      assert.ok(rootPackage.dependencies?.tsx, 'tsx must be a production dependency of the root, as the images run sources through it');
      const service = main.split('/')[1];
      const pkgName = [...ws.entries()].find(([, v]) => v.dir === `services/${service}`)?.[0] as string;
      assert.ok(pkgName, `no workspace package in services/${service}`);

      const pnpmVersion = rootPackage.packageManager.replace(/^pnpm@/, '');
      assert.ok(
        all.some((i) => i.op === 'RUN' && i.args.includes(`pnpm@${pnpmVersion}`)),
        `${file}: install pnpm@${pnpmVersion} (package.json's packageManager)`,
      );
      const install = all.find((i) => i.op === 'RUN' && /pnpm install/.test(i.args));
      assert.ok(install, `${file}: no pnpm install`);
      for (const flag of ['--frozen-lockfile', '--prod', `--filter ${rootPackage.name}`, `--filter "${pkgName}..."`])
        assert.ok(install.args.includes(flag), `${file}: pnpm install without ${flag}`);

      // The filtered install needs the manifest of the service and of every workspace package it uses.
      const needed = new Set<string>();
      const visit = (name: string) => {
        if (needed.has(name)) return;
        needed.add(name);
        for (const d of ws.get(name)?.deps ?? []) visit(d);
      };
      visit(pkgName);
      const copied = all.filter((i) => i.op === 'COPY').map((i) => i.args);
      for (const name of needed) {
        const dir = (ws.get(name) as { dir: string }).dir;
        assert.ok(copied.includes(`${dir}/package.json ${dir}/`), `${file}: COPY ${dir}/package.json missing`);
      }
      for (const f of ['package.json', 'pnpm-lock.yaml', 'pnpm-workspace.yaml'])
        assert.ok(
          copied.some((a) => a.split(/\s+/).includes(f)),
          `${file}: ${f} not copied`,
        );
      assert.ok(copied.includes('packages/ packages/'), `${file}: package sources not copied`);
      assert.ok(copied.includes(`services/${service}/ services/${service}/`), `${file}: service sources not copied`);
    });

    test(`${file}: onnxruntime-node's CUDA download is ${file.includes('-gpu') ? 'done (CUDA runtime base)' : 'skipped'}`, () => {
      const runs = all.filter((i) => i.op === 'RUN').map((i) => i.args);
      if (!file.includes('-gpu')) {
        assert.match(runs.find((a) => a.includes('pnpm install')) as string, /ONNXRUNTIME_NODE_INSTALL=skip/);
        assert.doesNotMatch(runs.join('\n'), /cuda12/);
        return;
      }
      assert.match(df.args.CUDA_IMAGE ?? '', /^nvidia\/cuda:12\.\d+(\.\d+)?-cudnn-runtime-/);
      assert.ok(runs.some((a) => a.includes('ONNXRUNTIME_NODE_INSTALL=cuda12 node script/install.js') && a.includes('libonnxruntime_providers_cuda.so')));
      // onnxruntime-node's installer takes exactly this value (script/install-utils.js, install-metadata.js).
      const ortDir = path.join(REPO, 'node_modules', 'onnxruntime-node', 'script');
      if (existsSync(ortDir)) assert.match(readFileSync(path.join(ortDir, 'install-metadata.js'), 'utf8'), /'linux\/x64': \['cuda12'\]/);
    });
  }

  test('the compose file builds each image from its Dockerfile', () => {
    const svc = readYaml('docker-compose.yml').services as Record<string, Yaml>;
    for (const [name, s] of Object.entries(svc)) {
      if (!s.build) continue;
      const dockerfile = (s.build as Yaml).dockerfile as string;
      assert.ok(files.includes(dockerfile), `${name}: ${dockerfile} does not exist`);
      assert.equal((s.build as Yaml).context, '.');
    }
  });
});
