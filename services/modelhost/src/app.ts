/**
 * The modelhost's HTTP surface: one route table (protocol/routes.ts, protocol/group.ts), one router. The
 * target is decoded once and matched exactly (@inferrer/http). Inference takes a lean path on node:http
 * (protocol/inference.ts: body read whole or streamed, the dataplane, one reply); group members (whole-body
 * predictions, and multipart images, whose read body goes to the route as a stream) are dispatched through
 * the same table; the info routes run in express.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import express, { type NextFunction, type Request, type Response } from 'express';
import { InferrerError } from '@inferrer/core';
import { type RouteMatch, RouteTable, parseTarget, sendError } from '@inferrer/http';
import { STORE_GENERATION_HEADER } from '@inferrer/model-store';
import { REQUEST_ID_HEADER, requestIdFrom } from '@inferrer/telemetry';
import { groupRoute } from './protocol/group.ts';
import { InferenceFrame, WIRE_ERROR, closeSignal } from './protocol/inference.ts';
import type { BodyStream, ExpressRoute, Item, Reply, Route } from './protocol/route.ts';
import { type RouteDeps, inferenceRoutes, infoRoutes } from './protocol/routes.ts';

export type ModelhostDeps = RouteDeps;

/** A group member's body as the stream a streamed route reads, with the member's headers. */
function memberStream(item: Item): BodyStream {
  return Object.assign(Readable.from(Array.isArray(item.body) ? item.body : [item.body]), { headers: item.headers });
}

export function createApp(deps: ModelhostDeps): RequestListener {
  const { config } = deps;
  const log = deps.logger.child({ module: 'http' });
  const frame = new InferenceFrame(config, deps.logger, deps.draining);
  const member = (item: Item, signal?: AbortSignal): Promise<Reply> | undefined => {
    let m: ReturnType<typeof table.match>;
    const q = item.path.indexOf('?');
    try {
      m = table.match('POST', parseTarget(item.path).segments);
    } catch {
      return undefined;
    }
    const route = m?.route;
    if (route?.kind !== 'inference' && route?.kind !== 'stream') return undefined;
    const params = (m as RouteMatch<Route>).params;
    const path = q === -1 ? item.path : item.path.slice(0, q);
    return frame.serve(
      item.headers,
      path,
      params.name ?? params.model ?? '',
      q === -1 ? '' : item.path.slice(q + 1),
      // A streamed route (multipart images) reads the member's body, read already, as a stream.
      (ctx) => (route.kind === 'inference' ? route.run(item, params, ctx) : route.run(memberStream(item), params, ctx)),
      signal,
    );
  };
  const routes: Route[] = [...inferenceRoutes(deps), groupRoute({ config, frame, draining: deps.draining, member }), ...infoRoutes(deps)];
  const table = new RouteTable(routes);
  const matches = new WeakMap<IncomingMessage, RouteMatch<Route>>();

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(async (req: Request, res: Response) => {
    const m = matches.get(req);
    if (!m) throw new InferrerError('ROUTE_NOT_FOUND', `no route ${req.method} ${req.path.slice(0, 200)}`);
    req.params = m.params;
    await (m.route as ExpressRoute).handle(req as Request<Record<string, string>>, res);
  });
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) =>
    sendError(res, err, WIRE_ERROR, log, { reqId: requestIdFrom(req.headers[REQUEST_ID_HEADER]), method: req.method, path: req.path }),
  );

  const dispatch = (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    let m: ReturnType<typeof table.match>;
    let query = '';
    let path = url;
    try {
      const target = parseTarget(url);
      query = target.query;
      path = target.path;
      m = table.match(req.method ?? 'GET', target.segments);
    } catch (err) {
      return frame.send(req, res, frame.error(err, requestIdFrom(req.headers[REQUEST_ID_HEADER]), '(undecodable)'));
    }
    const route = m?.route;
    if (route === undefined) return app(req, res);
    const params = (m as RouteMatch<Route>).params;
    const name = params.name ?? params.model ?? '';
    switch (route.kind) {
      case 'inference':
        return void frame
          .whole(req, path, name, query, (item, ctx) => route.run(item, params, ctx), closeSignal(res))
          .then((reply) => frame.send(req, res, reply));
      case 'stream':
        return void frame
          .serve(req.headers, path, name, query, (ctx) => route.run(req, params, ctx), closeSignal(res))
          .then((reply) => frame.send(req, res, reply));
      case 'group':
        return void route.serve(req, res);
      case 'express':
        matches.set(req, m as RouteMatch<Route>);
        return app(req, res);
    }
  };

  return (req: IncomingMessage, res: ServerResponse) => {
    res.setHeader('x-modelhost-id', config.id);
    // Read-your-writes: a change the Inferrer made to the store (the generation it carries) is in force here
    // before its next request is served, whatever the route: predictions, groups, settings, metadata, warm-ups.
    const generation = Number(req.headers[STORE_GENERATION_HEADER]);
    const behind = generation > 0 ? deps.catchUp?.(generation) : undefined;
    if (behind === undefined) return dispatch(req, res);
    behind.then(
      () => dispatch(req, res),
      () => dispatch(req, res),
    );
  };
}
