/**
 * The lean path for prediction routes: no express. Auth by the route's scope, the route starts the upstream
 * request, and the modelhost's answer is read whole and relayed (protocol/relay.ts); errors are answered by
 * @inferrer/http's sendError in the shape of the route's protocol (protocol/errors.ts). One access line and one metrics
 * observation per request.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { InferrerError, statusOf } from '@inferrer/core';
import { sendError } from '@inferrer/http';
import { type Logger, REQUEST_ID_HEADER, requestIdFrom, sampleAccess } from '@inferrer/telemetry';
import type { Admission } from '../admission.ts';
import type { Auth } from '../auth.ts';
import type { BodyGate, GatePass } from '../body-gate.ts';
import type { InferrerMetrics } from '../metrics.ts';
import { answerBy, noteEarlyAnswer, takenAt } from '../deadline.ts';
import { type UpstreamResponse, answeredByOf, cancelledError } from '../upstream.ts';
import { ERROR_BODY } from '../protocol/errors.ts';
import { expectsContinue, hasBody, refuseCodedBody } from '../protocol/request-body.ts';
import { relay } from '../protocol/relay.ts';
import type { BodyGuard } from './body-guard.ts';
import type { StreamRoute } from './route.ts';
import { API_HEADERS } from './security-headers.ts';

export interface StreamServer {
  auth: Auth;
  /** Refuses a full model's requests before their bodies are read (admission.ts). */
  admission: Admission;
  /** Large bodies wait here, unread, until their model has room upstream (body-gate.ts). */
  gate: BodyGate;
  /** Watches bodies while they arrive (a gated one from when it is let through). */
  bodies: BodyGuard;
  /** REQUEST_TIMEOUT_MS: a prediction is answered by then, counted from when it came in. */
  requestTimeoutMs: number;
  /** BODY_TIMEOUT_MS: a client that takes none of its answer for this long is cut (protocol/relay.ts). */
  answerStallMs: number;
  metrics: InferrerMetrics;
  log: Logger;
  /** The access logger, or undefined when access lines are off. */
  access: Logger | undefined;
  /** ACCESS_LOG_SAMPLE: the share of successful requests logged. */
  sample: number;
}

export async function serveStream(
  s: StreamServer,
  route: StreamRoute,
  params: Record<string, string>,
  path: string,
  query: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const reqId = requestIdFrom(req.headers[REQUEST_ID_HEADER]);
  const started = performance.now();
  let bytesOut = 0;
  let written: Record<string, string> | undefined;
  let failure: InferrerError | undefined;
  // The client going away before its answer abandons the upstream request, and with it the modelhost's work.
  const gone = new AbortController();
  // (With a reason of our own: the default one is a DOMException, whose stack costs more than the rest of a
  // cancelled request.)
  res.once('close', () => {
    if (!res.writableFinished) gone.abort(cancelledError());
  });
  let leave: ReturnType<Admission['enter']> | undefined;
  let pass: GatePass | undefined;
  const declared = Number(req.headers['content-length']);
  const gated = s.gate.applies(Number.isFinite(declared) ? declared : undefined);
  if (!gated && hasBody(req)) s.bodies.watch(req, res, route.protocol);
  try {
    await s.auth.check(req, route.scope);
    if (!route.codedBodies) refuseCodedBody(req);
    // A client waiting for 100 Continue is told to send its body only once the request may run (a refusal
    // on its headers comes without one).
    if (!gated && expectsContinue(req)) res.writeContinue();
    const model = params.name ?? params.model ?? '';
    leave = s.admission.enter(model);
    const extra: Record<string, string> = Object.assign({ 'x-request-id': reqId }, API_HEADERS);
    const deadline = answerBy(takenAt(started, req.socket), s.requestTimeoutMs);
    if (gated) {
      pass = await s.gate.enter(model, deadline, gone.signal);
      // A client that waits for 100 Continue (curl does for bodies over 1 MiB) sends its body only now.
      if (expectsContinue(req)) res.writeContinue();
      s.bodies.watch(req, res, route.protocol);
      const read = pass;
      if (req.complete) read.bodyRead();
      else req.once('end', () => read.bodyRead());
    }
    const answer = await byDeadline(route.stream(req, { params, query, reqId, deadline, signal: gone.signal }), deadline);
    pass?.done(typeof answer.headers['server-timing'] === 'string' ? answer.headers['server-timing'] : undefined);
    ({ bytes: bytesOut, headers: written } = await relay(answer, res, extra, s.answerStallMs));
  } catch (err) {
    const e = err instanceof InferrerError ? err : undefined;
    failure = e;
    // A client found gone before its request went upstream (request-body.ts) is gone for the answer too.
    if (e?.code === 'REQUEST_CANCELLED') gone.abort(e);
    if (gone.signal.aborted) {
      // Nobody to answer: 499 for the metrics and the access line.
      failure = gone.signal.reason instanceof InferrerError ? gone.signal.reason : cancelledError();
      res.statusCode = statusOf(failure);
    }
    if (e && !gone.signal.aborted && (e.kind === 'unavailable' || e.kind === 'timeout' || e.kind === 'internal'))
      s.metrics.upstreamErrors.inc({ code: e.code });
    req.resume();
    if (!gone.signal.aborted) {
      if (!res.headersSent) for (const h in API_HEADERS) res.setHeader(h, API_HEADERS[h]!);
      sendError(res, err, ERROR_BODY[route.protocol], s.log, { reqId, method: req.method, path });
      bytesOut = Number(res.getHeader('content-length')) || 0;
    }
  }
  pass?.done();
  leave?.(failure ?? (res.statusCode >= 400 ? 'failed' : undefined));
  noteEarlyAnswer(req, performance.now());
  if (gone.signal.aborted) s.metrics.cancelled.inc({ route: route.path, protocol: route.protocol });
  const ms = performance.now() - started;
  const bytesIn = Number(req.headers['content-length']) || 0;
  s.metrics.observe(route.path, route.protocol, res.statusCode, ms / 1000, bytesIn, bytesOut);
  if (s.access && sampleAccess(res.statusCode, s.sample)) {
    // Name what is known: the version and modelhost that answered, else the version asked for.
    const by = written ? undefined : answeredByOf(failure);
    const version = written?.['x-inferrer-model-version'] ?? by?.version ?? params.version ?? requestedVersion(query);
    const modelhost = written?.['x-modelhost-id'] ?? by?.modelhost;
    s.access.info('request', {
      reqId,
      method: req.method,
      path,
      route: route.path,
      protocol: route.protocol,
      model: (params.name ?? params.model ?? '').slice(0, 200),
      ...(version !== undefined ? { version: Number(version) || String(version).slice(0, 16) } : {}),
      ...(modelhost !== undefined ? { modelhost } : {}),
      status: res.statusCode,
      ...(res.statusCode >= 400 ? { error: failure?.code ?? 'INTERNAL' } : {}),
      ms: Number(ms.toFixed(2)),
      bytesIn,
      bytesOut,
    });
  }
}

/**
 * The answer, or DEADLINE_EXCEEDED at the deadline if it has not come by then (the body may still be
 * arriving, or a modelhost still working): nothing is answered after the deadline. An answer that comes
 * later is dropped.
 */
function byDeadline(answer: Promise<UpstreamResponse>, deadline: number): Promise<UpstreamResponse> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () => {
        reject(new InferrerError('DEADLINE_EXCEEDED', 'no answer before the deadline'));
        // The answer, if one still comes, is read and dropped, so its connection is reused.
        answer
          .then(
            (r) => r.body?.dump(),
            () => undefined,
          )
          .catch(() => undefined);
      },
      Math.max(0, deadline - performance.now()),
    );
  });
  return Promise.race([answer, late]).finally(() => clearTimeout(timer));
}

/** `?version=N` of a prediction, for the access line of a request refused before any modelhost saw it. */
function requestedVersion(query: string): string | undefined {
  if (!query.includes('version=')) return undefined;
  return new URLSearchParams(query).get('version') ?? undefined;
}
