/**
 * `nginx -t` on every nginx configuration the repository ships, all rendered by nginx/render.sh (the one
 * renderer of the template; the launcher's services/cli/src/nginx.ts runs it too): the launcher's (least_conn,
 * consistent hash), static upstreams, names followed through DNS for Swarm and Kubernetes in both ways
 * (UPSTREAM_RESOLVE=on: "server … resolve"; off: the names' current addresses, which nginx/balancer.sh
 * renders again and reloads), and the one each deployment file's balancer environment renders.
 *
 * "server … resolve" and "resolver" inside an upstream need nginx >= 1.27.3 (the balancer image's
 * nginx:1.28). With an older nginx (Debian 12 has 1.22) that variant is checked with those two parameters
 * taken out, everything else unchanged; a newer nginx on the PATH (or NGINX=/path) checks it whole. The
 * balancer running on Debian's nginx in a container is test/deploy/compose.test.ts's.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { findNginx, writeNginxConf } from '../../services/cli/src/nginx.ts';
import { REPO } from './lib/deploy-files.ts';
import { allServiceEnvs, programOf } from './lib/env-check.ts';

const nginx = process.env.NGINX ?? findNginx();
const version = nginx ? (/nginx\/(\d+)\.(\d+)\.(\d+)/.exec(spawnSync(nginx, ['-v'], { encoding: 'utf8' }).stderr) ?? []).slice(1).map(Number) : [];
const hasResolve = version.length === 3 && (version[0] > 1 || (version[0] === 1 && (version[1] > 27 || (version[1] === 27 && version[2] >= 3))));
const TEMPLATE = path.join(REPO, 'nginx', 'nginx.conf.template');
const RENDER = path.join(REPO, 'nginx', 'render.sh');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'inferrer-nginx-t-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const freshPrefix = () => path.join(tmp, `p${++n}`);

/** nginx -t; stdout is /dev/null so that "access_log /dev/stdout" can be opened (a socket cannot). */
function nginxT(conf: string): { ok: boolean; output: string } {
  const r = spawnSync(nginx as string, ['-t', '-p', path.dirname(conf), '-c', conf, '-e', 'stderr'], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  return { ok: r.status === 0, output: r.stderr };
}

/** Runs nginx/render.sh; returns the rendered file's path and text. */
function render(env: Record<string, string>): { conf: string; text: string } {
  const prefix = freshPrefix();
  const r = spawnSync('sh', [RENDER], { env: { PATH: process.env.PATH, NGINX_TEMPLATE: TEMPLATE, ...env, NGINX_PREFIX: prefix }, encoding: 'utf8' });
  assert.equal(r.status, 0, `render.sh failed: ${r.stderr}`);
  const conf = r.stdout.trim();
  assert.equal(conf, path.join(prefix, 'nginx.conf'));
  return { conf, text: readFileSync(conf, 'utf8') };
}

/** For nginx < 1.27.3: the same config without "resolve" and the upstream's resolver lines. */
function withoutResolve(conf: string): string {
  const text = readFileSync(conf, 'utf8')
    .replace(/^\s*resolver(_timeout)? [^;]*;\n/gm, '')
    .replace(/ resolve /g, ' ');
  const out = conf.replace(/\.conf$/, '.compat.conf');
  writeFileSync(out, text);
  return out;
}

function checkDns(conf: string): void {
  const text = readFileSync(conf, 'utf8');
  assert.match(text, /^\s+zone modelhosts \d+[km];$/m);
  assert.match(text, /^\s+resolver \S+ valid=\d+s ipv6=off;$/m);
  assert.match(text, /^\s+server \S+:\d+ resolve max_fails=\d+ fail_timeout=\d+s;$/m);
  const r = nginxT(hasResolve ? conf : withoutResolve(conf));
  assert.ok(r.ok, r.output);
}

describe('nginx -t on every shipped config', { skip: nginx ? false : 'nginx not installed (CI installs Debian nginx in .ci/run)' }, () => {
  for (const balance of ['least_conn', 'hash', 'placement'] as const) {
    test(`launcher (services/cli/src/nginx.ts), ${balance}`, async () => {
      const conf = await writeNginxConf({
        prefix: freshPrefix(),
        listen: '127.0.0.1:18080',
        upstreams: ['127.0.0.1:19001', '127.0.0.1:19002'],
        balance,
        maxBodyBytes: 64 * 1024 * 1024,
        requestTimeoutMs: 30_000,
        workerProcesses: 1,
        accessLog: 'off',
      });
      const r = nginxT(conf);
      assert.ok(r.ok, r.output);
    });

    test(`the launcher's file is render.sh's with the workers as fixed servers, ${balance}`, async () => {
      const launcherPrefix = freshPrefix();
      const fromLauncher = readFileSync(
        await writeNginxConf({
          prefix: launcherPrefix,
          listen: '127.0.0.1:18080',
          upstreams: ['127.0.0.1:19001', '127.0.0.1:19002'],
          balance,
          maxBodyBytes: 1_000_000,
          requestTimeoutMs: 2_500,
          workerProcesses: 1,
          accessLog: 'off',
        }),
        'utf8',
      );
      const { conf, text } = render({
        MODELHOST_UPSTREAMS: '127.0.0.1:19001,127.0.0.1:19002',
        BALANCE: balance,
        LISTEN: '127.0.0.1:18080',
        MAX_BODY_BYTES: '1000000',
        REQUEST_TIMEOUT_MS: '2500',
        NGINX_WORKER_PROCESSES: '1',
        ACCESS_LOG: 'off',
      });
      assert.equal(text.replaceAll(path.dirname(conf), '<prefix>'), fromLauncher.replaceAll(launcherPrefix, '<prefix>'));
      assert.match(text, /^ {8}server 127\.0\.0\.1:19001 max_fails=3 fail_timeout=5s;\n {8}server 127\.0\.0\.1:19002 max_fails=3 fail_timeout=5s;$/m);
      assert.match(
        text,
        { hash: /^\s+hash \$inferrer_model consistent;$/m, placement: /^\s+hash \$http_x_inferrer_placement consistent;$/m, least_conn: /^\s+least_conn;$/m }[
          balance
        ],
      );
      const r = nginxT(conf);
      assert.ok(r.ok, r.output);
    });

    test(`render.sh with DNS names nginx re-resolves (UPSTREAM_RESOLVE=on), ${balance}${hasResolve ? '' : ' [resolve checked as text: nginx < 1.27.3]'}`, () => {
      const { conf } = render({ MODELHOST_DNS: 'localhost:19001,localhost:19002', BALANCE: balance, RESOLVER: '127.0.0.1', UPSTREAM_RESOLVE: 'on' });
      checkDns(conf);
      assert.equal(readFileSync(path.join(path.dirname(conf), 'upstreams.mode'), 'utf8'), 'resolve\n');
    });

    test(`render.sh with DNS names resolved at render time (UPSTREAM_RESOLVE=off), ${balance}`, () => {
      const { conf, text } = render({ MODELHOST_DNS: 'localhost:19001, localhost:19002', BALANCE: balance, UPSTREAM_RESOLVE: 'off' });
      assert.match(text, /^ {8}server 127\.0\.0\.1:19001 max_fails=3 fail_timeout=5s;\n {8}server 127\.0\.0\.1:19002 max_fails=3 fail_timeout=5s;$/m);
      assert.doesNotMatch(text, /^\s*(resolver\s|server \S+ resolve)/m);
      assert.equal(readFileSync(path.join(path.dirname(conf), 'upstreams.mode'), 'utf8'), 'watch\n');
      const r = nginxT(conf);
      assert.ok(r.ok, r.output);
    });
  }

  test('UPSTREAM_RESOLVE=auto follows `nginx -v`: resolve from 1.27.3 on, fixed addresses before', () => {
    const fake = (version: string) => {
      const file = path.join(tmp, `nginx-${version}`);
      writeFileSync(file, `#!/bin/sh\necho "nginx version: nginx/${version}" >&2\n`, { mode: 0o755 });
      return file;
    };
    for (const [version, mode] of [
      ['1.22.1', 'watch'],
      ['1.26.3', 'watch'],
      ['1.27.2', 'watch'],
      ['1.27.3', 'resolve'],
      ['1.28.0', 'resolve'],
      ['2.0.0', 'resolve'],
    ] as const) {
      const { conf, text } = render({ MODELHOST_DNS: 'localhost:19001', RESOLVER: '127.0.0.1', NGINX_BIN: fake(version) });
      assert.equal(readFileSync(path.join(path.dirname(conf), 'upstreams.mode'), 'utf8'), `${mode}\n`, version);
      assert.equal(/server localhost:19001 resolve/.test(text), mode === 'resolve', version);
    }
    if (nginx && !hasResolve) {
      const { conf } = render({ MODELHOST_DNS: 'localhost:19001', NGINX_BIN: nginx });
      assert.equal(readFileSync(path.join(path.dirname(conf), 'upstreams.mode'), 'utf8'), 'watch\n', `${nginx} is older than 1.27.3`);
    }
  });

  test('a name without an address yet renders one server marked down (nginx answers 502 until one comes)', () => {
    const { conf, text } = render({ MODELHOST_DNS: 'no-such-host.invalid:9001', UPSTREAM_RESOLVE: 'off' });
    assert.match(text, /^ {8}server 127\.0\.0\.1:9 down; # no address for no-such-host\.invalid:9001 yet$/m);
    const r = nginxT(conf);
    assert.ok(r.ok, r.output);
  });

  test('render.sh takes the nameserver from /etc/resolv.conf when RESOLVER is unset', (t) => {
    let ns = '';
    try {
      ns = /^nameserver\s+(\S+)/m.exec(readFileSync('/etc/resolv.conf', 'utf8'))?.[1] ?? '';
    } catch {
      // no resolv.conf
    }
    if (!ns) return t.skip('no nameserver in /etc/resolv.conf');
    const { text } = render({ MODELHOST_DNS: 'localhost:19001', UPSTREAM_RESOLVE: 'on' });
    assert.ok(text.includes(`resolver ${ns.includes(':') ? `[${ns}]` : ns} valid=5s ipv6=off;`));
  });

  // The balancer environment of docker-compose.yml, swarm-stack.yml and deploy/k8s, rendered as the
  // container would render it (service names swapped for localhost, which resolves here).
  for (const s of allServiceEnvs().filter((x) => programOf(x).kind === 'balancer')) {
    for (const resolve of ['on', 'off'] as const) {
      test(`balancer of ${s.where}, UPSTREAM_RESOLVE=${resolve}`, () => {
        const env = { ...s.env };
        delete env.NGINX_PREFIX;
        delete env.NGINX_TEMPLATE;
        if (env.MODELHOST_DNS)
          env.MODELHOST_DNS = env.MODELHOST_DNS.split(',')
            .map((e) => `localhost:${e.split(':').at(-1)}`)
            .join(',');
        const { conf, text } = render({ ...env, RESOLVER: '127.0.0.1', UPSTREAM_RESOLVE: resolve });
        assert.match(text, /^\s+least_conn;$/m);
        assert.match(text, new RegExp(`client_max_body_size ${env.MAX_BODY_BYTES};`));
        if (env.MODELHOST_DNS && resolve === 'on') checkDns(conf);
        else {
          const r = nginxT(conf);
          assert.ok(r.ok, r.output);
        }
      });
    }
  }

  test('a broken config fails nginx -t, so the check can fail', () => {
    const { conf, text } = render({ MODELHOST_UPSTREAMS: '127.0.0.1:19001', LISTEN: '127.0.0.1:18080' });
    writeFileSync(conf, text.replace('least_conn;', 'least_conn on;'));
    assert.equal(nginxT(conf).ok, false);
  });
});

test('render.sh under BusyBox sh and awk (the Alpine-based balancer image) writes the same file', (t) => {
  const busybox = spawnSync('sh', ['-c', 'command -v busybox'], { encoding: 'utf8' }).stdout.trim();
  if (!busybox) return t.skip('busybox not installed');
  const bin = path.join(tmp, 'busybox-bin');
  spawnSync('mkdir', ['-p', bin]);
  for (const tool of ['sh', 'awk', 'tr', 'id', 'mkdir', 'mv']) spawnSync('ln', ['-sf', busybox, path.join(bin, tool)]);
  const prefix = freshPrefix();
  const env = {
    NGINX_TEMPLATE: TEMPLATE,
    NGINX_PREFIX: prefix,
    MODELHOST_DNS: 'tasks.modelhost:9001, tasks.modelhost-gpu:9001',
    BALANCE: 'hash',
    RESOLVER: '127.0.0.11',
    UPSTREAM_RESOLVE: 'on',
  };
  const r = spawnSync(path.join(bin, 'sh'), [RENDER], { env: { PATH: bin, ...env }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const fromBusybox = readFileSync(path.join(prefix, 'nginx.conf'), 'utf8');
  assert.equal(render(env).text.replaceAll(/\/p\d+/g, '/P'), fromBusybox.replaceAll(/\/p\d+/g, '/P'));
});

describe('render.sh refuses what nginx would misread', () => {
  const fails = (env: Record<string, string>) =>
    spawnSync('sh', [RENDER], {
      env: { PATH: process.env.PATH, NGINX_TEMPLATE: TEMPLATE, NGINX_PREFIX: freshPrefix(), RESOLVER: '127.0.0.1', ...env },
      encoding: 'utf8',
    });
  test('no upstreams, both kinds, a bad BALANCE or size, an entry without a port', () => {
    for (const [env, message] of [
      [{}, /set MODELHOST_DNS/],
      [{ MODELHOST_DNS: 'a:1', MODELHOST_UPSTREAMS: 'b:2' }, /not both/],
      [{ MODELHOST_DNS: 'a:1', BALANCE: 'random' }, /BALANCE must be/],
      [{ MODELHOST_DNS: 'a:1', MAX_BODY_BYTES: '64m' }, /MAX_BODY_BYTES/],
      [{ MODELHOST_DNS: 'tasks.modelhost' }, /host:port/],
      [{ MODELHOST_DNS: 'a:1', UPSTREAM_RESOLVE: 'yes' }, /UPSTREAM_RESOLVE must be/],
    ] as const) {
      const r = fails(env);
      assert.notEqual(r.status, 0, JSON.stringify(env));
      assert.match(r.stderr, message);
    }
  });
});
