/**
 * A service's route table: every route declared once (method + path template), matched against the decoded
 * segments of the canonical target (target.ts). Templates are `/literal/:param/…`; a literal segment wins
 * over a parameter at the same place (`/api/v1/models/information` before `/api/v1/models/:name`). Matching
 * is exact: case-sensitive, no empty segments (so no `//` and no trailing `/`), HEAD served by GET routes.
 */

export interface RouteShape {
  method: string;
  path: string;
}

export interface RouteMatch<R> {
  route: R;
  /** Decoded parameter values by name. */
  params: Record<string, string>;
}

/** The path exists but not for this method: the methods it has (for a 404/405 that says so). */
export interface MethodMiss {
  route: undefined;
  methods: string[];
}

interface Node<R> {
  literals: Map<string, Node<R>>;
  param: { name: string; node: Node<R> } | undefined;
  routes: Map<string, R>;
}

const node = <R>(): Node<R> => ({ literals: new Map(), param: undefined, routes: new Map() });

/** Splits a template into segments; `/` is no segment at all. */
export function templateSegments(path: string): string[] {
  if (path === '/') return [];
  if (!path.startsWith('/') || path.endsWith('/') || path.includes('//')) throw new Error(`route path ${path} must start with / and have no empty segments`);
  return path.slice(1).split('/');
}

export class RouteTable<R extends RouteShape> {
  readonly routes: readonly R[];
  readonly #root = node<R>();
  /** Parameter names of each route, in path order. */
  readonly #names = new Map<R, string[]>();

  constructor(routes: readonly R[]) {
    this.routes = routes;
    for (const r of routes) {
      let at = this.#root;
      const names: string[] = [];
      this.#names.set(r, names);
      for (const seg of templateSegments(r.path)) {
        if (seg.startsWith(':')) {
          const name = seg.slice(1);
          if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`route ${r.path}: bad parameter name ${seg}`);
          if (at.param && at.param.name !== name) throw new Error(`route ${r.path}: parameter :${name} where another route has :${at.param.name}`);
          at.param ??= { name, node: node<R>() };
          names.push(name);
          at = at.param.node;
        } else {
          let next = at.literals.get(seg);
          if (!next) at.literals.set(seg, (next = node<R>()));
          at = next;
        }
      }
      if (at.routes.has(r.method)) throw new Error(`route ${r.method} ${r.path} is declared twice`);
      at.routes.set(r.method, r);
    }
  }

  /**
   * The literal segments that sit where a `:param` goes (`information` beside `/api/v1/models/:name`): a
   * value spelled like one of them reaches the literal's routes, not the parameter's.
   */
  literalsBeside(param: string): string[] {
    const out = new Set<string>();
    const visit = (at: Node<R>): void => {
      if (at.param?.name === param) for (const lit of at.literals.keys()) out.add(lit);
      for (const next of at.literals.values()) visit(next);
      if (at.param) visit(at.param.node);
    };
    visit(this.#root);
    return [...out];
  }

  /** The route for a method and decoded segments; a MethodMiss when only the method is wrong; else undefined. */
  match(method: string, segments: readonly string[]): RouteMatch<R> | MethodMiss | undefined {
    return this.#walk(this.#root, segments, 0, [], method);
  }

  #walk(at: Node<R>, segs: readonly string[], i: number, values: string[], method: string): RouteMatch<R> | MethodMiss | undefined {
    if (i === segs.length) {
      if (at.routes.size === 0) return undefined;
      const route = at.routes.get(method) ?? (method === 'HEAD' ? at.routes.get('GET') : undefined);
      if (route === undefined) return { route: undefined, methods: [...at.routes.keys()] };
      return { route, params: this.#params(route, values) };
    }
    const seg = segs[i]!;
    if (seg === '') return undefined;
    const lit = at.literals.get(seg);
    let miss: MethodMiss | undefined;
    if (lit) {
      const r = this.#walk(lit, segs, i + 1, values, method);
      if (r?.route) return r;
      miss = r as MethodMiss | undefined;
    }
    if (at.param) {
      values.push(seg);
      const r = this.#walk(at.param.node, segs, i + 1, values, method);
      values.pop();
      if (r?.route) return r;
      miss ??= r as MethodMiss | undefined;
    }
    return miss;
  }

  #params(route: R, values: string[]): Record<string, string> {
    const params: Record<string, string> = {};
    const names = this.#names.get(route)!;
    for (let k = 0; k < names.length; k++) params[names[k]!] = values[k]!;
    return params;
  }
}
