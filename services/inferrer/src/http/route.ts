/**
 * One route of the Inferrer: declared once, in its protocol folder, with everything the rest of the service
 * reads from it. The router (app.ts over @inferrer/http's RouteTable) dispatches it, auth checks its `scope`,
 * the access log and metrics label it with `path`, `/help` lists its `summary` and `example`, and the OpenAPI
 * document is built from `summary` and `openapi`.
 */
import type { IncomingMessage } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import type { Protocol } from '../protocol/errors.ts';
import type { UpstreamResponse } from '../upstream.ts';

/** Who may call a route: anyone, a key with the `predict` scope, or a key with `admin`. */
export type Access = 'public' | 'predict' | 'admin';

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** An OpenAPI operation object, less its summary (taken from the route). */
export type Operation = Record<string, unknown>;

interface RouteBase {
  method: Method;
  /** Template: literal segments and `:param` segments, matched case-sensitively and exactly. */
  path: string;
  scope: Access;
  /** The body shape of its answers (and errors): FRACTAL v1 envelope, v2, or plain JSON. */
  protocol: Protocol;
  /** One line for /help and the OpenAPI summary. */
  summary: string;
  /** A curl command a user can paste; `$B` stands for the server's base URL. */
  example?: string;
  openapi?: Operation;
  /** Probes and scrapes: access lines only at debug level. */
  quiet?: boolean;
  /** It inflates a gzip or deflate body itself (Content-Encoding); every other route refuses a coded body (415). */
  codedBodies?: boolean;
}

/** A route served through express (management, metadata, docs). */
export interface ExpressRoute extends RouteBase {
  handle(req: Request<Record<string, string>>, res: Response, next: NextFunction): unknown;
}

/** What a streamed route gets: decoded path parameters, the raw query, the request id. */
export interface StreamCall {
  params: Record<string, string>;
  query: string;
  reqId: string;
  /** When the answer is due (performance.now() clock): REQUEST_TIMEOUT_MS after the request came in (deadline.ts). */
  deadline: number;
  /** Fires when the client's connection closes before the answer is written. */
  signal: AbortSignal;
}

/**
 * A prediction route served on the lean path (node:http, no express): it starts the upstream request and the
 * modelhost's answer is read whole and relayed.
 */
export interface StreamRoute extends RouteBase {
  stream(req: IncomingMessage, call: StreamCall): Promise<UpstreamResponse>;
}

export type Route = ExpressRoute | StreamRoute;

export const isStream = (r: Route): r is StreamRoute => 'stream' in r;
