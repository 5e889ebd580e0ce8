/**
 * The layering, checked by `pnpm test` (`pnpm run deps`). Dependencies point downward only:
 *
 *   services/<name>/src: protocol layer (protocol/, http/, app.ts, routes.ts, auth.ts)
 *                          → dataplane layer (every other file: dataplane, management, registry, jobs, upstream…)
 *   packages: core ← drift, http, model-store, runtime, telemetry
 *
 * Packages never import services; services never import each other; in a service the dataplane layer
 * never imports the protocol layer (nor main.ts); core imports no workspace package and the other
 * packages import core alone; sources never import tests; no file is part of an import cycle.
 */
/** A service's protocol layer: the adapters and the HTTP plumbing that serve them. */
const PROTOCOL = '^services/[^/]+/src/(protocol/|http/|app[.]ts$|routes[.]ts$|auth[.]ts$)';

module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      severity: 'error',
      comment: 'No file is part of an import cycle.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'packages-never-import-services',
      severity: 'error',
      comment: 'A package is used by services; it never reaches up into one.',
      from: { path: '^packages/' },
      to: { path: '^services/' },
    },
    {
      name: 'services-never-import-each-other',
      severity: 'error',
      comment: 'Services talk over HTTP; what two of them share lives in a package.',
      from: { path: '^services/([^/]+)/' },
      to: { path: '^services/', pathNot: '^services/$1/' },
    },
    {
      name: 'dataplane-never-imports-protocol',
      severity: 'error',
      comment: 'protocol → dataplane → runtime: the dataplane layer never sees the adapters, express or the route table.',
      from: { path: '^services/[^/]+/src/', pathNot: [PROTOCOL, '^services/[^/]+/src/main[.]ts$'] },
      to: { path: [PROTOCOL, '^services/[^/]+/src/main[.]ts$'] },
    },
    {
      name: 'core-imports-no-workspace-package',
      severity: 'error',
      comment: '@inferrer/core is the leaf every other package builds on.',
      from: { path: '^packages/core/' },
      to: { path: '^(packages|services)/', pathNot: '^packages/core/' },
    },
    {
      name: 'packages-import-only-core',
      severity: 'error',
      comment: 'Packages sit side by side on core; a service composes them.',
      from: { path: '^packages/([^/]+)/src/' },
      to: { path: '^packages/', pathNot: '^packages/(core|$1)/' },
    },
    {
      name: 'sources-never-import-tests',
      severity: 'error',
      from: { path: '^(packages|services)/[^/]+/src/' },
      to: { path: '(^test/|/test/|[.]test[.]ts$)' },
    },
    {
      name: 'resolvable',
      severity: 'error',
      comment: 'Every import resolves (a moved file leaves no dangling import behind).',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default'],
      extensions: ['.ts', '.mjs', '.js', '.json'],
    },
  },
};
