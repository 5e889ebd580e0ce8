/**
 * The Inferrer's HTTP app: one route table (routes.ts), one router. Each request's target is decoded once
 * (@inferrer/http parseTarget) and matched case-sensitively against the table; the matched route's scope is
 * what auth checks. Prediction routes are dispatched on the lean path (http/stream.ts: node:http, the body
 * streams to the load balancer); every other route runs inside express (helmet, req/res helpers). Errors
 * from either are answered by @inferrer/http's sendError alone, in the body shape of the route's protocol
 * (protocol/errors.ts).
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import { InferrerError } from '@inferrer/core';
import { type MethodMiss, type RouteMatch, RouteTable, type Target, parseTarget, sendError } from '@inferrer/http';
import { type Logger, REQUEST_ID_HEADER, requestIdFrom, sampleAccess } from '@inferrer/telemetry';
import type { Auth } from './auth.ts';
import { type ExpressRoute, type Route, isStream } from './http/route.ts';
import { BodyGuard } from './http/body-guard.ts';
import { ClientAddresses } from './http/client-address.ts';
import { pageHeaders } from './http/security-headers.ts';
import { serveStream } from './http/stream.ts';
import { ERROR_BODY, type Protocol } from './protocol/errors.ts';
import { expectsContinue, hasBody, refuseCodedBody, refuseTransferCodings } from './protocol/request-body.ts';
import { type RouteDeps, createRoutes } from './routes.ts';

export interface InferrerDeps extends RouteDeps {
  auth: Auth;
}

/** The app's request listener; `routes()` lists the route table (for /help, OpenAPI and the route tests). */
export type InferrerApp = RequestListener & { routes(): readonly Route[] };

/** What the router decided for a request that express serves. */
interface Dispatch {
  target: Target;
  match: RouteMatch<Route> | MethodMiss | undefined;
}

export function createApp(deps: InferrerDeps): InferrerApp {
  const routes = createRoutes(deps);
  const table = new RouteTable(routes);
  // A model named like a literal segment beside :name or :model could not be reached on that route.
  deps.management.reserve([...table.literalsBeside('name'), ...table.literalsBeside('model')]);
  const log = deps.logger.child({ module: 'http' });
  const accessLog = deps.logger.child({ module: 'access' });
  const bodies = new BodyGuard(deps.config.bodies, new ClientAddresses(deps.config.clientIpv6PrefixBits), deps.logger);
  const stream = {
    auth: deps.auth,
    admission: deps.dataplane.admission,
    gate: deps.dataplane.gate,
    bodies,
    requestTimeoutMs: deps.config.requestTimeoutMs,
    answerStallMs: deps.config.bodies.timeoutMs,
    metrics: deps.metrics,
    log,
    access: deps.config.accessLog && accessLog.isInfoEnabled() ? accessLog : undefined,
    sample: deps.config.accessLogSample,
  };
  const dispatches = new WeakMap<IncomingMessage, Dispatch>();
  const app = expressApp(deps, dispatches, log, stream.access, accessLog);

  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    let target: Target;
    try {
      target = parseTarget(req.url ?? '/');
      refuseTransferCodings(req);
    } catch (err) {
      req.resume();
      sendError(res, err, ERROR_BODY[protocolOf(req.url ?? '')], log, {
        reqId: requestIdFrom(req.headers[REQUEST_ID_HEADER]),
        method: req.method,
        path: '(undecodable)',
      });
      return;
    }
    const match = table.match(req.method ?? 'GET', target.segments);
    // A prediction's body is watched by serveStream (from when the body gate lets it through), and a
    // client that asked to be told before it sends its body (Expect: 100-continue) is told there too
    // (for other routes, in the router below, after the scope check).
    if (match?.route && isStream(match.route)) {
      void serveStream(stream, match.route, match.params, target.path, target.query, req, res);
      return;
    }
    if (hasBody(req)) bodies.watch(req, res, match?.route?.protocol ?? protocolOf(target.path));
    dispatches.set(req, { target, match });
    req.url = target.query === '' ? target.path : `${target.path}?${target.query}`;
    app(req, res);
  };
  return Object.assign(listener, { routes: () => routes });
}

/** express for every route that is not a prediction: request ids, access lines, helmet, auth, the handler. */
function expressApp(
  deps: InferrerDeps,
  dispatches: WeakMap<IncomingMessage, Dispatch>,
  log: Logger,
  access: Logger | undefined,
  accessLog: Logger,
): express.Express {
  const { metrics } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('trust proxy', false);
  const routeOf = (req: Request): Route | undefined => dispatches.get(req)?.match?.route;

  app.use((req: Request, res: Response, next: NextFunction) => {
    const reqId = requestIdFrom(req.headers[REQUEST_ID_HEADER]);
    res.setHeader('x-request-id', reqId);
    const started = performance.now();
    res.on('finish', () => {
      const route = routeOf(req);
      const template = route?.path ?? 'unmatched';
      const protocol = route?.protocol ?? protocolOf(req.path);
      const ms = performance.now() - started;
      metrics.observe(template, protocol, res.statusCode, ms / 1000, Number(req.headers['content-length']) || 0, Number(res.getHeader('content-length')) || 0);
      // Probes and scrapes would drown the access log: those lines only at debug.
      const line = { reqId, method: req.method, path: req.path, route: template, protocol, status: res.statusCode, ms: Number(ms.toFixed(2)) };
      if (access && !route?.quiet && sampleAccess(res.statusCode, deps.config.accessLogSample)) {
        const error = res.statusCode >= 400 ? (res.locals as { errorCode?: string }).errorCode : undefined;
        access.info('request', {
          ...line,
          ...(error ? { error } : {}),
          bytesIn: Number(req.headers['content-length']) || 0,
          bytesOut: Number(res.getHeader('content-length')) || 0,
        });
      } else if (route?.quiet && accessLog.isDebugEnabled()) accessLog.debug('request', line);
    });
    next();
  });
  app.use(pageHeaders);
  app.use(async (req: Request, res: Response, next: NextFunction) => {
    const match = dispatches.get(req)?.match;
    if (!match) throw new InferrerError('ROUTE_NOT_FOUND', `no route ${req.method} ${req.path.slice(0, 200)}; GET /help lists the routes`);
    if (!match.route)
      throw new InferrerError(
        'ROUTE_NOT_FOUND',
        `no route ${req.method} ${req.path.slice(0, 200)} (it takes ${match.methods.join(', ')}); GET /help lists the routes`,
        { methods: match.methods },
      );
    const route = match.route as ExpressRoute;
    // Batch-job quotas count per principal (protocol/jobs/routes.ts).
    res.locals.principal = await deps.auth.check(req, route.scope);
    if (!route.codedBodies) refuseCodedBody(req);
    // A client waiting for 100 Continue sends its body only now: a request refused on its route, scope or
    // headers is answered without one (curl would otherwise send a whole upload to hear 401).
    if (expectsContinue(req)) res.writeContinue();
    req.params = match.params;
    await route.handle(req as Request<Record<string, string>>, res, next);
  });
  app.use((req: Request) => {
    throw new InferrerError('ROUTE_NOT_FOUND', `no route ${req.method} ${req.path.slice(0, 200)}; GET /help lists the routes`);
  });
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const e = sendError(res, err, ERROR_BODY[routeOf(req)?.protocol ?? protocolOf(req.path)], log, {
      reqId: String(res.getHeader('x-request-id')),
      method: req.method,
      path: req.path,
    });
    res.locals.errorCode = e.code;
  });
  return app;
}

function protocolOf(path: string): Protocol {
  return path.startsWith('/v2') ? 'v2' : 'v1';
}
