/**
 * The modelhost's routes (internal: only the load balancer and the metrics service call them), declared once
 * in protocol/routes.ts and matched by @inferrer/http's RouteTable after one decoding of the path. Inference
 * routes say how they take their body: read whole first (`inference`), streamed (`stream`: multipart images),
 * or as frames (`group`); the first two may also arrive as members of a group (a member's body is read
 * already: a stream route gets it as a stream). The rest run in express.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Request, Response } from 'express';
import type { Priority } from '@inferrer/runtime';
import type { BatchFacts } from '../dataplane.ts';

/** What every inference handler gets: its request id, start time, deadline, priority, query and declared length. */
export interface Ctx {
  reqId: string;
  started: number;
  deadline: number;
  /** `X-Inferrer-Priority: batch` (batch-job requests) waits behind online requests in the batcher. */
  priority: Priority;
  q: URLSearchParams;
  length: number | undefined;
  /** Fires when the client goes away before the answer (its connection, or its group's, closed). */
  signal?: AbortSignal | undefined;
}

/** An inference answer before it is written: to its own HTTP response, or as one frame of a group. */
export interface Reply {
  status: number;
  headers: Record<string, string>;
  body: string | Buffer[];
}

/** A handler's answer, and the batch facts for the access line. */
export interface Answered {
  reply: Reply;
  facts: BatchFacts;
}

/** The parts of a request an inference handler reads: whole-body routes get the body read already. */
export interface Item {
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** Large bodies come in parts (readBodyParts), decoded off this thread. */
  body: Buffer | Buffer[];
}

interface Base {
  method: 'GET' | 'POST';
  path: string;
  /** One line for the route list in app.ts's header and the logs. */
  summary: string;
}

export interface InferenceRoute extends Base {
  kind: 'inference';
  run(item: Item, params: Record<string, string>, ctx: Ctx): Promise<Answered>;
}

/** A streamed body with its request's headers: the request itself, or a group member's body read already. */
export type BodyStream = Readable & { headers: IncomingHttpHeaders };

export interface StreamRoute extends Base {
  kind: 'stream';
  run(req: BodyStream, params: Record<string, string>, ctx: Ctx): Promise<Answered>;
}

export interface GroupRoute extends Base {
  kind: 'group';
  serve(req: IncomingMessage, res: ServerResponse): Promise<void>;
}

export interface ExpressRoute extends Base {
  kind: 'express';
  handle(req: Request<Record<string, string>>, res: Response): unknown;
}

export type Route = InferenceRoute | StreamRoute | GroupRoute | ExpressRoute;
