/**
 * POST /v1/models/:name/group: several v1 predict / v2 infer requests in one framed body (@inferrer/core
 * frames.ts; the Inferrer sends those that arrive together for one model, or with placement for this worker:
 * the members may be for different models, the name in the path is one of theirs). Each member runs as if it came
 * alone, through the same route table, and its answer goes back as a frame as soon as it is ready; answers
 * ready in the same turn of the event loop share one write. When the group's connection closes before every
 * member is answered (the Inferrer gave up on all of them: their clients went away), the members still
 * queued leave the queue unrun.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  DEFAULT_FRAME_LIMITS,
  FRAMES_CONTENT_TYPE,
  type FrameHeader,
  InferrerError,
  MAX_GROUP_MEMBERS,
  decodeFrames,
  encodeFrame,
  readStream,
} from '@inferrer/core';
import { REQUEST_ID_HEADER, requestIdFrom } from '@inferrer/telemetry';
import type { ModelhostConfig } from '../config.ts';
import { type InferenceFrame, closeSignal } from './inference.ts';
import type { GroupRoute, Item, Reply } from './route.ts';

export interface GroupDeps {
  config: ModelhostConfig;
  frame: InferenceFrame;
  draining: () => boolean;
  /** Runs one member through the route table; undefined when its path is not an inference route. */
  member: (item: Item, signal?: AbortSignal) => Promise<Reply> | undefined;
}

export function groupRoute({ config, frame, draining, member }: GroupDeps): GroupRoute {
  return {
    kind: 'group',
    method: 'POST',
    path: '/v1/models/:name/group',
    summary: 'several v1 predict / v2 infer requests as frames; answers come back as frames, each as soon as it is ready',
    async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
      let items: { header: FrameHeader; body: Buffer }[];
      try {
        const length = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
        items = decodeFrames(await readStream(req, config.maxBodyBytes, length), { ...DEFAULT_FRAME_LIMITS, maxBodyBytes: config.maxBodyBytes });
        if (items.length === 0 || items.length > MAX_GROUP_MEMBERS)
          throw new InferrerError('INVALID_REQUEST', `a group carries 1 to ${MAX_GROUP_MEMBERS} requests (got ${items.length})`);
      } catch (err) {
        return frame.send(req, res, frame.error(err, requestIdFrom(undefined), (req.url ?? '').split('?')[0]!));
      }
      if (draining()) res.setHeader('connection', 'close');
      res.writeHead(200, { 'content-type': FRAMES_CONTENT_TYPE });
      const signal = closeSignal(res);
      let left = items.length;
      let out: Buffer[] = [];
      let scheduled = false;
      const flush = (): void => {
        scheduled = false;
        const chunk = out.length === 1 ? out[0]! : Buffer.concat(out);
        out = [];
        if (res.destroyed) return;
        if (left === 0) res.end(chunk);
        else res.write(chunk);
      };
      items.forEach(({ header, body }, i) => {
        const path = typeof header.path === 'string' ? header.path : '';
        const headers = (typeof header.headers === 'object' && header.headers !== null ? header.headers : {}) as Item['headers'];
        const reply =
          member({ path, headers, body }, signal) ??
          Promise.resolve(
            frame.error(
              new InferrerError('ROUTE_NOT_FOUND', `a group carries only predictions (v1 predict, v1 predict-images, v2 infer), not ${path.slice(0, 200)}`),
              requestIdFrom(headers[REQUEST_ID_HEADER]),
              path.slice(0, 200),
            ),
          );
        void reply.then((r) => {
          left--;
          r.headers['x-modelhost-id'] = config.id;
          out.push(encodeFrame({ i, status: r.status, headers: r.headers }, typeof r.body === 'string' ? r.body : Buffer.concat(r.body)));
          if (!scheduled) {
            scheduled = true;
            setImmediate(flush);
          }
        });
      });
    },
  };
}
