/**
 * Kubernetes objects by apiVersion/kind from the kubernetes-models packages, and a check for fields the API
 * does not know. The models' validate() checks types, required fields and formats against the OpenAPI
 * schema, but Kubernetes' schemas allow unknown properties, so a misspelt `readinesProbe` would pass it
 * (the API server rejects it only at `kubectl apply`, with its default --validate=strict). This walks each
 * object along the models' own TypeScript types (with the TypeScript compiler that the repo already uses)
 * and reports every key that the type does not declare.
 */
import path from 'node:path';
import ts from 'typescript';
import { REPO } from './deploy-files.ts';

interface ModelModule {
  specifier: string;
}

/** apiVersion → the module that exports its models (kubernetes-models, and KEDA's). */
export function modelModuleFor(apiVersion: string): ModelModule {
  if (apiVersion.endsWith('keda.sh/v1alpha1')) {
    const group = apiVersion.split('/')[0];
    return { specifier: `@kubernetes-models/keda/${group}/v1alpha1` };
  }
  return { specifier: `kubernetes-models/${apiVersion}` };
}

export interface K8sModel {
  validate(): void;
}

/** The kubernetes-models class for apiVersion/kind, or undefined when no package has one. */
export async function modelClass(apiVersion: string, kind: string): Promise<(new (data: unknown) => K8sModel) | undefined> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(modelModuleFor(apiVersion).specifier)) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const cls = mod[kind] as (new (data: unknown) => K8sModel) & { apiVersion?: string; kind?: string };
  return typeof cls === 'function' && cls.kind === kind && cls.apiVersion === apiVersion ? cls : undefined;
}

export type FieldChecker = (obj: Record<string, unknown>) => string[];

/**
 * Builds one TypeScript program that imports the interface of every apiVersion/kind given, and returns a
 * checker that lists the unknown fields of an object (as "spec.template.spec.containers[0].readinesProbe").
 */
export function createFieldChecker(kinds: { apiVersion: string; kind: string }[]): FieldChecker {
  const unique = [...new Map(kinds.map((k) => [`${k.apiVersion}|${k.kind}`, k])).values()];
  const virtual = path.join(REPO, 'test', 'deploy', '__k8s_types__.ts');
  const lines = unique.map((k, i) => `import type { I${k.kind} as T${i} } from '${modelModuleFor(k.apiVersion).specifier}';\nexport type K${i} = T${i};`);
  const source = lines.join('\n');
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    skipLibCheck: true,
    noEmit: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (file, lang, onError, create) =>
    path.resolve(file) === virtual ? ts.createSourceFile(file, source, lang, true) : getSourceFile(file, lang, onError, create);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (file) => path.resolve(file) === virtual || fileExists(file);
  const readFile = host.readFile.bind(host);
  host.readFile = (file) => (path.resolve(file) === virtual ? source : readFile(file));
  const program = ts.createProgram([virtual], options, host);
  const diagnostics = ts.getPreEmitDiagnostics(program).filter((d) => d.file && path.resolve(d.file.fileName) === virtual);
  if (diagnostics.length > 0) {
    throw new Error(`cannot load the kubernetes-models types: ${diagnostics.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')).join('; ')}`);
  }
  const checker = program.getTypeChecker();
  const sf = program.getSourceFile(virtual);
  if (!sf) throw new Error('virtual source file missing');
  const typeOf = new Map<string, ts.Type>();
  const moduleSymbol = checker.getSymbolAtLocation(sf);
  if (!moduleSymbol) throw new Error('virtual module has no symbol');
  for (const sym of checker.getExportsOfModule(moduleSymbol)) {
    const i = Number(sym.name.slice(1));
    const k = unique[i];
    typeOf.set(`${k.apiVersion}|${k.kind}`, checker.getDeclaredTypeOfSymbol(sym));
  }

  const parts = (t: ts.Type): ts.Type[] => (t.isUnion() ? t.types : [t]).filter((x) => !(x.flags & (ts.TypeFlags.Undefined | ts.TypeFlags.Null)));
  const isOpen = (t: ts.Type) => (t.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) !== 0;

  function walk(value: unknown, type: ts.Type, at: string, out: string[]): void {
    if (value === null || typeof value !== 'object') return;
    const types = parts(type);
    if (types.some(isOpen)) return;
    if (Array.isArray(value)) {
      const arr = types.find((t) => checker.isArrayType(t));
      if (!arr) return; // a type mismatch: validate() reports it
      const elem = checker.getTypeArguments(arr as ts.TypeReference)[0];
      value.forEach((v, i) => walk(v, elem, `${at}[${i}]`, out));
      return;
    }
    const objects = types.filter((t) => (t.flags & ts.TypeFlags.Object) !== 0 && !checker.isArrayType(t));
    if (objects.length === 0) return;
    for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
      const where = at ? `${at}.${key}` : key;
      let found: ts.Type | undefined;
      for (const t of objects) {
        const prop = checker.getPropertyOfType(t, key);
        if (prop) {
          found = checker.getTypeOfSymbol(prop);
          break;
        }
        const index = checker.getIndexInfoOfType(t, ts.IndexKind.String);
        if (index) {
          found = index.type;
          break;
        }
      }
      if (!found) {
        // An object type with no declared properties at all is free-form (x-kubernetes-preserve-unknown-fields).
        if (objects.every((t) => checker.getPropertiesOfType(t).length === 0)) continue;
        out.push(where);
        continue;
      }
      walk(v, found, where, out);
    }
  }

  return (obj) => {
    const type = typeOf.get(`${String(obj.apiVersion)}|${String(obj.kind)}`);
    if (!type) throw new Error(`no type loaded for ${String(obj.apiVersion)} ${String(obj.kind)}`);
    const out: string[] = [];
    walk(obj, type, '', out);
    return out;
  };
}
