/**
 * docker-compose.yml end to end on the real engine, through the published port on 127.0.0.1: the
 * compose file's first-run instructions as written (an admin key printed once, the model uploaded with
 * `curl -X PUT`, a prediction), predictions through nginx on both modelhosts, `--scale modelhost=3`
 * picked up by the balancer without restarting it, every container hardened (no capabilities, no new
 * privileges, a read-only root, tmpfs only where it writes: docs/deploy.md) while the cluster serves, the
 * one-shot api-keys service writing the key as node with no capability (a fresh volume takes the owner of
 * the image's /run/keys; with nocopy it stays root's and the service fails), a modelhost killed under
 * steady load with no failed
 * request, a new modelhost image rolled out, JSON logs with one request id in the Inferrer's, nginx's and
 * the modelhost's lines, log rotation on every container, and `down -v` leaving nothing behind.
 *
 * Deviations from a user's run, and why: host ports are free ports on 127.0.0.1 instead of 8002/9400/9090/
 * 3000 (INFERRER_PORT…, which the file reads), and Grafana is left out (no image: Grafana is not packaged
 * by Debian and no registry is reachable; deploy/docker/local-bases has no stand-in for it).
 * Debian's docker-compose 1.29 runs the file where the `docker compose` plugin is missing.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { grpcClient } from '../helpers/grpc-client.ts';
import { REPO } from './lib/deploy-files.ts';
import {
  composeCli,
  containerLogLines,
  docker,
  engineSkipReason,
  ensureImages,
  freePort,
  must,
  mustDocker,
  run,
  sleep,
  sweepComposeLeftovers,
  sweepTestTags,
  waitFor,
} from './lib/engine.ts';

const skip =
  engineSkipReason() ??
  (composeCli() ? undefined : 'neither the docker compose plugin nor docker-compose is installed (.ci/run installs Debian docker-compose)');
const PROJECT_PREFIX = 'inferrer-compose-';
const project = `${PROJECT_PREFIX}${process.pid}`;
/** Every service but Grafana (see above). */
const SERVICES = ['inferrer', 'balancer', 'modelhost', 'metrics', 'redis', 'prometheus', 'node-exporter'];

describe('docker-compose.yml on a real Docker engine', { skip: skip ?? false }, () => {
  const compose = composeCli() as string[];
  const env: Record<string, string> = { COMPOSE_PROJECT_NAME: project };
  let base = '';
  let key = '';
  let originalModelhostImage = '';

  const c = (...args: string[]) => run(compose[0], [...compose.slice(1), ...args], { env, timeoutMs: 600_000 });
  const mustC = (...args: string[]) => must(compose[0], [...compose.slice(1), ...args], { env, timeoutMs: 600_000 });
  const ids = (service: string) => mustC('ps', '-q', service).stdout.split('\n').filter(Boolean);
  const health = (id: string) =>
    docker('inspect', '--format', '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}', id).stdout.trim();
  const predict = (extra: Record<string, string> = {}) =>
    fetch(`${base}/api/v1/models/iris/prediction`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...extra },
      body: JSON.stringify({ values: [2, 5, 1, 4] }),
      signal: AbortSignal.timeout(15_000),
    });
  /** X-Modelhost-Id of `n` sequential predictions. */
  const answeredBy = async (n: number) => {
    const seen = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const r = await predict();
      const body = await r.text();
      assert.equal(r.status, 200, body);
      const id = r.headers.get('x-modelhost-id') ?? '?';
      seen.set(id, (seen.get(id) ?? 0) + 1);
    }
    return seen;
  };
  const hostnames = (service: string) => new Set(ids(service).map((id) => mustDocker('inspect', '--format', '{{.Config.Hostname}}', id).stdout.trim()));

  /** A test that needs the running project: fails at once (instead of waiting out its timeouts) when the first run did not get that far. */
  const step = (name: string, fn: () => unknown) =>
    test(name, async () => {
      if (!key) throw new Error('not run: the first run did not get the stack up with an admin key (see the first test)');
      await fn();
    });

  before(async () => {
    // A run killed before its `after` (its pid gone) left its project: removed first.
    const swept = sweepComposeLeftovers(PROJECT_PREFIX);
    if (swept.length > 0) console.log(`# removed what killed runs left: ${swept.join(', ')}`);
    sweepTestTags('inferrer/modelhost', 'rollout-');
    const t0 = Date.now();
    const ms = ensureImages();
    console.log(`# images ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (${[...ms].map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`).join(', ')})`);
    originalModelhostImage = mustDocker('image', 'inspect', '--format', '{{.Id}}', 'inferrer/modelhost:latest').stdout.trim();
    const port = await freePort();
    env.INFERRER_PORT = `127.0.0.1:${port}`;
    env.INFERRER_GRPC_PORT = `127.0.0.1:${await freePort()}`;
    env.METRICS_PORT = `127.0.0.1:${await freePort()}`;
    env.PROMETHEUS_PORT = `127.0.0.1:${await freePort()}`;
    env.GRAFANA_PORT = `127.0.0.1:${await freePort()}`;
    base = `http://127.0.0.1:${port}`;
  });

  after(() => {
    c('down', '-v', '--remove-orphans', '-t', '5');
    // Whatever a failed step left: containers, networks and volumes of this project.
    for (const kind of ['container', 'network', 'volume'] as const) {
      const list = docker(
        kind === 'container' ? 'ps' : kind,
        ...(kind === 'container' ? ['-aq'] : ['ls', '-q']),
        '--filter',
        `label=com.docker.compose.project=${project}`,
      )
        .stdout.split('\n')
        .filter(Boolean);
      if (list.length > 0) docker(kind, 'rm', '-f', ...list);
    }
    if (originalModelhostImage) docker('tag', originalModelhostImage, 'inferrer/modelhost:latest');
    docker('image', 'rm', `inferrer/modelhost:rollout-${process.pid}`);
  });

  test("the file's first-run instructions, as written: start, read the admin key, upload with curl -X PUT, predict", async () => {
    const text = readFileSync(path.join(REPO, 'docker-compose.yml'), 'utf8');
    const block = /^# First run:[^\n]*\n(?:# \S[^\n]*\n)*((?:# {3}[^\n]*\n)+)/m.exec(text)?.[1];
    assert.ok(block, 'docker-compose.yml has no "First run:" block');
    const lines = block
      .split('\n')
      .filter(Boolean)
      .map((l) => l.replace(/^# {3}/, ''));
    assert.deepEqual(
      lines.map((l) => l.split(' ').slice(0, 3).join(' ')),
      ['docker compose up', 'until curl -fs', 'KEY=$(docker compose logs', 'curl -X PUT', 'curl -X POST'],
    );
    const script = lines
      .map((l) => l.replaceAll('docker compose', compose.join(' ')).replaceAll('http://localhost:8002', base))
      // No Grafana image here (see the header): the same command, for every other service.
      .map((l) => (/ up -d --build$/.test(l) ? `${l} ${SERVICES.join(' ')}` : l))
      .map((l) => (l.startsWith('curl ') ? `${l} -sS; echo` : l.startsWith('until ') ? `timeout 300 bash -c '${l}'` : l));
    const t0 = Date.now();
    const r = run('bash', ['-euo', 'pipefail', '-c', script.join('\n')], { env, timeoutMs: 600_000 });
    console.log(`# first run (up --build, key, upload, predict): ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    const out = r.stdout.split('\n').filter((l) => l.startsWith('{'));
    assert.equal(out.length, 2, r.stdout);
    assert.equal(JSON.parse(out[0]).http_status.code, 201, out[0]);
    assert.deepEqual(JSON.parse(out[1]).values, [1], out[1]);
    // The key was printed once, by the api-keys service, and the Inferrer holds it.
    const printed = mustC('logs', '--no-color', 'api-keys').stdout.match(/"adminKey":"([0-9a-f]{48})"/g) ?? [];
    assert.equal(printed.length, 1);
    key = /"adminKey":"([0-9a-f]{48})"/.exec(printed[0])?.[1] as string;
    const noKey = await fetch(`${base}/api/v1/models/iris`, { method: 'DELETE' });
    assert.equal(noKey.status, 401);
  });

  step('every service is up and healthy', async () => {
    await waitFor(
      'every service healthy',
      () => {
        const states = SERVICES.flatMap((s) => ids(s).map((id) => `${s}:${health(id)}`));
        return states.every((x) => /:(healthy|running)$/.test(x)) && states.length >= SERVICES.length + 1 ? states : undefined;
      },
      180_000,
    );
    assert.equal(ids('modelhost').length, 2);
  });

  step('predictions go through nginx to both modelhosts', async () => {
    const seen = await answeredBy(12);
    assert.deepEqual(new Set(seen.keys()), hostnames('modelhost'), JSON.stringify([...seen]));
  });

  step("gRPC on the published gRPC port (Triton's service): the server is ready and ModelInfer answers iris with the key", async () => {
    const client = grpcClient(env.INFERRER_GRPC_PORT);
    const unary = (method: string, req: object): Promise<{ err: grpc.ServiceError | null; res: any }> => {
      const md = new grpc.Metadata();
      md.set('authorization', `Bearer ${key}`);
      return new Promise((resolve) =>
        client[method](req, md, { deadline: Date.now() + 15_000 }, (err: grpc.ServiceError | null, res: unknown) => resolve({ err, res })),
      );
    };
    try {
      const ready = await unary('ServerReady', {});
      assert.equal(ready.err, null, String(ready.err));
      assert.equal(ready.res.ready, true);
      const x = Buffer.from(new Float32Array([5.1, 3.5, 1.4, 0.2]).buffer);
      const r = await unary('ModelInfer', { model_name: 'iris', inputs: [{ name: 'input', datatype: 'FP32', shape: ['1', '4'] }], raw_input_contents: [x] });
      assert.equal(r.err, null, String(r.err));
      assert.ok(r.res.outputs.length > 0 && r.res.raw_output_contents.length === r.res.outputs.length, JSON.stringify(r.res.outputs));
    } finally {
      client.close();
    }
  });

  step('a batch job is queued in Redis (BullMQ) and ends SUCCEEDED; the Inferrer logs no Redis error', async () => {
    const rows = '[5.1,3.5,1.4,0.2]\n[6.7,2.5,5.8,1.8]\n[5.9,3.0,4.2,1.5]\n';
    const submit = await fetch(`${base}/api/v1/models/iris/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/x-ndjson' },
      body: rows,
      signal: AbortSignal.timeout(15_000),
    });
    const submitted = (await submit.json()) as { job: { id: string } };
    assert.equal(submit.status, 202, JSON.stringify(submitted));
    const job = await waitFor(
      'the job SUCCEEDED',
      async () => {
        const r = await fetch(`${base}/api/v1/jobs/${submitted.job.id}`, { headers: { authorization: `Bearer ${key}` } });
        const j = ((await r.json()) as { job: { state: string; items: { total: number; succeeded: number } } }).job;
        if (['FAILED', 'PARTIAL', 'CANCELLED'].includes(j.state)) throw new Error(JSON.stringify(j));
        return j.state === 'SUCCEEDED' ? j : undefined;
      },
      60_000,
    );
    assert.deepEqual([job.items.total, job.items.succeeded], [3, 3]);
    const results = await fetch(`${base}/api/v1/jobs/${submitted.job.id}/results`, { headers: { authorization: `Bearer ${key}` } });
    assert.equal((await results.text()).trim().split('\n').length, 3);
    // Redis refusing the Inferrer (e.g. protected mode on a network address) shows only as these lines.
    for (const id of ids('inferrer')) {
      const bad = containerLogLines(id).filter((l) => /Redis error/.test(l));
      assert.deepEqual(bad.slice(0, 3), [], 'the Inferrer could not talk to Redis');
    }
  });

  step('every container runs as docs/deploy.md says: no capabilities, no-new-privileges, a read-only root, tmpfs only where it writes', async () => {
    // What `docker inspect` shows for each service's containers (HostConfig), and what the process sees.
    const want: Record<string, { capAdd: string[]; tmpfs: Record<string, string> }> = {
      inferrer: { capAdd: [], tmpfs: { '/tmp': 'size=64m' } },
      modelhost: { capAdd: [], tmpfs: { '/tmp': 'size=64m' } },
      metrics: { capAdd: [], tmpfs: { '/tmp': 'size=64m' } },
      balancer: { capAdd: [], tmpfs: { '/tmp': 'size=256m' } },
      redis: { capAdd: [], tmpfs: {} },
      prometheus: { capAdd: [], tmpfs: {} },
      'node-exporter': { capAdd: [], tmpfs: {} },
      'api-keys': { capAdd: [], tmpfs: {} },
    };
    for (const [service, w] of Object.entries(want)) {
      const list = mustC('ps', '-aq', service).stdout.split('\n').filter(Boolean);
      assert.ok(list.length > 0, `no ${service} container`);
      for (const id of list) {
        const hc = JSON.parse(mustDocker('inspect', '--format', '{{json .HostConfig}}', id).stdout) as {
          CapDrop: string[] | null;
          CapAdd: string[] | null;
          ReadonlyRootfs: boolean;
          SecurityOpt: string[] | null;
          Tmpfs: Record<string, string> | null;
          Privileged: boolean;
        };
        // `pid: host` (node-exporter) makes Docker add label=disable (no SELinux label for a host namespace).
        const securityOpt = (hc.SecurityOpt ?? []).filter((o) => o !== 'label=disable');
        const got = {
          CapDrop: hc.CapDrop,
          CapAdd: hc.CapAdd ?? [],
          ReadonlyRootfs: hc.ReadonlyRootfs,
          SecurityOpt: securityOpt,
          Tmpfs: hc.Tmpfs ?? {},
          Privileged: hc.Privileged,
        };
        const expected = {
          CapDrop: ['ALL'],
          CapAdd: w.capAdd,
          ReadonlyRootfs: true,
          SecurityOpt: ['no-new-privileges:true'],
          Tmpfs: w.tmpfs,
          Privileged: false,
        };
        assert.deepEqual(got, expected, `${service} ${id.slice(0, 12)}`);
      }
    }
    // Inside each running container: a write to / fails, /tmp takes one where it is a tmpfs, the main
    // process has no effective capability and cannot gain privileges, and runs as a user other than root.
    // The main process's status: /proc/1 in its own pid namespace, its host pid under `pid: host` (node-exporter).
    const probe = (status: string) =>
      [
        'if (echo x >/hardening-probe) 2>/dev/null; then echo root=writable; else echo root=read-only; fi',
        'if [ -d /tmp ] && (echo x >/tmp/hardening-probe) 2>/dev/null; then rm -f /tmp/hardening-probe; echo tmp=writable; else echo tmp=read-only; fi',
        `sed -n 's/^\\(Uid\\|CapEff\\|NoNewPrivs\\):[[:space:]]*\\([0-9a-f]*\\).*/\\1=\\2/p' ${status}`,
      ].join('; ');
    for (const service of SERVICES) {
      for (const id of ids(service)) {
        const hostPid = mustDocker('inspect', '--format', '{{.HostConfig.PidMode}} {{.State.Pid}}', id).stdout.trim().split(' ');
        const out = mustDocker('exec', id, 'sh', '-c', probe(hostPid[0] === 'host' ? `/proc/${hostPid[1]}/status` : '/proc/1/status'))
          .stdout.trim()
          .split('\n');
        const tmp = want[service].tmpfs['/tmp'] ? 'tmp=writable' : 'tmp=read-only';
        assert.deepEqual(out.slice(0, 2), ['root=read-only', tmp], `${service} ${id.slice(0, 12)}: ${out.join(' ')}`);
        const status = Object.fromEntries(out.slice(2).map((l) => l.split('=')));
        assert.equal(status.CapEff, '0000000000000000', `${service}: ${out.join(' ')}`);
        assert.equal(status.NoNewPrivs, '1', `${service}: ${out.join(' ')}`);
        assert.notEqual(status.Uid, '0', `${service} runs as root`);
      }
    }
    // api-keys has exited (it runs once): its user is the image's (node), as no `user:` overrides it, and
    // a process in a container compose runs with its settings is as hardened as the others'.
    for (const id of mustC('ps', '-aq', 'api-keys').stdout.split('\n').filter(Boolean)) {
      const [user, exit] = mustDocker('inspect', '--format', '{{.Config.User}} {{.State.ExitCode}}', id).stdout.trim().split(' ');
      assert.deepEqual([user, exit], ['node', '0'], `api-keys ${id.slice(0, 12)}`);
    }
    const keysProbe = mustC('run', '--rm', '-T', 'api-keys', 'sh', '-c', probe('/proc/self/status')).stdout.trim().split('\n');
    assert.deepEqual(keysProbe, ['root=read-only', 'tmp=read-only', 'Uid=1000', 'CapEff=0000000000000000', 'NoNewPrivs=1'], 'api-keys');
    // The hardened cluster still works end to end: uploads (the first test), predictions, jobs (above)
    // and metrics: the metrics service's cluster view, and Prometheus storing scrapes on its volume.
    const metrics = await fetch(`http://${env.METRICS_PORT}/metrics`, { signal: AbortSignal.timeout(15_000) });
    const text = await metrics.text();
    assert.equal(metrics.status, 200, text.slice(0, 500));
    assert.match(text, /^metrics_cluster_modelhost_up\{.*\} 1$/m);
    await waitFor(
      'Prometheus scraping the modelhosts',
      async () => {
        const r = await fetch(`http://${env.PROMETHEUS_PORT}/api/v1/query?query=${encodeURIComponent('up{job="modelhost"} == 1')}`);
        const body = (await r.json()) as { data: { result: unknown[] } };
        return body.data.result.length >= 2 ? true : undefined;
      },
      90_000,
      2000,
    );
  });

  step(
    "api-keys writes the key as node with no capability: a fresh volume takes the owner of the image's /run/keys; with nocopy it stays root's and api-keys fails",
    () => {
      // The volume as compose's run left it, seen through a mount that copies nothing (a mount at /run/keys
      // would set the owner itself): the folder node's (0700), the key file node's (0400).
      const stat = (volume: string) =>
        mustDocker(
          'run',
          '--rm',
          '--network',
          'none',
          '--mount',
          `type=volume,src=${volume},dst=/v,readonly,volume-nocopy`,
          '--entrypoint',
          'sh',
          'inferrer/inferrer:latest',
          '-c',
          "find /v -exec stat -c '%n %u:%g %a' {} +",
        ).stdout.trim();
      assert.equal(stat(`${project}_api-keys`), '/v 1000:1000 700\n/v/api-keys.json 1000:1000 400');
      // Run again by compose, on the same volume: it finds the file and prints no key.
      const again = mustC('run', '--rm', '-T', 'api-keys');
      assert.match(again.stdout, /"msg":"api-keys\.json exists: no key created"/);
      assert.doesNotMatch(again.stdout + again.stderr, /adminKey/);
      // Its command, as compose ran it, in a container with its settings on fresh volumes (labelled with the
      // project, so that a killed run's sweep removes them).
      const [first] = mustC('ps', '-aq', 'api-keys').stdout.split('\n').filter(Boolean);
      const cmd = JSON.parse(mustDocker('inspect', '--format', '{{json .Config.Cmd}}', first).stdout) as string[];
      const hardened = ['--cap-drop', 'ALL', '--read-only', '--security-opt', 'no-new-privileges:true', '--network', 'none'];
      const apiKeys = (mount: string) => docker('run', '--rm', ...hardened, '--mount', mount, 'inferrer/inferrer:latest', ...cmd);
      const fresh = `${project}-keys-fresh`;
      const nocopy = `${project}-keys-nocopy`;
      try {
        for (const v of [fresh, nocopy]) mustDocker('volume', 'create', '--label', `com.docker.compose.project=${project}`, v);
        const created = apiKeys(`type=volume,src=${fresh},dst=/run/keys`);
        assert.equal(created.status, 0, created.stderr);
        assert.match(created.stdout, /"adminKey":"[0-9a-f]{48}"/);
        assert.equal(stat(fresh), '/v 1000:1000 700\n/v/api-keys.json 1000:1000 400');
        const second = apiKeys(`type=volume,src=${fresh},dst=/run/keys`);
        assert.equal(second.status, 0, second.stderr);
        assert.match(second.stdout, /no key created/);
        assert.doesNotMatch(second.stdout, /adminKey/);
        // Without the copy (nocopy) the fresh volume is root's (0755) and node, with no capability, cannot
        // write it: the image's folder is what makes the run above work.
        const denied = apiKeys(`type=volume,src=${nocopy},dst=/run/keys,volume-nocopy`);
        assert.notEqual(denied.status, 0, denied.stdout);
        assert.match(denied.stderr, /EACCES/);
        assert.doesNotMatch(denied.stdout, /adminKey/);
        assert.equal(stat(nocopy), '/v 0:0 755');
      } finally {
        docker('volume', 'rm', '-f', fresh, nocopy);
      }
    },
  );

  step('--scale modelhost=3 is picked up by the balancer, which is not restarted', async () => {
    const [balancer] = ids('balancer');
    const started = mustDocker('inspect', '--format', '{{.State.StartedAt}} {{.RestartCount}}', balancer).stdout.trim();
    mustC('up', '-d', '--no-build', '--no-recreate', '--scale', 'modelhost=3', 'modelhost');
    await waitFor('3 healthy modelhosts', () => (ids('modelhost').filter((id) => health(id) === 'healthy').length === 3 ? true : undefined), 180_000);
    const want = hostnames('modelhost');
    assert.equal(want.size, 3);
    const seen = await waitFor(
      'predictions on all 3 modelhosts',
      async () => {
        const s = await answeredBy(12);
        return s.size === 3 ? s : undefined;
      },
      60_000,
      2000,
    );
    assert.deepEqual(new Set(seen.keys()), want);
    assert.equal(mustDocker('inspect', '--format', '{{.State.StartedAt}} {{.RestartCount}}', balancer).stdout.trim(), started);
    assert.ok(
      containerLogLines(balancer).some((l) => l.includes('modelhost addresses changed: reloading nginx')),
      'the balancer did not reload',
    );
  });

  step('docker kill of a modelhost under steady load fails no request', async () => {
    const victim = ids('modelhost')[0];
    const stats = { ok: 0, failed: 0, codes: new Map<string, number>() };
    let stop = false;
    const worker = async () => {
      while (!stop) {
        try {
          const r = await predict();
          await r.arrayBuffer();
          if (r.status === 200) stats.ok++;
          else {
            stats.failed++;
            stats.codes.set(String(r.status), (stats.codes.get(String(r.status)) ?? 0) + 1);
          }
        } catch (err) {
          stats.failed++;
          stats.codes.set(String((err as Error).name), (stats.codes.get(String((err as Error).name)) ?? 0) + 1);
        }
        await sleep(20);
      }
    };
    const t0 = Date.now();
    const workers = Array.from({ length: 4 }, worker);
    await sleep(3000);
    mustDocker('kill', victim);
    await sleep(9000);
    stop = true;
    await Promise.all(workers);
    const seconds = (Date.now() - t0) / 1000;
    console.log(`# kill under load: ${stats.ok} ok, ${stats.failed} failed in ${seconds.toFixed(1)} s (${(stats.ok / seconds).toFixed(0)} req/s)`);
    assert.ok(stats.ok > 100, `too little load to mean anything: ${stats.ok}`);
    assert.equal(stats.failed, 0, JSON.stringify([...stats.codes]));
  });

  step('a new modelhost image is rolled out and serves', async () => {
    const tag = `inferrer/modelhost:rollout-${process.pid}`;
    must('docker', ['build', '-t', tag, '--label', `org.inferrer.rollout=${process.pid}`, '-'], {
      input: 'FROM inferrer/modelhost:latest\n',
      env: { DOCKER_BUILDKIT: '0' },
    });
    const newId = mustDocker('image', 'inspect', '--format', '{{.Id}}', tag).stdout.trim();
    assert.notEqual(newId, originalModelhostImage);
    mustDocker('tag', tag, 'inferrer/modelhost:latest');
    const before = new Set(ids('modelhost'));
    mustC('up', '-d', '--no-build', '--scale', 'modelhost=2', 'modelhost');
    await waitFor(
      '2 healthy modelhosts on the new image',
      () => {
        const now = ids('modelhost');
        const fresh = now.filter(
          (id) => !before.has(id) && health(id) === 'healthy' && mustDocker('inspect', '--format', '{{.Image}}', id).stdout.trim() === newId,
        );
        return now.length === 2 && fresh.length === 2 ? true : undefined;
      },
      180_000,
    );
    const want = hostnames('modelhost');
    const seen = await waitFor(
      'predictions on both new modelhosts',
      async () => {
        const s = await answeredBy(12);
        return s.size === 2 && [...s.keys()].every((h) => want.has(h)) ? s : undefined;
      },
      60_000,
      2000,
    );
    assert.deepEqual(new Set(seen.keys()), want);
  });

  step('logs: JSON lines from every container (Redis excepted), one request id through Inferrer, nginx and a modelhost', async () => {
    const requestId = `compose-test-${process.pid}-${Date.now()}`;
    const r = await predict({ 'x-request-id': requestId });
    assert.equal(r.status, 200);
    await r.arrayBuffer();
    const reqId = r.headers.get('x-request-id') as string;
    assert.ok(reqId);
    await sleep(1500); // log lines are flushed once per event-loop turn; give Docker a moment
    const hops = new Map<string, number>();
    for (const service of SERVICES) {
      for (const id of ids(service)) {
        const lines = containerLogLines(id);
        if (service === 'redis') continue; // Redis has no structured log format (docs/deploy.md)
        const bad = lines.filter((l) => {
          try {
            return typeof JSON.parse(l) !== 'object';
          } catch {
            return true;
          }
        });
        assert.deepEqual(bad.slice(0, 5), [], `${service} ${id.slice(0, 12)} wrote non-JSON lines`);
        for (const l of lines) if (JSON.parse(l).reqId === reqId) hops.set(service, (hops.get(service) ?? 0) + 1);
      }
    }
    assert.deepEqual([...hops.keys()].sort(), ['balancer', 'inferrer', 'modelhost'], `request ${reqId} seen in ${JSON.stringify([...hops])}`);
  });

  step('every container rotates its json-file log (max-size 20m, max-file 5)', () => {
    const all = mustC('ps', '-aq').stdout.split('\n').filter(Boolean);
    assert.ok(all.length >= SERVICES.length + 1);
    for (const id of all) {
      const cfg = JSON.parse(mustDocker('inspect', '--format', '{{json .HostConfig.LogConfig}}', id).stdout) as {
        Type: string;
        Config: Record<string, string>;
      };
      assert.deepEqual(cfg, { Type: 'json-file', Config: { 'max-file': '5', 'max-size': '20m' } }, id);
    }
  });

  step('down -v leaves no container, network or volume behind', () => {
    mustC('down', '-v', '--remove-orphans', '-t', '10');
    for (const kind of ['ps -a', 'network ls', 'volume ls']) {
      const left = docker(...kind.split(' '), '-q', '--filter', `label=com.docker.compose.project=${project}`).stdout.trim();
      assert.equal(left, '', `${kind}: ${left}`);
    }
    assert.equal(docker('ps', '-aq', '--filter', `name=${project}`).stdout.trim(), '');
  });
});
