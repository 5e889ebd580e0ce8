/**
 * Reads the deployment files the way their tools do, for the checks in test/deploy/: YAML with merge
 * keys (docker-compose.yml, swarm-stack.yml, deploy/k8s), Compose's variable interpolation, and the
 * Dockerfiles in deploy/docker (stages, ENV, USER, CMD, HEALTHCHECK, COPY).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';

export const REPO = path.resolve(import.meta.dirname, '..', '..', '..');
export const COMPOSE_FILES = ['docker-compose.yml', 'swarm-stack.yml'] as const;
export const K8S_DIR = path.join(REPO, 'deploy', 'k8s');
export const DOCKER_DIR = path.join(REPO, 'deploy', 'docker');

export type Yaml = Record<string, unknown>;

/** Every document of a YAML file, with `<<` merge keys applied (Docker and kubectl honour them). */
export function readYamlDocs(file: string): Yaml[] {
  const text = readFileSync(path.resolve(REPO, file), 'utf8');
  const docs = parseAllDocuments(text, { merge: true, prettyErrors: true });
  const out: Yaml[] = [];
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value = doc.toJS({ maxAliasCount: 1000 }) as unknown;
    if (value === null || value === undefined) continue;
    if (typeof value !== 'object' || Array.isArray(value)) throw new Error(`${file}: a document is not a mapping`);
    out.push(value as Yaml);
  }
  return out;
}

export function readYaml(file: string): Yaml {
  const docs = readYamlDocs(file);
  if (docs.length !== 1) throw new Error(`${file}: expected one YAML document, found ${docs.length}`);
  return docs[0];
}

/** YAML files under a folder, recursively, sorted. */
export function yamlFilesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir).sort()) {
    const p = path.join(dir, e);
    if (statSync(p).isDirectory()) out.push(...yamlFilesUnder(p));
    else if (/\.ya?ml$/.test(e)) out.push(p);
  }
  return out;
}

/**
 * Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message},
 * $VAR and $$ (a literal $). Unset variables without a default become "" (Compose warns), and are
 * reported through `unset`.
 */
export function interpolate(text: string, vars: Record<string, string | undefined>, unset: string[] = []): string {
  return text.replace(
    /\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])((?:[^{}]|\{[^{}]*\})*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g,
    (m, braced?: string, op?: string, arg?: string, bare?: string) => {
      if (m === '$$') return '$';
      const name = (braced ?? bare) as string;
      const v = vars[name];
      const missing = op?.startsWith(':') ? v === undefined || v === '' : v === undefined;
      if (!missing) return v as string;
      if (op === ':-' || op === '-') return interpolate(arg ?? '', vars, unset);
      if (op === ':?' || op === '?') throw new Error(`required variable ${name} is unset: ${arg ?? ''}`);
      unset.push(name);
      return '';
    },
  );
}

/** Interpolates every string in a parsed Compose document (keys are left alone, as Compose does). */
export function interpolateDeep<T>(value: T, vars: Record<string, string | undefined>, unset: string[] = []): T {
  if (typeof value === 'string') return interpolate(value, vars, unset) as T;
  if (Array.isArray(value)) return value.map((v) => interpolateDeep(v, vars, unset)) as T;
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolateDeep(v, vars, unset)])) as T;
  }
  return value;
}

/** Compose's `environment:` as a map or a list of KEY=VALUE; values become strings as Compose makes them. */
export function composeEnvironment(env: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(env)) {
    for (const item of env) {
      const s = String(item);
      const i = s.indexOf('=');
      if (i < 0) continue; // "KEY" alone passes the host's value through: nothing to check here
      out[s.slice(0, i)] = s.slice(i + 1);
    }
  } else if (env && typeof env === 'object') {
    for (const [k, v] of Object.entries(env)) if (v !== null && v !== undefined) out[k] = String(v);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Dockerfiles

export interface DockerInstruction {
  op: string;
  args: string;
  line: number;
}

export interface DockerStage {
  from: string;
  name?: string;
  instructions: DockerInstruction[];
}

export interface Dockerfile {
  file: string;
  args: Record<string, string>;
  stages: DockerStage[];
}

/** Instructions with continuation lines joined and comments dropped. */
export function parseDockerfile(file: string): Dockerfile {
  const text = readFileSync(path.resolve(REPO, file), 'utf8');
  const lines = text.split('\n');
  const instructions: DockerInstruction[] = [];
  let buf = '';
  let start = 0;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    if (buf === '' && /^\s*(#|$)/.test(raw)) continue;
    if (buf !== '' && /^\s*#/.test(raw)) continue; // comments inside a continued instruction
    if (buf === '') start = i + 1;
    const cont = /\\\s*$/.test(raw);
    buf += (buf ? ' ' : '') + raw.replace(/\\\s*$/, '').trim();
    if (!cont) {
      const m = /^(\S+)\s*(.*)$/.exec(buf);
      if (m) instructions.push({ op: m[1].toUpperCase(), args: m[2], line: start });
      buf = '';
    }
  }
  const args: Record<string, string> = {};
  const stages: DockerStage[] = [];
  for (const ins of instructions) {
    if (ins.op === 'ARG' && stages.length === 0) {
      const [k, ...v] = ins.args.split('=');
      args[k.trim()] = v.join('=').trim();
    } else if (ins.op === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!m) throw new Error(`${file}:${ins.line}: cannot read FROM ${ins.args}`);
      const from = m[1].replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_s, n: string) => args[n] ?? '');
      stages.push({ from, name: m[2], instructions: [] });
    } else if (stages.length > 0) {
      stages[stages.length - 1].instructions.push(ins);
    }
  }
  return { file, args, stages };
}

export function finalStage(df: Dockerfile): DockerStage {
  const s = df.stages.at(-1);
  if (!s) throw new Error(`${df.file}: no FROM`);
  return s;
}

/** ENV of a stage (both `ENV A=1 B=2` and the legacy `ENV A 1`), quotes removed. */
export function stageEnv(stage: DockerStage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const ins of stage.instructions.filter((i) => i.op === 'ENV')) {
    if (!ins.args.includes('=')) {
      const m = /^(\S+)\s+(.*)$/.exec(ins.args);
      if (m) env[m[1]] = m[2];
      continue;
    }
    for (const m of ins.args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)/g)) {
      env[m[1]] = m[2].replace(/^"(.*)"$/, '$1').replace(/^'(.*)'$/, '$1');
    }
  }
  return env;
}

/** The last exec-form (JSON array) CMD or ENTRYPOINT of a stage. */
export function stageExec(stage: DockerStage, op: 'CMD' | 'ENTRYPOINT'): string[] | undefined {
  const ins = stage.instructions.filter((i) => i.op === op).at(-1);
  if (!ins) return undefined;
  const v = JSON.parse(ins.args) as unknown;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new Error(`${op} must be the exec form: ${ins.args}`);
  return v;
}

/** deploy/docker/<name>.Dockerfile for an image reference like registry/inferrer/modelhost:tag. */
export function dockerfileForImage(image: string): string | undefined {
  const base =
    image
      .replace(/[:@].*$/, '')
      .split('/')
      .at(-1) ?? '';
  const file = path.join('deploy', 'docker', `${base}.Dockerfile`);
  try {
    statSync(path.join(REPO, file));
    return file;
  } catch {
    return undefined;
  }
}

export function dockerfiles(): string[] {
  return readdirSync(DOCKER_DIR)
    .filter((f) => f.endsWith('.Dockerfile'))
    .sort()
    .map((f) => path.join('deploy', 'docker', f));
}
