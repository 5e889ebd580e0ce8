/**
 * The environment each deployment file gives each service, and the check of it against the service's own
 * config schema (services/<service>/src/config.ts, a strict zod object): every variable must be one the
 * service reads (or an allow-listed runtime variable), and the values must parse as the service would
 * parse them at start (loadEnvConfig in @inferrer/telemetry), required ones included.
 *
 * Which service a container runs is read from its command (`node --import tsx services/<name>/src/main.ts`,
 * from the deployment file or the image's Dockerfile CMD); the nginx balancer's variables are the ones
 * nginx/render.sh reads.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  COMPOSE_FILES,
  K8S_DIR,
  REPO,
  type Yaml,
  composeEnvironment,
  dockerfileForImage,
  finalStage,
  interpolateDeep,
  parseDockerfile,
  readYaml,
  readYamlDocs,
  stageEnv,
  stageExec,
  yamlFilesUnder,
} from './deploy-files.ts';

/** Variables that are not the application's: Node's, glibc's allocator's and the NVIDIA runtime's. */
export const RUNTIME_ENV_ALLOWLIST: ReadonlySet<string> = new Set([
  'NODE_ENV',
  'NODE_OPTIONS',
  'TZ',
  'MALLOC_MMAP_THRESHOLD_',
  // ONNX Runtime's cache (a telemetry device id) on the writable /tmp of a read-only root (the images set it).
  'XDG_CACHE_HOME',
  // ONNX Runtime's own switch for its usage telemetry (the images turn it off).
  'ORT_DISABLE_TELEMETRY',
  'NVIDIA_VISIBLE_DEVICES',
  'NVIDIA_DRIVER_CAPABILITIES',
]);

export interface ServiceEnv {
  /** e.g. "docker-compose.yml services.modelhost" or "deploy/k8s/base/modelhost.yaml Deployment/modelhost container modelhost". */
  where: string;
  image?: string;
  dockerfile?: string;
  /** The command the container runs (the file's, else the image's ENTRYPOINT + CMD). */
  command?: string[];
  /** Image ENV overlaid with the file's variables, as the container sees them. */
  env: Record<string, string>;
}

/** Which program a container runs: a node service by its main.ts, the balancer by render.sh, else unknown. */
export type Program = { kind: 'service'; name: string } | { kind: 'balancer' } | { kind: 'other' };

export function programOf(s: ServiceEnv): Program {
  const cmd = s.command ?? [];
  const main = cmd.find((a) => /^services\/[a-z-]+\/src\/main\.ts$/.test(a));
  if (main) return { kind: 'service', name: main.split('/')[1] };
  if (cmd.some((a) => a.endsWith('inferrer-balancer') || a.endsWith('balancer.sh') || a.endsWith('inferrer-render-nginx') || a.endsWith('render.sh')))
    return { kind: 'balancer' };
  return { kind: 'other' };
}

function imageDefaults(dockerfile: string | undefined): { env: Record<string, string>; command?: string[] } {
  if (!dockerfile) return { env: {} };
  const stage = finalStage(parseDockerfile(dockerfile));
  const entry = stageExec(stage, 'ENTRYPOINT') ?? [];
  const cmd = stageExec(stage, 'CMD') ?? [];
  return { env: stageEnv(stage), command: [...entry, ...cmd] };
}

function composeCommand(v: unknown): string[] | undefined {
  if (Array.isArray(v)) return v.map(String);
  if (typeof v === 'string') return v.split(/\s+/).filter(Boolean);
  return undefined;
}

/** The services of docker-compose.yml or swarm-stack.yml, with `${VAR:-default}` interpolated as Compose would with no variables set. */
export function composeServiceEnvs(file: (typeof COMPOSE_FILES)[number] | string, vars: Record<string, string> = {}): ServiceEnv[] {
  const doc = interpolateDeep(readYaml(file), vars);
  const services = (doc.services ?? {}) as Record<string, Yaml>;
  return Object.entries(services).map(([name, svc]) => {
    const image = typeof svc.image === 'string' ? svc.image : undefined;
    const build = svc.build as Yaml | string | undefined;
    const dockerfile = typeof build === 'object' && typeof build.dockerfile === 'string' ? build.dockerfile : image ? dockerfileForImage(image) : undefined;
    const defaults = imageDefaults(dockerfile);
    const entry = composeCommand(svc.entrypoint);
    const cmd = composeCommand(svc.command);
    const command = entry || cmd ? [...(entry ?? []), ...(cmd ?? (entry ? [] : (defaults.command ?? [])))] : defaults.command;
    return { where: `${file} services.${name}`, image, dockerfile, command, env: { ...defaults.env, ...composeEnvironment(svc.environment) } };
  });
}

/** Every k8s document under deploy/k8s (kustomization files excluded), with the file it came from. */
export function k8sObjects(): { file: string; obj: Yaml }[] {
  const out: { file: string; obj: Yaml }[] = [];
  for (const file of yamlFilesUnder(K8S_DIR)) {
    if (path.basename(file) === 'kustomization.yaml') continue;
    for (const obj of readYamlDocs(file)) out.push({ file: path.relative(REPO, file), obj });
  }
  return out;
}

/** Stand-in values for variables the cluster fills in (valueFrom fieldRef/resourceFieldRef). */
const FIELD_REF_VALUES: Record<string, string> = {
  'metadata.name': 'modelhost-7d9c5b6f4-x2x8q',
  'metadata.namespace': 'inferrer',
  'spec.nodeName': 'node-1',
  'status.podIP': '10.0.0.12',
};

/** Each container of each workload in deploy/k8s, with env, envFrom ConfigMaps/Secrets and the image's ENV. */
export function k8sContainerEnvs(): ServiceEnv[] {
  const objects = k8sObjects();
  const find = (kind: string, name: string, ns: unknown) =>
    objects.find((o) => o.obj.kind === kind && (o.obj.metadata as Yaml | undefined)?.name === name && (o.obj.metadata as Yaml | undefined)?.namespace === ns)
      ?.obj;
  const out: ServiceEnv[] = [];
  for (const { file, obj } of objects) {
    if (!['Deployment', 'StatefulSet', 'DaemonSet', 'Job'].includes(String(obj.kind))) continue;
    const meta = obj.metadata as Yaml;
    const podSpec = ((obj.spec as Yaml).template as Yaml).spec as Yaml;
    for (const c of [...((podSpec.initContainers as Yaml[] | undefined) ?? []), ...((podSpec.containers as Yaml[] | undefined) ?? [])]) {
      const where = `${file} ${String(obj.kind)}/${String(meta.name)} container ${String(c.name)}`;
      const image = String(c.image);
      const dockerfile = dockerfileForImage(image);
      const defaults = imageDefaults(dockerfile);
      const env: Record<string, string> = { ...defaults.env };
      for (const from of (c.envFrom as Yaml[] | undefined) ?? []) {
        const prefix = typeof from.prefix === 'string' ? from.prefix : '';
        const ref = (from.configMapRef ?? from.secretRef) as Yaml | undefined;
        const kind = from.configMapRef ? 'ConfigMap' : 'Secret';
        const source = ref ? find(kind, String(ref.name), meta.namespace) : undefined;
        if (!source) throw new Error(`${where}: envFrom ${kind} ${String(ref?.name)} is not in deploy/k8s`);
        const data = { ...((source.data as Yaml | undefined) ?? {}), ...((source.stringData as Yaml | undefined) ?? {}) };
        for (const [k, v] of Object.entries(data))
          env[prefix + k] = kind === 'Secret' && source.data && k in (source.data as Yaml) ? Buffer.from(String(v), 'base64').toString('utf8') : String(v);
      }
      for (const e of (c.env as Yaml[] | undefined) ?? []) {
        const name = String(e.name);
        if (e.value !== undefined) env[name] = String(e.value);
        else if (e.valueFrom) {
          const vf = e.valueFrom as Yaml;
          const fieldPath = (vf.fieldRef as Yaml | undefined)?.fieldPath;
          if (fieldPath !== undefined) {
            const v = FIELD_REF_VALUES[String(fieldPath)];
            if (v === undefined) throw new Error(`${where}: no stand-in value for fieldRef ${String(fieldPath)}`);
            env[name] = v;
          } else {
            const ref = (vf.configMapKeyRef ?? vf.secretKeyRef) as Yaml | undefined;
            const kind = vf.configMapKeyRef ? 'ConfigMap' : 'Secret';
            const source = ref ? find(kind, String(ref.name), meta.namespace) : undefined;
            const data = { ...((source?.data as Yaml | undefined) ?? {}), ...((source?.stringData as Yaml | undefined) ?? {}) };
            if (!ref || !(String(ref.key) in data)) throw new Error(`${where}: ${name} refers to a missing ${kind} key`);
            env[name] = String(data[String(ref.key)]);
          }
        } else env[name] = '';
      }
      const command = c.command || c.args ? [...((c.command as string[] | undefined) ?? []), ...((c.args as string[] | undefined) ?? [])] : defaults.command;
      out.push({ where, image, dockerfile, command: command?.map(String), env });
    }
  }
  return out;
}

/** Every container environment the deployment files define: docker-compose.yml, swarm-stack.yml, deploy/k8s. */
export function allServiceEnvs(): ServiceEnv[] {
  return [...COMPOSE_FILES.flatMap((f) => composeServiceEnvs(f)), ...k8sContainerEnvs()];
}

// ---------------------------------------------------------------------------------------------------------
// Schemas

/** The part of a zod object schema this check uses (structural, so the tests need no zod of their own). */
export interface ZodObjectLike {
  shape: Record<string, unknown>;
  safeParse(value: unknown): { success: true } | { success: false; error: { issues: { path: PropertyKey[]; message: string }[] } };
}

export interface EnvSchema {
  /** The variable names the program reads. */
  names: string[];
  /** Problems with the values, in the program's own words (none for a valid environment). */
  parse(env: Record<string, string>): string[];
}

/** services/<name>/src/config.ts's `<Name>EnvSchema`, or undefined when the service has no config module yet. */
export async function serviceSchema(name: string): Promise<EnvSchema | undefined> {
  const file = path.join(REPO, 'services', name, 'src', 'config.ts');
  if (!existsSync(file)) return undefined;
  const mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  const entry = Object.entries(mod).find(([k, v]) => k.endsWith('EnvSchema') && v && typeof v === 'object' && 'shape' in v && 'safeParse' in v);
  if (!entry) throw new Error(`${path.relative(REPO, file)} exports no *EnvSchema`);
  return zodEnvSchema(entry[1] as ZodObjectLike);
}

/** Wraps a zod object as loadEnvConfig uses it: only its keys, empty values as unset. */
export function zodEnvSchema(schema: ZodObjectLike): EnvSchema {
  const names = Object.keys(schema.shape);
  return {
    names,
    parse(env) {
      const picked: Record<string, string> = {};
      for (const k of names) if (env[k] !== undefined && env[k] !== '') picked[k] = env[k];
      const r = schema.safeParse(picked);
      return r.success
        ? []
        : r.error.issues.map(
            (i) =>
              `${i.path.map(String).join('.') || '(env)'}: ${i.message}${picked[String(i.path[0])] !== undefined ? ` (got ${JSON.stringify(picked[String(i.path[0])])})` : ''}`,
          );
    },
  };
}

/**
 * The variables nginx/render.sh reads (every ${NAME…} in it). Values are checked by running render.sh with
 * the environment (it refuses a bad BALANCE, a non-numeric size, no upstreams…); test/deploy/nginx-config
 * runs `nginx -t` on what it renders.
 */
export function balancerSchema(): EnvSchema {
  const script = path.join(REPO, 'nginx', 'render.sh');
  const text = readFileSync(script, 'utf8') + readFileSync(path.join(REPO, 'nginx', 'balancer.sh'), 'utf8');
  const names = [...new Set([...text.matchAll(/\$\{([A-Z][A-Z0-9_]*)[:}-]/g)].map((m) => m[1]))].sort();
  return {
    names,
    parse(env) {
      const prefix = mkdtempSync(path.join(os.tmpdir(), 'inferrer-render-'));
      try {
        const r = spawnSync('sh', [script], {
          env: {
            PATH: process.env.PATH,
            ...env,
            NGINX_PREFIX: prefix,
            NGINX_TEMPLATE: path.join(REPO, 'nginx', 'nginx.conf.template'),
            RESOLVER: env.RESOLVER ?? '127.0.0.11',
          },
          encoding: 'utf8',
        });
        return r.status === 0 ? [] : [`nginx/render.sh refused it: ${(r.stderr || r.stdout).trim()}`];
      } finally {
        rmSync(prefix, { recursive: true, force: true });
      }
    },
  };
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  }
  return d[a.length][b.length];
}

/**
 * Problems with one container's environment against its program's schema: variables the program does not
 * read (a misspelling, or a name the program lost), then whatever the schema says of the values (missing
 * required variables, bad numbers, unknown enum values…). Empty when the environment is right.
 */
export function checkEnv(env: Record<string, string>, schema: EnvSchema, allow: ReadonlySet<string> = RUNTIME_ENV_ALLOWLIST): string[] {
  const known = new Set(schema.names);
  const problems: string[] = [];
  for (const key of Object.keys(env).sort()) {
    if (known.has(key) || allow.has(key)) continue;
    const near = schema.names.map((n) => ({ n, d: distance(key, n) })).sort((x, y) => x.d - y.d)[0];
    problems.push(`${key}: not a variable this service reads${near && near.d <= 3 ? ` (did you mean ${near.n}?)` : ''}`);
  }
  return [...problems, ...schema.parse(env)];
}
