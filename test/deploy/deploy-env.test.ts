/**
 * The environment each deployment file gives each service, checked against that service's own config
 * schema: docker-compose.yml, swarm-stack.yml and every container in deploy/k8s (env, envFrom ConfigMaps,
 * and the image's Dockerfile ENV underneath). A variable the service does not read (a misspelling, or a
 * name the code dropped) fails, and so does a value the service would refuse at start or a missing
 * required one. The metrics service is checked as soon as services/metrics/src/config.ts exists.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { NODE_FLAGS, TSX_IMPORT } from '../../services/cli/src/paths.ts';
import { type EnvSchema, type ServiceEnv, allServiceEnvs, balancerSchema, checkEnv, programOf, serviceSchema } from './lib/env-check.ts';

const envs = allServiceEnvs();
const schemas = new Map<string, EnvSchema | undefined>();
async function schemaFor(s: ServiceEnv): Promise<EnvSchema | undefined | 'none'> {
  const p = programOf(s);
  if (p.kind === 'balancer') return balancerSchema();
  if (p.kind === 'other') return 'none';
  if (!schemas.has(p.name)) schemas.set(p.name, await serviceSchema(p.name));
  return schemas.get(p.name);
}

describe('each service environment parses with its service config schema', () => {
  test('the files define the services', () => {
    const programs = new Set(envs.map((s) => JSON.stringify(programOf(s))));
    for (const p of [
      { kind: 'service', name: 'inferrer' },
      { kind: 'service', name: 'modelhost' },
      { kind: 'service', name: 'metrics' },
      { kind: 'balancer' },
    ]) {
      assert.ok(programs.has(JSON.stringify(p)), `no container runs ${JSON.stringify(p)}`);
    }
    // compose: 8 services, swarm: 8, k8s: inferrer, balancer, modelhost, modelhost-gpu, metrics
    assert.ok(envs.length >= 21, `only ${envs.length} service environments found`);
  });

  for (const s of envs) {
    const program = programOf(s);
    const what = program.kind === 'service' ? program.name : program.kind;
    test(`${s.where} (${what})`, async (t) => {
      const schema = await schemaFor(s);
      if (schema === 'none') {
        t.skip(`third-party image ${s.image ?? ''}: its variables are its own`);
        return;
      }
      if (!schema) {
        t.skip(`services/${what}/src/config.ts does not exist yet`);
        return;
      }
      assert.deepEqual(checkEnv(s.env, schema), []);
    });
  }
});

describe('the checker fails on what it should (so a green run means something)', async () => {
  const modelhost = (await serviceSchema('modelhost')) as EnvSchema;
  const inferrer = (await serviceSchema('inferrer')) as EnvSchema;
  const good = envs.find((s) => s.where === 'docker-compose.yml services.modelhost') as ServiceEnv;

  test('the compose modelhost environment is clean to begin with', () => {
    assert.deepEqual(checkEnv(good.env, modelhost), []);
  });

  test('a misspelt variable is reported, with the name it was meant to be', () => {
    const env = { ...good.env, MAX_QUEUE_SIZ: '512' };
    assert.deepEqual(checkEnv(env, modelhost), ['MAX_QUEUE_SIZ: not a variable this service reads (did you mean MAX_QUEUE_SIZE?)']);
  });

  test('a value the service would refuse is reported', () => {
    const problems = checkEnv({ ...good.env, EXECUTION_PROVIDERS: 'cuda,tpu', PORT: 'ninety' }, modelhost);
    assert.equal(problems.length, 2, problems.join('\n'));
    assert.ok(problems.some((p) => p.startsWith('EXECUTION_PROVIDERS')));
    assert.ok(problems.some((p) => p.startsWith('PORT')));
  });

  test('a missing required variable is reported', () => {
    const env = { ...good.env };
    delete env.MODEL_DIR;
    assert.ok(checkEnv(env, modelhost).some((p) => p.startsWith('MODEL_DIR')));
    assert.ok(checkEnv({ HOST: '0.0.0.0', MODEL_DIR: '/models' }, inferrer).some((p) => p.startsWith('LOAD_BALANCER_URL')));
  });

  test('runtime variables pass only through the explicit allow-list', () => {
    assert.deepEqual(checkEnv({ ...good.env, NODE_ENV: 'production', NODE_OPTIONS: '--max-old-space-size=2048' }, modelhost), []);
    assert.deepEqual(
      checkEnv({ ...good.env, NODE_ENV: 'production' }, modelhost, new Set()).filter((p) => p.startsWith('NODE_ENV')),
      ['NODE_ENV: not a variable this service reads'],
    );
  });

  test('the balancer: an unknown variable and a value render.sh refuses are reported', () => {
    const balancer = envs.find((s) => s.where === 'swarm-stack.yml services.balancer') as ServiceEnv;
    assert.deepEqual(checkEnv(balancer.env, balancerSchema()), []);
    const problems = checkEnv({ ...balancer.env, BALANCE: 'round_robin', MODELHOST_UPSTREAM: 'a:1' }, balancerSchema());
    assert.ok(
      problems.some((p) => p.startsWith('MODELHOST_UPSTREAM: not a variable') && p.includes('MODELHOST_UPSTREAMS')),
      problems.join('\n'),
    );
    assert.ok(
      problems.some((p) => p.includes('BALANCE must be least_conn, placement or hash')),
      problems.join('\n'),
    );
  });
});

describe('the same programs and limits everywhere', () => {
  test('every Node service runs `node [its flags] --import tsx services/<name>/src/main.ts`, as the launcher (and so the e2e cluster) does', () => {
    assert.deepEqual(TSX_IMPORT, ['--import', 'tsx']);
    assert.deepEqual(NODE_FLAGS.inferrer, ['--initial-old-space-size=128']);
    assert.deepEqual(NODE_FLAGS.modelhost, ['--initial-old-space-size=128']);
    for (const s of envs) {
      const p = programOf(s);
      if (p.kind !== 'service') continue;
      const flags = NODE_FLAGS[p.name as keyof typeof NODE_FLAGS];
      assert.ok(flags, `${s.where}: no NODE_FLAGS for ${p.name}`);
      assert.deepEqual(s.command, ['node', ...flags, ...TSX_IMPORT, `services/${p.name}/src/main.ts`], s.where);
    }
  });

  test('nginx limits match the Inferrer: body size and request timeout, in every file', () => {
    const byFile = new Map<string, ServiceEnv[]>();
    for (const s of envs) {
      const file = s.where.split(' ')[0].replace(/^deploy\/k8s\/[^/]+\/.*$/, 'deploy/k8s');
      byFile.set(file, [...(byFile.get(file) ?? []), s]);
    }
    for (const [file, list] of byFile) {
      const inferrer = list.find((s) => JSON.stringify(programOf(s)) === JSON.stringify({ kind: 'service', name: 'inferrer' }));
      const balancer = list.find((s) => programOf(s).kind === 'balancer');
      assert.ok(inferrer && balancer, `${file}: needs an Inferrer and a balancer`);
      assert.equal(balancer.env.MAX_BODY_BYTES, inferrer.env.MAX_BODY_BYTES, `${file}: MAX_BODY_BYTES`);
      assert.equal(balancer.env.REQUEST_TIMEOUT_MS, inferrer.env.REQUEST_TIMEOUT_MS, `${file}: REQUEST_TIMEOUT_MS`);
      const url = new URL(inferrer.env.LOAD_BALANCER_URL);
      assert.equal(url.port, balancer.env.LISTEN, `${file}: LOAD_BALANCER_URL's port is the balancer's LISTEN`);
      assert.match(url.hostname, /^balancer(\.|$)/, `${file}: LOAD_BALANCER_URL names the balancer service`);
    }
  });
});
