/**
 * Every Dockerfile in deploy/docker built on the real engine, with the classic builder (DOCKER_BUILDKIT=0)
 * and with BuildKit, from the bases named by their build arguments. No image registry is reachable here:
 * deploy/docker/local-bases/build.sh makes the bases first (Debian from debootstrap, Node from this
 * machine, nginx/Redis/Prometheus from Debian's packages) under the names the files use. The images
 * fetch packages from the npm registry through this machine's CA bundle, handed in through
 * deploy/docker/build-ca/ and left out of the images. Build times are printed (not asserted).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { IMAGES, buildImage, buildkitCli, docker, engineSkipReason, ensureBases, ensureBuildCa, mustDocker } from './lib/engine.ts';

const skip = engineSkipReason();
const TEST_TAG = 'engine-test';
const made: string[] = [];

describe('images build on a real Docker engine', { skip: skip ?? false }, () => {
  before(() => {
    const t0 = Date.now();
    ensureBases();
    ensureBuildCa();
    console.log(`# local base images ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  });
  after(() => {
    // Tags only: the layers stay as the build cache of the next run (a prune would drop the classic
    // builder's untagged dependency stages, and with them that cache).
    for (const tag of made) docker('image', 'rm', tag);
  });

  test('the local bases carry the names the files use, and say what they stand in for', () => {
    for (const name of ['node:20-bookworm-slim', 'nginx:1.28-alpine', 'redis:7.4-alpine', 'prom/prometheus:v3.5.0', 'prom/node-exporter:v1.9.1']) {
      const r = docker('image', 'inspect', '--format', '{{index .Config.Labels "org.inferrer.stands-in-for"}}', name);
      assert.equal(r.status, 0, `${name} is missing`);
      // A real image pulled from a registry has no such label and is left alone by build.sh.
      assert.ok(r.stdout.trim() === name || r.stdout.trim() === '<no value>' || r.stdout.trim() === '', r.stdout);
    }
  });

  for (const builder of ['classic', 'BuildKit'] as const) {
    for (const name of IMAGES) {
      test(`${name}.Dockerfile builds with the ${builder} builder`, (t) => {
        const cli = builder === 'BuildKit' ? buildkitCli() : 'docker';
        if (!cli) return t.skip('no docker CLI here builds with BuildKit (no buildx plugin, no client older than 23)');
        const tag = `inferrer-${builder.toLowerCase()}/${name}:${TEST_TAG}`;
        made.push(tag);
        const r = buildImage(name, tag, { buildkit: builder === 'BuildKit', cli });
        console.log(`# ${name}: ${builder} build ${(r.ms / 1000).toFixed(1)} s`);
        const user = mustDocker('image', 'inspect', '--format', '{{.Config.User}}', tag).stdout.trim();
        assert.ok(user && user !== 'root' && user !== '0', `${tag} runs as ${user || 'root'}`);
        // The build-time CA bundle stays in the thrown-away stage.
        const env = mustDocker('image', 'inspect', '--format', '{{json .Config.Env}}', tag).stdout;
        assert.doesNotMatch(env, /NODE_EXTRA_CA_CERTS|build-ca/);
        const probe = mustDocker(
          'run',
          '--rm',
          '--entrypoint',
          'sh',
          tag,
          '-c',
          'ls -A /tmp; test ! -e /tmp/build-ca.pem && test ! -e /tmp/build-ca && echo clean',
        );
        assert.match(probe.stdout, /clean/);
        if (name === 'balancer') return;
        // The service's sources run through tsx with the production dependencies installed.
        const main = `services/${name}/src/main.ts`;
        const check = mustDocker(
          'run',
          '--rm',
          '--entrypoint',
          'node',
          tag,
          '-e',
          `require.resolve('tsx'); require('node:fs').accessSync('${main}'); console.log('tsx ok')`,
        );
        assert.match(check.stdout, /tsx ok/);
      });
    }
  }

  test('modelhost-gpu.Dockerfile', (t) => {
    t.skip(
      'not built here: its runtime base (nvidia/cuda) comes from a registry and its CUDA provider from NuGet, neither reachable; the classic-builder syntax checks of dockerfiles.test.ts cover it',
    );
  });
});
