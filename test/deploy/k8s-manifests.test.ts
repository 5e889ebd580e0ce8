/**
 * Every object in deploy/k8s validates with the kubernetes-models packages (KEDA's included) and has no
 * field the API does not know; the kustomizations list what is there (and render with `kubectl kustomize`
 * where kubectl is installed); probes, Services, PDBs, autoscalers and the GPU variant point at what
 * exists. No cluster runs here: these manifests have never been applied by this repository's checks.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { K8S_DIR, REPO, type Yaml, readYaml } from './lib/deploy-files.ts';
import { k8sObjects } from './lib/env-check.ts';
import { createFieldChecker, modelClass } from './lib/k8s-fields.ts';

const objects = k8sObjects();
const checkFields = createFieldChecker(objects.map(({ obj }) => ({ apiVersion: String(obj.apiVersion), kind: String(obj.kind) })));
const nameOf = (obj: Yaml) => String((obj.metadata as Yaml).name);
const label = (file: string, obj: Yaml) => `${file} ${String(obj.kind)}/${nameOf(obj)}`;
const ofKind = (kind: string) => objects.filter((o) => o.obj.kind === kind).map((o) => o.obj);
const podTemplate = (d: Yaml) => (d.spec as Yaml).template as Yaml;
const podLabels = (d: Yaml) => ((podTemplate(d).metadata as Yaml).labels ?? {}) as Record<string, string>;
const containers = (d: Yaml) => (podTemplate(d).spec as Yaml).containers as Yaml[];
const matches = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);

async function validateObject(obj: Yaml): Promise<string[]> {
  const cls = await modelClass(String(obj.apiVersion), String(obj.kind));
  if (!cls) return [`no kubernetes-models class for ${String(obj.apiVersion)} ${String(obj.kind)}`];
  const problems: string[] = [];
  try {
    new cls(obj).validate();
  } catch (err) {
    problems.push((err as Error).message);
  }
  for (const field of checkFields(obj)) problems.push(`unknown field ${field}`);
  return problems;
}

describe('every object validates (kubernetes-models, @kubernetes-models/keda)', () => {
  test('there are objects to check', () => {
    assert.ok(objects.length >= 20, `only ${objects.length} objects under deploy/k8s`);
  });
  for (const { file, obj } of objects) {
    test(label(file, obj), async () => {
      assert.deepEqual(await validateObject(obj), []);
      if (obj.kind !== 'Namespace') assert.equal((obj.metadata as Yaml).namespace, 'inferrer', 'every object names its namespace');
    });
  }

  test('a misspelt field and a wrong type are reported, so the check can fail', async () => {
    const d = structuredClone(ofKind('Deployment').find((o) => nameOf(o) === 'modelhost') as Yaml);
    const c = containers(d)[0];
    c.readinesProbe = c.readinessProbe;
    delete c.readinessProbe;
    (d.spec as Yaml).replicas = 'two';
    const problems = await validateObject(d);
    assert.ok(
      problems.some((p) => p.includes('unknown field spec.template.spec.containers[0].readinesProbe')),
      problems.join('\n'),
    );
    assert.ok(
      problems.some((p) => p.includes('replicas must be integer')),
      problems.join('\n'),
    );
    const so = structuredClone(ofKind('ScaledObject')[0]);
    ((so.spec as Yaml).triggers as Yaml[])[0].metadatas = {};
    assert.deepEqual(checkFields(so), ['spec.triggers[0].metadatas']);
  });
});

describe('kustomizations', () => {
  const dirs = readdirSync(K8S_DIR).filter((d) => existsSync(path.join(K8S_DIR, d, 'kustomization.yaml')));

  test('base, keda and gpu exist', () => {
    assert.deepEqual(dirs.sort(), ['base', 'gpu', 'keda']);
  });

  for (const dir of dirs) {
    test(`${dir}: every resource listed exists and every manifest is listed`, () => {
      const k = readYaml(path.join('deploy', 'k8s', dir, 'kustomization.yaml'));
      const resources = (k.resources ?? []) as string[];
      for (const r of resources) assert.ok(existsSync(path.join(K8S_DIR, dir, r)), `${dir}: ${r} is missing`);
      const files = readdirSync(path.join(K8S_DIR, dir)).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
      for (const f of files) assert.ok(resources.includes(f), `${dir}/${f} is not in its kustomization`);
    });
  }

  const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0;
  for (const dir of dirs) {
    test(`kubectl kustomize deploy/k8s/${dir} renders objects that validate`, { skip: kubectl ? false : 'kubectl not installed' }, async () => {
      const r = spawnSync('kubectl', ['kustomize', path.join('deploy', 'k8s', dir)], { cwd: REPO, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const rendered = parseAllDocuments(r.stdout).map((d) => d.toJS() as Yaml);
      assert.ok(rendered.length > 0);
      for (const obj of rendered) assert.deepEqual(await validateObject(obj), [], `${dir}: ${String(obj.kind)}/${nameOf(obj)}`);
      const hpas = rendered.filter((o) => o.kind === 'HorizontalPodAutoscaler').map(nameOf);
      if (dir === 'keda') {
        // KEDA makes its own HPA for the modelhosts; the CPU one must be gone.
        assert.ok(!hpas.includes('modelhost'));
        assert.ok(rendered.some((o) => o.kind === 'ScaledObject'));
      } else assert.ok(hpas.includes('modelhost'));
    });
  }
});

describe('wiring', () => {
  const deployments = ofKind('Deployment');

  test('every container has readiness and liveness probes on a declared port, at the service health paths', () => {
    for (const d of deployments) {
      for (const c of containers(d)) {
        const ports = ((c.ports ?? []) as Yaml[]).map((p) => p.name);
        for (const probe of ['readinessProbe', 'livenessProbe']) {
          const get = (c[probe] as Yaml | undefined)?.httpGet as Yaml | undefined;
          assert.ok(get, `${nameOf(d)}/${String(c.name)}: no ${probe}`);
          assert.ok(ports.includes(get.port as string), `${nameOf(d)}: ${probe} port ${String(get.port)} is not a container port`);
          assert.match(String(get.path), /^\/(health\/(live|ready)|nginx\/status)$/, `${nameOf(d)}: ${probe} path`);
        }
        const res = c.resources as Yaml | undefined;
        assert.ok((res?.requests as Yaml | undefined)?.cpu, `${nameOf(d)}: no CPU request (the HPA needs one)`);
        assert.ok((res?.limits as Yaml | undefined)?.memory, `${nameOf(d)}: no memory limit`);
      }
    }
    const mh = deployments.find((d) => nameOf(d) === 'modelhost') as Yaml;
    assert.equal(((containers(mh)[0].readinessProbe as Yaml).httpGet as Yaml).path, '/health/ready');
  });

  test('Services and PodDisruptionBudgets select pods that exist; named target ports exist', () => {
    for (const s of ofKind('Service')) {
      const sel = (s.spec as Yaml).selector as Record<string, string>;
      const targets = [...deployments, ...ofKind('StatefulSet')].filter((d) => matches(sel, podLabels(d)));
      assert.ok(targets.length > 0, `Service ${nameOf(s)} selects no pods`);
      for (const p of (s.spec as Yaml).ports as Yaml[]) {
        for (const d of targets)
          assert.ok(
            containers(d).some((c) => ((c.ports ?? []) as Yaml[]).some((cp) => cp.name === p.targetPort)),
            `Service ${nameOf(s)}: ${nameOf(d)} has no port ${String(p.targetPort)}`,
          );
      }
    }
    for (const p of ofKind('PodDisruptionBudget')) {
      const sel = ((p.spec as Yaml).selector as Yaml).matchLabels as Record<string, string>;
      assert.ok(
        deployments.some((d) => matches(sel, podLabels(d))),
        `PDB ${nameOf(p)} selects no pods`,
      );
    }
  });

  test('the modelhost Service is headless, so nginx sees every pod, CPU and GPU', () => {
    const s = ofKind('Service').find((o) => nameOf(o) === 'modelhost') as Yaml;
    assert.equal((s.spec as Yaml).clusterIP, 'None');
    const sel = (s.spec as Yaml).selector as Record<string, string>;
    assert.ok(matches(sel, podLabels(deployments.find((d) => nameOf(d) === 'modelhost-gpu') as Yaml)));
  });

  test('the inferrer Service carries gRPC (h2c) to the container port GRPC_PORT opens', () => {
    const s = ofKind('Service').find((o) => nameOf(o) === 'inferrer') as Yaml;
    const port = ((s.spec as Yaml).ports as Yaml[]).find((p) => p.name === 'grpc');
    assert.ok(port, 'the inferrer Service has a grpc port');
    assert.equal(port.port, 8001, "Triton's gRPC port");
    assert.equal(port.appProtocol, 'kubernetes.io/h2c', 'gRPC without TLS is HTTP/2 cleartext');
    const c = containers(deployments.find((d) => nameOf(d) === 'inferrer') as Yaml).find((x) => x.name === 'inferrer') as Yaml;
    const target = ((c.ports ?? []) as Yaml[]).find((p) => p.name === port.targetPort);
    assert.ok(target, `the inferrer container has no port ${String(port.targetPort)}`);
    const grpcPort = ((c.env ?? []) as Yaml[]).find((e) => e.name === 'GRPC_PORT')?.value;
    assert.equal(Number(grpcPort), target.containerPort, 'the container listens for gRPC where the port points');
  });

  test('the Ingress reaches the Inferrer, the only public service', () => {
    const ing = ofKind('Ingress')[0];
    const backend = (((((ing.spec as Yaml).rules as Yaml[])[0].http as Yaml).paths as Yaml[])[0].backend as Yaml).service as Yaml;
    assert.equal(backend.name, 'inferrer');
  });

  test('models: a ReadWriteMany claim, read-only in modelhosts, read-write in the Inferrer', () => {
    const pvc = ofKind('PersistentVolumeClaim')[0];
    assert.deepEqual((pvc.spec as Yaml).accessModes, ['ReadWriteMany']);
    for (const d of deployments) {
      const vols = ((podTemplate(d).spec as Yaml).volumes ?? []) as Yaml[];
      const v = vols.find((x) => (x.persistentVolumeClaim as Yaml | undefined)?.claimName === nameOf(pvc));
      if (!v) continue;
      const readOnly = (v.persistentVolumeClaim as Yaml).readOnly === true;
      assert.equal(readOnly, nameOf(d) !== 'inferrer', `${nameOf(d)}: models mount`);
    }
  });

  test('autoscalers: an HPA on CPU, a KEDA ScaledObject on modelhost_queue_depth, both on existing Deployments', () => {
    const names = deployments.map(nameOf);
    for (const h of ofKind('HorizontalPodAutoscaler')) {
      assert.ok(names.includes(String(((h.spec as Yaml).scaleTargetRef as Yaml).name)));
      assert.equal((((h.spec as Yaml).metrics as Yaml[])[0].resource as Yaml).name, 'cpu');
    }
    const so = ofKind('ScaledObject')[0];
    assert.equal(((so.spec as Yaml).scaleTargetRef as Yaml).name, 'modelhost');
    const prom = ((so.spec as Yaml).triggers as Yaml[]).find((t) => t.type === 'prometheus') as Yaml;
    assert.match(String((prom.metadata as Yaml).query), /\bmodelhost_queue_depth\b/);
  });

  test('the GPU modelhost asks for nvidia.com/gpu and runs the CUDA provider', () => {
    const d = deployments.find((x) => nameOf(x) === 'modelhost-gpu') as Yaml;
    const c = containers(d)[0];
    assert.equal(((c.resources as Yaml).limits as Yaml)['nvidia.com/gpu'], 1);
    const providers = ((c.env as Yaml[]).find((e) => e.name === 'EXECUTION_PROVIDERS') as Yaml).value;
    assert.match(String(providers), /^cuda\b/);
    assert.match(String(c.image), /modelhost-gpu/);
  });
});

// What running the Swarm stack on a real engine found (test/deploy/swarm.test.ts), checked here where no
// cluster runs: a secret mounted 0400 for root locks out a service that runs as another user, and the
// balancer must work on whatever nginx its image has.
describe('what the real-engine runs found', () => {
  const workloads = [...ofKind('Deployment'), ...ofKind('StatefulSet')];
  const envOf = (c: Yaml) => Object.fromEntries(((c.env ?? []) as Yaml[]).map((e) => [String(e.name), String(e.value ?? '')]));
  const configMapData = (name: string) => (ofKind('ConfigMap').find((o) => nameOf(o) === name)?.data ?? {}) as Record<string, string>;

  test('every secret volume is readable by the user its containers run as', () => {
    let seen = 0;
    for (const d of workloads) {
      const spec = podTemplate(d).spec as Yaml;
      const pod = (spec.securityContext ?? {}) as Yaml;
      for (const v of (spec.volumes ?? []) as Yaml[]) {
        const secret = v.secret as Yaml | undefined;
        if (!secret) continue;
        seen++;
        const mode = Number(secret.defaultMode ?? 0o644);
        for (const c of containers(d)) {
          if (!((c.volumeMounts ?? []) as Yaml[]).some((m) => m.name === v.name)) continue;
          const user = Number(((c.securityContext ?? {}) as Yaml).runAsUser ?? pod.runAsUser);
          // The kubelet makes secret files root's, group fsGroup with the group read bit; others need o+r.
          const readable = user === 0 || (mode & 0o004) !== 0 || (pod.fsGroup !== undefined && (mode & 0o400) !== 0);
          assert.ok(
            readable,
            `${nameOf(d)}/${String(c.name)}: secret ${String(secret.secretName)} mode ${mode.toString(8)} is not readable by uid ${user} (no fsGroup)`,
          );
        }
      }
    }
    assert.ok(seen > 0, 'no secret volume found: the check checks nothing');
  });

  test("the balancer leaves the nginx version to its entrypoint and keeps nginx's files on a writable volume", () => {
    const d = ofKind('Deployment').find((o) => nameOf(o) === 'balancer') as Yaml;
    const [c] = containers(d);
    const env = { ...configMapData('balancer-env'), ...envOf(c) };
    // on would need nginx >= 1.27.3 in whatever image is deployed; auto (unset) asks `nginx -v` at start.
    assert.ok(env.UPSTREAM_RESOLVE === undefined || env.UPSTREAM_RESOLVE === 'auto', `UPSTREAM_RESOLVE=${env.UPSTREAM_RESOLVE}`);
    assert.ok(env.MODELHOST_DNS, 'the balancer follows the modelhost Service by DNS');
    assert.equal(c.command, undefined, "the image's entrypoint (nginx/balancer.sh) must run");
    const prefix = env.NGINX_PREFIX ?? '/tmp/nginx';
    const ro = ((c.securityContext ?? {}) as Yaml).readOnlyRootFilesystem === true;
    if (ro)
      assert.ok(
        ((c.volumeMounts ?? []) as Yaml[]).some((m) => prefix.startsWith(`${String(m.mountPath)}/`) || prefix === m.mountPath),
        `${prefix} is on a read-only root`,
      );
    assert.equal(
      Number((((podTemplate(d).spec as Yaml).securityContext ?? {}) as Yaml).runAsUser),
      101,
      'the nginx user of the balancer image (uid 101, as in the official image and the local stand-in)',
    );
  });
});
