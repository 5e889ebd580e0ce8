/**
 * docs/architecture.md stays true: every `file:function` (or `file:Class.method`) it names is declared in that
 * file, every `Class.method` it names without a file is declared by that class in the file named last before it
 * that declares the class, and every `file:text` of a config file (nginx) is in that file. Declarations are read
 * with the TypeScript parser:
 * top-level functions, classes with their methods, getters and function-valued fields (#private ones too),
 * and top-level constants bound to a function.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import ts from 'typescript';

const REPO = path.resolve(import.meta.dirname, '..', '..');
const DOC = 'docs/architecture.md';

const isFunction = (e: ts.Expression | undefined): boolean => e !== undefined && (ts.isArrowFunction(e) || ts.isFunctionExpression(e));

const parsed = new Map<string, Set<string>>();

/** The names a source file declares at its top level, with `Class.member` for class members. */
function declared(file: string): Set<string> {
  const known = parsed.get(file);
  if (known) return known;
  const text = readFileSync(path.join(REPO, file), 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, file.endsWith('.ts') ? ts.ScriptKind.TS : ts.ScriptKind.JS);
  const names = new Set<string>();
  for (const node of sf.statements) {
    if (ts.isFunctionDeclaration(node) && node.name) names.add(node.name.text);
    if (ts.isVariableStatement(node)) {
      for (const d of node.declarationList.declarations) if (ts.isIdentifier(d.name) && isFunction(d.initializer)) names.add(d.name.text);
    }
    if (ts.isClassDeclaration(node) && node.name) {
      const cls = node.name.text;
      names.add(cls);
      for (const m of node.members) {
        const member = ts.isMethodDeclaration(m) || ts.isGetAccessorDeclaration(m) || (ts.isPropertyDeclaration(m) && isFunction(m.initializer));
        if (member && m.name && (ts.isIdentifier(m.name) || ts.isPrivateIdentifier(m.name))) names.add(`${cls}.${m.name.text}`);
      }
    }
  }
  parsed.set(file, names);
  return names;
}

const SOURCE = /\.(ts|mjs|js)$/;
const doc = readFileSync(path.join(REPO, DOC), 'utf8');
/** Every `code span` of the page, in order. */
const spans = [...doc.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!);
const REF = /^((?:packages|services|nginx|test)\/[\w./-]+\.\w+):(.+)$/;
const BARE = /^[A-Z][A-Za-z0-9]*\.#?[A-Za-z_][A-Za-z0-9_]*$/;
/** `path/to/file.ext:name`: a file of the repository and what it declares (or, for a config file, contains). */
const refs = spans.flatMap((s) => {
  const m = REF.exec(s);
  return m ? [{ file: m[1]!, name: m[2]! }] : [];
});
/** `Class.member` without a file, with the files named before it (the class is the latest of those declaring it). */
const bare = spans.flatMap((s, i) =>
  BARE.test(s)
    ? [
        {
          name: s,
          before: spans
            .slice(0, i)
            .flatMap((t) => REF.exec(t)?.[1] ?? [])
            .filter((f) => SOURCE.test(f)),
        },
      ]
    : [],
);

describe(DOC, () => {
  test('names the path of a prediction and of an upload in enough steps to follow', () => {
    assert.ok(refs.length >= 40, `only ${refs.length} file:function references`);
    assert.ok(bare.length >= 8, `only ${bare.length} Class.method references`);
    for (const heading of ['## A prediction, FRACTAL v1', '## A prediction, Open Inference Protocol (v2)', '## An upload'])
      assert.ok(doc.includes(heading), heading);
  });

  test('every file:function it names exists', () => {
    const missing: string[] = [];
    for (const { file, name } of refs) {
      if (!existsSync(path.join(REPO, file))) missing.push(`${file} (no such file)`);
      else if (SOURCE.test(file) ? !declared(file).has(name) : !readFileSync(path.join(REPO, file), 'utf8').includes(name)) missing.push(`${file}:${name}`);
    }
    assert.deepEqual(missing, []);
  });

  test('every Class.method it names without a file is declared by that class in the latest file named before it that declares the class', () => {
    const missing = bare.flatMap(({ name, before }) => {
      const cls = name.split('.')[0]!;
      const file = before.reverse().find((f) => declared(f).has(cls));
      return file && declared(file).has(name) ? [] : [`${name} (${file ?? 'no file named before it declares the class'})`];
    });
    assert.deepEqual(missing, []);
  });

  test('the check itself tells a missing name from a present one', () => {
    const names = declared('packages/runtime/src/onnx-session.ts');
    assert.ok(names.has('OnnxSession.run') && names.has('OnnxSession.#dispatch') && names.has('OnnxSession.load'));
    assert.ok(!names.has('OnnxSession.nothing') && !names.has('run'));
  });
});
