/**
 * docker-compose.yml and swarm-stack.yml against the compose-spec JSON schema, swarm-stack.yml against the
 * docker CLI's own stack loader, and the properties the deployment promises (shared model volume,
 * replicas, GPU profile; rolling updates with rollback, limits, placement, secrets, an internal backend).
 * No Docker engine runs here: these files have never been deployed by this repository's checks.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { compileComposeSchema, dockerCli, dockerStackConfigErrors, formatAjvErrors } from './lib/compose.ts';
import { COMPOSE_FILES, REPO, type Yaml, interpolateDeep, readYaml } from './lib/deploy-files.ts';

const validate = compileComposeSchema();
const load = (file: string): Yaml => interpolateDeep(readYaml(file), {});
const services = (doc: Yaml) => doc.services as Record<string, Yaml>;
/** The services built from this repository (the rest are Prometheus, Grafana, node exporter). */
const OWN = ['inferrer', 'balancer', 'modelhost', 'modelhost-gpu', 'metrics'];

describe('compose-spec schema', () => {
  for (const file of COMPOSE_FILES) {
    test(`${file} validates`, () => {
      const errors = validate(load(file));
      assert.equal(errors.length, 0, `${file}:\n${formatAjvErrors(errors)}`);
    });
  }

  test('the schema rejects a misspelt key, so the check can fail', () => {
    const doc = structuredClone(load('docker-compose.yml'));
    (services(doc).modelhost.healthcheck as Yaml).intervall = '10s';
    delete (services(doc).modelhost.healthcheck as Yaml).interval;
    services(doc).inferrer.enviroment = { PORT: '8002' };
    const errors = validate(doc);
    const text = formatAjvErrors(errors);
    assert.match(text, /intervall/);
    assert.match(text, /enviroment/);
  });

  test('the schema rejects a bad duration and a bad update order', () => {
    const doc = structuredClone(load('swarm-stack.yml'));
    (services(doc).modelhost.healthcheck as Yaml).interval = 'ten seconds';
    ((services(doc).modelhost.deploy as Yaml).update_config as Yaml).order = 'start-last';
    const text = formatAjvErrors(validate(doc));
    assert.match(text, /healthcheck\/interval/);
    assert.match(text, /update_config\/order/);
  });
});

describe('docker stack config (the docker CLI, no engine needed)', { skip: dockerCli() ? false : 'docker CLI not installed' }, () => {
  test('swarm-stack.yml loads as `docker stack deploy` would load it', () => {
    assert.equal(dockerStackConfigErrors('swarm-stack.yml'), '');
  });

  test('…and a misspelt key makes it fail', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'inferrer-stack-'));
    try {
      const doc = readYaml('swarm-stack.yml');
      const bad = JSON.parse(JSON.stringify(doc)) as Yaml;
      (services(bad).modelhost.deploy as Yaml).replica = 2;
      writeFileSync(path.join(dir, 'stack.yml'), JSON.stringify(bad));
      mkdirSync(path.join(dir, 'prometheus'));
      copyFileSync(path.join(REPO, 'prometheus', 'prometheus.yml'), path.join(dir, 'prometheus', 'prometheus.yml'));
      writeFileSync(path.join(dir, 'good.yml'), JSON.stringify(doc));
      assert.equal(dockerStackConfigErrors(path.join(dir, 'good.yml')), '');
      assert.match(dockerStackConfigErrors(path.join(dir, 'stack.yml')), /Additional property replica is not allowed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('docker-compose.yml', () => {
  const doc = load('docker-compose.yml');
  const svc = services(doc);

  test('runs every part: Inferrer, nginx, modelhosts, metrics, Prometheus, Grafana, node exporter', () => {
    for (const name of [...OWN, 'prometheus', 'grafana', 'node-exporter']) assert.ok(svc[name], `no service ${name}`);
  });

  test('one shared model volume: the Inferrer writes it, modelhosts mount it read-only', () => {
    assert.ok((doc.volumes as Yaml).models !== undefined);
    assert.ok((svc.inferrer.volumes as string[]).includes('models:/models'));
    for (const name of ['modelhost', 'modelhost-gpu']) assert.ok((svc[name].volumes as string[]).includes('models:/models:ro'), name);
  });

  test('several CPU modelhosts; the GPU one sits in the gpu profile and reserves an NVIDIA device', () => {
    assert.ok(Number((svc.modelhost.deploy as Yaml).replicas) >= 2);
    assert.deepEqual(svc['modelhost-gpu'].profiles, ['gpu']);
    const devices = (((svc['modelhost-gpu'].deploy as Yaml).resources as Yaml).reservations as Yaml).devices as Yaml[];
    assert.equal(devices[0].driver, 'nvidia');
    assert.deepEqual(devices[0].capabilities, ['gpu']);
  });

  test('modelhosts and nginx sit only on the internal backend network', () => {
    assert.equal(((doc.networks as Yaml).backend as Yaml).internal, true);
    for (const name of ['balancer', 'modelhost', 'modelhost-gpu']) assert.deepEqual(Object.keys(svc[name].networks as Yaml), ['backend'], name);
    for (const name of ['balancer', 'modelhost', 'modelhost-gpu']) assert.equal(svc[name].ports, undefined, `${name} publishes a port`);
  });

  test('every service built here has a health check', () => {
    for (const name of OWN) assert.ok(svc[name].healthcheck, name);
  });

  test("the Inferrer serves gRPC on Triton's port 8001 and publishes it (INFERRER_GRPC_PORT)", () => {
    assert.equal((svc.inferrer.environment as Yaml).GRPC_PORT, '8001');
    assert.ok((svc.inferrer.ports as string[]).includes('8001:8001'), JSON.stringify(svc.inferrer.ports));
    assert.match(readFileSync(path.join(REPO, 'docker-compose.yml'), 'utf8'), /"\$\{INFERRER_GRPC_PORT:-8001\}:8001"/);
  });
});

describe('swarm-stack.yml', () => {
  const doc = load('swarm-stack.yml');
  const svc = services(doc);
  const deploy = (name: string) => svc[name].deploy as Yaml;

  test('rolling updates start the new task first and roll back on failure; tasks restart', () => {
    for (const name of OWN) {
      const u = deploy(name).update_config as Yaml;
      assert.equal(u.order, 'start-first', name);
      assert.equal(u.failure_action, 'rollback', name);
      assert.ok(deploy(name).rollback_config, `${name} has no rollback_config`);
      assert.equal((deploy(name).restart_policy as Yaml).condition, 'any', name);
    }
  });

  test('limits and reservations on every service built here', () => {
    for (const name of OWN) {
      const r = deploy(name).resources as Yaml;
      assert.ok((r.limits as Yaml | undefined)?.memory, `${name}: no memory limit`);
      if (name !== 'metrics') assert.ok((r.reservations as Yaml | undefined)?.cpus, `${name}: no CPU reservation`);
    }
  });

  test('GPU modelhosts: placed on labelled nodes, reserving an NVIDIA-GPU generic resource', () => {
    const d = deploy('modelhost-gpu');
    assert.ok(((d.placement as Yaml).constraints as string[]).includes('node.labels.inferrer.gpu == true'));
    const generic = ((d.resources as Yaml).reservations as Yaml).generic_resources as Yaml[];
    assert.deepEqual(generic[0].discrete_resource_spec, { kind: 'NVIDIA-GPU', value: 1 });
    assert.ok(((deploy('modelhost').placement as Yaml).constraints as string[]).includes('node.labels.inferrer.gpu != true'));
  });

  test('an internal overlay backend: modelhosts and nginx are unreachable from outside', () => {
    const backend = (doc.networks as Yaml).backend as Yaml;
    assert.equal(backend.driver, 'overlay');
    assert.equal(backend.internal, true);
    for (const name of ['balancer', 'modelhost', 'modelhost-gpu']) {
      assert.deepEqual(svc[name].networks, ['backend'], name);
      assert.equal(svc[name].ports, undefined, `${name} publishes a port`);
    }
  });

  test('API keys come from a Swarm secret; the model volume is shared over NFS', () => {
    assert.equal(((doc.secrets as Yaml).api_keys as Yaml).external, true);
    assert.ok((svc.inferrer.secrets as Yaml[]).some((s) => s.source === 'api_keys'));
    const models = (doc.volumes as Yaml).models as Yaml;
    assert.equal((models.driver_opts as Yaml).type, 'nfs');
  });

  test("the API keys secret is the Inferrer's user's (uid 1000, the node user of its image), read-only", () => {
    const secret = (svc.inferrer.secrets as Yaml[]).find((x) => x.source === 'api_keys') as Yaml;
    assert.equal(secret.uid, '1000');
    assert.equal(secret.gid, '1000');
    assert.equal(secret.mode, 0o400);
    assert.match(readFileSync(path.join(REPO, 'deploy', 'docker', 'inferrer.Dockerfile'), 'utf8'), /^USER node$/m);
  });

  test('every service rotates its json-file log', () => {
    for (const f of ['docker-compose.yml', 'swarm-stack.yml']) {
      for (const [name, s] of Object.entries(services(load(f)))) {
        const options = ((s.logging as Yaml | undefined)?.options ?? {}) as Yaml;
        assert.equal((s.logging as Yaml | undefined)?.driver, 'json-file', `${f} ${name}`);
        assert.ok(options['max-size'] && options['max-file'], `${f} ${name}: no max-size/max-file`);
      }
    }
  });

  test("the Inferrer serves gRPC on Triton's port 8001, published through the routing mesh", () => {
    assert.equal((svc.inferrer.environment as Yaml).GRPC_PORT, '8001');
    const ports = svc.inferrer.ports as Yaml[];
    assert.ok(
      ports.some((p) => p.target === 8001 && p.published === 8001 && p.protocol === 'tcp'),
      JSON.stringify(ports),
    );
  });

  test('nginx re-resolves tasks.modelhost while running', () => {
    assert.match(String((svc.balancer.environment as Yaml).MODELHOST_DNS), /(^|,)tasks\.modelhost:9001(,|$)/);
  });

  test('every service built here has a health check and no build section', () => {
    for (const name of OWN) {
      assert.ok(svc[name].healthcheck, name);
      assert.equal(svc[name].build, undefined, `${name}: docker stack deploy ignores build`);
    }
  });
});

describe('hardening (docs/deploy.md, "What each container runs with")', () => {
  /** Services whose root stays writable: Grafana (never run here) and the GPU modelhost (no GPU here). */
  const WRITABLE_ROOT = ['grafana', 'modelhost-gpu'];
  /** Where each service writes outside its volumes: a tmpfs at /tmp. */
  const TMPFS = ['inferrer', 'balancer', 'modelhost', 'metrics'];

  test('docker-compose.yml: every service drops every capability and adds none, is not root, gains no privileges, and has a read-only root but for the documented two', () => {
    for (const [name, s] of Object.entries(services(load('docker-compose.yml')))) {
      assert.deepEqual(s.cap_drop, ['ALL'], name);
      assert.equal(s.cap_add, undefined, name);
      // The image's user, or a named one other than root.
      assert.ok(s.user === undefined || !['0', 'root', '0:0'].includes(String(s.user)), `${name}: user ${s.user}`);
      assert.deepEqual(s.security_opt, ['no-new-privileges:true'], name);
      assert.equal(s.read_only ?? false, !WRITABLE_ROOT.includes(name), name);
      assert.equal(s.privileged ?? false, false, name);
      if (TMPFS.includes(name))
        assert.ok(
          (s.tmpfs as string[]).some((t) => t.split(':')[0] === '/tmp'),
          `${name}: no tmpfs at /tmp`,
        );
    }
  });

  test("docker-compose.yml: api-keys and the Inferrer mount the api-keys volume at the image's /run/keys, which the node user owns, so a fresh volume is node's", () => {
    const svc = services(load('docker-compose.yml'));
    const mounts = (name: string) => (svc[name].volumes as string[]).filter((v) => v.split(':')[0] === 'api-keys');
    assert.deepEqual(mounts('api-keys'), ['api-keys:/run/keys'], 'api-keys: read-write, and no nocopy');
    assert.deepEqual(mounts('inferrer'), ['api-keys:/run/keys:ro']);
    assert.equal(svc['api-keys'].user, undefined, "api-keys: the image's user (node)");
    assert.match(String((svc.inferrer.environment as Yaml).API_KEYS_FILE), /^\/run\/keys\//);
    assert.match((svc['api-keys'].command as string[]).join(' '), /'\/run\/keys\/api-keys\.json'/);
    const dockerfile = readFileSync(path.join(REPO, 'deploy', 'docker', 'inferrer.Dockerfile'), 'utf8');
    const prepared = /^RUN mkdir -p ([^&\n]*) && chown node:node ([^&\n]*) && chmod 0700 \/run\/keys$/m.exec(dockerfile);
    assert.ok(prepared, 'inferrer.Dockerfile does not create /run/keys as the node user');
    assert.ok(prepared[1].split(' ').includes('/run/keys') && prepared[2].split(' ').includes('/run/keys'), prepared[0]);
    assert.ok(dockerfile.indexOf(prepared[0]) < dockerfile.search(/^USER node$/m), 'USER node comes after /run/keys is prepared');
  });

  test('swarm-stack.yml: the same, with tmpfs mounts as volumes, and no security_opt (docker stack deploy ignores it)', () => {
    for (const [name, s] of Object.entries(services(load('swarm-stack.yml')))) {
      assert.deepEqual(s.cap_drop, ['ALL'], name);
      assert.equal(s.cap_add, undefined, name);
      assert.equal(s.security_opt, undefined, name);
      assert.equal(s.tmpfs, undefined, `${name}: swarm takes tmpfs only as a volume of type tmpfs`);
      assert.equal(s.read_only ?? false, !WRITABLE_ROOT.includes(name), name);
      const tmp = ((s.volumes ?? []) as Yaml[]).filter((v) => typeof v === 'object' && v.type === 'tmpfs');
      if (TMPFS.includes(name))
        assert.deepEqual(
          tmp.map((v) => v.target),
          ['/tmp'],
          name,
        );
      else assert.deepEqual(tmp, [], name);
    }
  });
});
