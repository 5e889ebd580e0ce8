/**
 * swarm-stack.yml on a one-node swarm on the real engine (`docker swarm init --advertise-addr 127.0.0.1`),
 * deployed with swarm-single-node.yml (the documented override for one small node: reservations that fit
 * 2 CPUs, the model store in a folder of the node instead of NFS) and a test override that leaves Grafana
 * at 0 replicas (no Grafana image here: Debian does not package it and no registry is reachable).
 *
 * Shown: every task running and healthy; the API keys secret readable by the Inferrer's user and its keys
 * in force; Prometheus's configs read; every task with no capabilities, a read-only root and tmpfs only
 * where it writes, and `security_opt` ignored by `docker stack deploy` (docs/deploy.md); an upload through
 * the hardened Inferrer; nginx reaching every modelhost task over the overlay network
 * through tasks.modelhost; `docker service scale` and `docker service update --image` converging; a
 * killed task replaced. Not shown, because this kernel has no IPVS: service virtual IPs and the ingress
 * routing mesh carry no traffic (docs/deploy.md), so nothing reaches the Inferrer's published port and
 * the Inferrer cannot reach `balancer:8080`; the data plane through the Inferrer is compose.test.ts's.
 *
 * The suite initializes the swarm and leaves it (with everything it created) in `after`, even on failure;
 * it skips where a swarm is already active, which it would not own.
 */
import assert from 'node:assert/strict';
import { chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO } from './lib/deploy-files.ts';
import { alive, containerLogLines, docker, engineSkipReason, ensureImages, must, mustDocker, sweepTestTags, waitFor } from './lib/engine.ts';

const swarmState = () => docker('info', '--format', '{{.Swarm.LocalNodeState}}').stdout.trim();
const nodeId = () => docker('info', '--format', '{{.Swarm.NodeID}}').stdout.trim();
const STACK = 'inferrer';
/** The node label that marks a swarm as this suite's, with the pid of the run that made it. */
const MARK = 'org.inferrer.test-swarm';

/**
 * A swarm that a killed run of this suite made (its node carries MARK with a pid that is gone) is left,
 * with its stack, secrets and networks, so that this run can make its own; any other swarm is not ours.
 */
function sweepLeftoverSwarm(): void {
  if (swarmState() !== 'active') return;
  const pid = Number(docker('node', 'inspect', nodeId(), '--format', `{{index .Spec.Labels "${MARK}"}}`).stdout.trim());
  if (!Number.isInteger(pid) || pid <= 0 || alive(pid)) return;
  console.log(`# leaving the swarm a killed run (pid ${pid}) made`);
  leaveSwarm();
}

/** Removes the stack, its secrets, the swarm and what the swarm leaves behind. */
function leaveSwarm(): void {
  docker('stack', 'rm', STACK);
  docker('secret', 'rm', 'inferrer_api_keys', 'inferrer_grafana_admin_password');
  docker('swarm', 'leave', '--force');
  for (const kind of ['volume', 'network'] as const) {
    const list = docker(kind, 'ls', '-q', '--filter', `label=com.docker.stack.namespace=${STACK}`).stdout.split('\n').filter(Boolean);
    if (list.length > 0) docker(kind, 'rm', ...list);
  }
  const leftovers = docker('ps', '-aq', '--filter', `label=com.docker.stack.namespace=${STACK}`).stdout.split('\n').filter(Boolean);
  if (leftovers.length > 0) docker('rm', '-f', ...leftovers);
  // The bridge that `swarm init` made for the tasks' way out (no container uses it once the swarm is gone).
  docker('network', 'rm', 'docker_gwbridge');
}

const noEngine = engineSkipReason();
if (!noEngine) sweepLeftoverSwarm();
const skip = noEngine ?? (swarmState() !== 'inactive' ? `a swarm is already ${swarmState()} on this engine: the suite makes and leaves its own` : undefined);
const KEY = 'swarm-test-admin-key-0123456789abcdef';
const svc = (name: string) => `${STACK}_${name}`;

/** Running task containers of a service. */
const tasks = (name: string) =>
  docker('ps', '-q', '--filter', `label=com.docker.swarm.service.name=${svc(name)}`)
    .stdout.split('\n')
    .filter(Boolean);
const health = (id: string) => docker('inspect', '--format', '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}', id).stdout.trim();
const exec = (id: string, ...cmd: string[]) => docker('exec', id, ...cmd);
/** `replicas` tasks of a service running (healthy where it has a health check). */
const converged = (name: string, replicas: number) => {
  const ids = tasks(name);
  return ids.length === replicas && ids.every((id) => ['healthy', 'running'].includes(health(id))) ? ids : undefined;
};
/** X-Modelhost-Id of `n` requests sent by nginx (inside a balancer task) to the modelhosts. */
function modelhostsSeenByNginx(n: number): Set<string> {
  const [balancer] = tasks('balancer');
  const r = exec(
    balancer,
    'sh',
    '-c',
    `for i in $(seq ${n}); do wget -S -q -O /dev/null http://127.0.0.1:8080/health/ready 2>&1 | sed -n 's/^ *[Xx]-[Mm]odelhost-[Ii]d: *//p'; done`,
  );
  return new Set(
    r.stdout
      .split('\n')
      .map((s) => s.trim())
      .filter(Boolean),
  );
}

describe('swarm-stack.yml on a one-node swarm', { skip: skip ?? false }, () => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'inferrer-swarm-'));
  const models = path.join(work, 'models');
  const env = { MODELS_DIR: models };
  let initialized = false;
  /** Set by a test the later ones cannot do without (the deploy, the first convergence) when it fails. */
  let blocked = '';
  /** A test; `gate`: when it fails, the tests after it fail at once instead of waiting out their timeouts. */
  const step = (name: string, fn: () => unknown, gate = false) =>
    test(name, async () => {
      if (blocked) throw new Error(`not run: ${blocked} failed`);
      try {
        await fn();
      } catch (err) {
        if (gate) blocked = JSON.stringify(name);
        throw err;
      }
    });

  before(() => {
    sweepTestTags('inferrer/modelhost', 'swarm-');
    ensureImages();
    // security_opt on one service, to show what `docker stack deploy` does with it (swarm-stack.yml has none).
    writeFileSync(
      path.join(work, 'test-override.yml'),
      'version: "3.9"\nservices:\n  grafana:\n    deploy:\n      replicas: 0\n  metrics:\n    security_opt: ["no-new-privileges:true"]\n',
    );
    writeFileSync(path.join(work, 'api-keys.json'), JSON.stringify({ keys: [{ key: KEY, scopes: ['admin', 'predict'], name: 'test' }] }));
    must('mkdir', ['-p', models]);
    chownSync(models, 1000, 1000);
  });

  after(async () => {
    if (initialized) {
      docker('stack', 'rm', STACK);
      await waitFor(
        'the stack gone',
        () => (docker('ps', '-aq', '--filter', `label=com.docker.stack.namespace=${STACK}`).stdout.trim() === '' ? true : undefined),
        120_000,
      ).catch(() => undefined);
      leaveSwarm();
    }
    docker('image', 'rm', `inferrer/modelhost:swarm-${process.pid}`);
    rmSync(work, { recursive: true, force: true });
  });

  step(
    'docker swarm init, the secrets, docker stack deploy',
    () => {
      mustDocker('swarm', 'init', '--advertise-addr', '127.0.0.1');
      initialized = true;
      // Marked as this run's: a later run leaves it if this one is killed before `after`.
      mustDocker('node', 'update', '--label-add', `${MARK}=${process.pid}`, nodeId());
      must('docker', ['secret', 'create', 'inferrer_api_keys', path.join(work, 'api-keys.json')]);
      must('docker', ['secret', 'create', 'inferrer_grafana_admin_password', '-'], { input: 'not-used-here' });
      const deployed = must(
        'docker',
        [
          'stack',
          'deploy',
          '--resolve-image',
          'never',
          '-c',
          'swarm-stack.yml',
          '-c',
          'swarm-single-node.yml',
          '-c',
          path.join(work, 'test-override.yml'),
          STACK,
        ],
        { env },
      );
      // docs/deploy.md: the stack's security_opt is dropped with this warning, and no-new-privileges is left to the daemon.
      assert.match(deployed.stderr + deployed.stdout, /Ignoring unsupported options: security_opt/);
    },
    true,
  );

  step(
    'every task runs and is healthy on one 2-CPU node',
    async () => {
      const want: Record<string, number> = { inferrer: 2, balancer: 2, modelhost: 2, metrics: 1, redis: 1, prometheus: 1, 'node-exporter': 1 };
      const t0 = Date.now();
      await waitFor(`tasks ${JSON.stringify(want)}`, () => (Object.entries(want).every(([name, n]) => converged(name, n)) ? true : undefined), 240_000, 2000);
      console.log(`# stack converged in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      const pending = docker('stack', 'ps', STACK, '--filter', 'desired-state=running', '--format', '{{.Name}} {{.CurrentState}} {{.Error}}').stdout;
      assert.doesNotMatch(pending, /Pending|insufficient resources/, pending);
    },
    true,
  );

  step("the API keys secret is the Inferrer's to read (uid 1000, 0400), and its keys are in force", () => {
    for (const id of tasks('inferrer')) {
      assert.equal(exec(id, 'stat', '-c', '%u:%g %a', '/run/secrets/api_keys.json').stdout.trim(), '1000:1000 400');
      const probe = (auth: string) =>
        exec(
          id,
          'node',
          '-e',
          `fetch('http://127.0.0.1:8002/api/v1/models/nope',{method:'DELETE',headers:{${auth}}}).then(r=>console.log(r.status))`,
        ).stdout.trim();
      assert.equal(probe(''), '401'); // keys loaded: no key, no entry (without keys it would be 403)
      assert.equal(probe(`authorization:'Bearer ${KEY}'`), '404'); // the key is admin: the model just does not exist
      assert.ok(!containerLogLines(id).some((l) => /EACCES|cannot be read/.test(l)));
    }
    const [prometheus] = tasks('prometheus');
    assert.match(exec(prometheus, 'cat', '/etc/prometheus/prometheus.yml').stdout, /job_name: modelhost/);
    assert.match(exec(prometheus, 'cat', '/etc/prometheus/alert_rules.yml').stdout, /groups:/);
  });

  step('every task runs with no capabilities and a read-only root, tmpfs only where it writes; no-new-privileges is not applied', async () => {
    const tmpfs: Record<string, number | undefined> = {
      inferrer: 64 * 1024 * 1024,
      modelhost: 64 * 1024 * 1024,
      metrics: 64 * 1024 * 1024,
      balancer: 128 * 1024 * 1024,
      redis: undefined,
      prometheus: undefined,
      'node-exporter': undefined,
    };
    const probe = [
      'if (echo x >/hardening-probe) 2>/dev/null; then echo root=writable; else echo root=read-only; fi',
      'if [ -d /tmp ] && (echo x >/tmp/hardening-probe) 2>/dev/null; then rm -f /tmp/hardening-probe; echo tmp=writable; else echo tmp=read-only; fi',
      "sed -n 's/^\\(Uid\\|CapEff\\|NoNewPrivs\\):[[:space:]]*\\([0-9a-f]*\\).*/\\1=\\2/p' /proc/1/status",
    ].join('; ');
    for (const [name, size] of Object.entries(tmpfs)) {
      const spec = JSON.parse(mustDocker('service', 'inspect', '--format', '{{json .Spec.TaskTemplate.ContainerSpec}}', svc(name)).stdout) as {
        CapabilityDrop?: string[];
        CapabilityAdd?: string[];
        ReadOnly?: boolean;
        Mounts?: { Type: string; Target: string; TmpfsOptions?: { SizeBytes?: number } }[];
      };
      const tmpMounts = (spec.Mounts ?? []).filter((m) => m.Type === 'tmpfs').map((m) => [m.Target, m.TmpfsOptions?.SizeBytes]);
      assert.deepEqual(
        { drop: spec.CapabilityDrop, add: spec.CapabilityAdd ?? [], readOnly: spec.ReadOnly, tmpfs: tmpMounts },
        { drop: ['ALL'], add: [], readOnly: true, tmpfs: size ? [['/tmp', size]] : [] },
        name,
      );
      for (const id of tasks(name)) {
        const hc = JSON.parse(mustDocker('inspect', '--format', '{{json .HostConfig}}', id).stdout) as {
          CapDrop: string[] | null;
          ReadonlyRootfs: boolean;
          SecurityOpt: string[] | null;
        };
        assert.deepEqual([hc.CapDrop, hc.ReadonlyRootfs], [['ALL'], true], `${name} ${id.slice(0, 12)}`);
        assert.ok(!(hc.SecurityOpt ?? []).some((o) => o.startsWith('no-new-privileges')), `${name}: ${JSON.stringify(hc.SecurityOpt)}`);
        const out = mustDocker('exec', id, 'sh', '-c', probe).stdout.trim().split('\n');
        assert.deepEqual(out.slice(0, 2), ['root=read-only', size ? 'tmp=writable' : 'tmp=read-only'], `${name}: ${out.join(' ')}`);
        const status = Object.fromEntries(out.slice(2).map((l) => l.split('=')));
        assert.equal(status.CapEff, '0000000000000000', `${name}: ${out.join(' ')}`);
        // Not set by swarm (security_opt ignored, see the deploy step): only the daemon's "no-new-privileges" would.
        assert.equal(status.NoNewPrivs, '0', `${name}: ${out.join(' ')}`);
        assert.notEqual(status.Uid, '0', `${name} runs as root`);
      }
    }
    // Hardened, the Inferrer still takes an upload (staged, validated with ONNX Runtime and published on
    // the models volume) and the modelhosts load it; the metrics service still reports every modelhost.
    const [inferrer] = tasks('inferrer');
    const onnx = readFileSync(path.join(REPO, 'models', 'demo', 'iris.onnx')).toString('base64');
    const put = exec(
      inferrer,
      'node',
      '-e',
      `fetch('http://127.0.0.1:8002/api/v1/models/iris',{method:'PUT',headers:{authorization:'Bearer ${KEY}','content-type':'application/octet-stream'},body:Buffer.from(process.argv[1],'base64')}).then(async r=>console.log(r.status+' '+await r.text()))`,
      onnx,
    );
    assert.match(put.stdout, /^201 /, put.stdout + put.stderr);
    const [metrics] = tasks('metrics');
    await waitFor(
      'the metrics service reporting both modelhosts up',
      () => {
        const m = exec(metrics, 'node', '-e', "fetch('http://127.0.0.1:9400/metrics').then(r=>r.text()).then(t=>console.log(t))").stdout;
        const up = m.split('\n').filter((l) => /^metrics_cluster_modelhost_up\{.*\} 1$/.test(l));
        return up.length === 2 ? true : undefined;
      },
      90_000,
      2000,
    );
  });

  step('nginx reaches every modelhost task over the overlay through tasks.modelhost', async () => {
    const seen = await waitFor(
      'both modelhosts behind nginx',
      () => {
        const s = modelhostsSeenByNginx(10);
        return s.size === 2 ? s : undefined;
      },
      60_000,
      2000,
    );
    assert.deepEqual([...seen].sort(), ['modelhost-1', 'modelhost-2']);
  });

  step('docker service scale converges and nginx follows without a restart', async () => {
    const [balancer] = tasks('balancer');
    mustDocker('service', 'scale', '--detach', `${svc('modelhost')}=3`);
    await waitFor('3 healthy modelhosts', () => converged('modelhost', 3), 180_000, 2000);
    const seen = await waitFor(
      '3 modelhosts behind nginx',
      () => {
        const s = modelhostsSeenByNginx(15);
        return s.size === 3 ? s : undefined;
      },
      60_000,
      2000,
    );
    assert.deepEqual([...seen].sort(), ['modelhost-1', 'modelhost-2', 'modelhost-3']);
    assert.ok(tasks('balancer').includes(balancer), 'the balancer task was replaced');
    mustDocker('service', 'scale', '--detach', `${svc('modelhost')}=2`);
    await waitFor('2 modelhosts again', () => converged('modelhost', 2), 120_000, 2000);
  });

  step('docker service update --image rolls the modelhosts onto a new image', async () => {
    const tag = `inferrer/modelhost:swarm-${process.pid}`;
    must('docker', ['build', '-t', tag, '--label', `org.inferrer.update=${process.pid}`, '-'], {
      input: 'FROM inferrer/modelhost:latest\n',
      env: { DOCKER_BUILDKIT: '0' },
    });
    const newId = mustDocker('image', 'inspect', '--format', '{{.Id}}', tag).stdout.trim();
    const t0 = Date.now();
    must('docker', ['service', 'update', '--detach=false', '--quiet', '--image', tag, svc('modelhost')], { timeoutMs: 600_000 });
    console.log(`# service update --image converged in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const ids = await waitFor(
      '2 healthy modelhosts on the new image',
      () => {
        const c = converged('modelhost', 2);
        return c?.every((id) => mustDocker('inspect', '--format', '{{.Image}}', id).stdout.trim() === newId) ? c : undefined;
      },
      120_000,
      2000,
    );
    assert.equal(ids.length, 2);
    // The update is done once the last task has been watched for update_config.monitor (30 s).
    await waitFor(
      'the update completed',
      () => (docker('service', 'inspect', '--format', '{{.UpdateStatus.State}}', svc('modelhost')).stdout.trim() === 'completed' ? true : undefined),
      90_000,
      2000,
    );
  });

  step('a killed task is replaced', async () => {
    const before = tasks('modelhost');
    mustDocker('kill', before[0]);
    const after = await waitFor(
      'a replacement task',
      () => {
        const c = converged('modelhost', 2);
        return c && !c.includes(before[0]) ? c : undefined;
      },
      180_000,
      2000,
    );
    assert.equal(after.length, 2);
  });
});
