/**
 * The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`, grpc_service.proto), on
 * GRPC_PORT: a second door onto the same service as HTTP. Metadata, readiness, configuration, statistics
 * and the repository answer from oip-v2/service.ts; ModelInfer becomes the binary-extension body a
 * modelhost takes and goes the HTTP path (dataplane → grouping → balancer → modelhost, infer-codec.ts).
 *
 * Each call is framed as an HTTP request is: the bearer key in the `authorization` metadata and the scope
 * its route has over HTTP (auth.ts), the request id from `x-request-id` metadata (or a new one), sent back in
 * the answer's metadata; MAX_BODY_BYTES as the largest message; the call's deadline as the request deadline
 * (never past REQUEST_TIMEOUT_MS); errors as gRPC statuses (protocol/errors.ts) with the message and error
 * code; one access line and the Inferrer's request metrics (protocol `grpc`, the HTTP status the error would
 * have had) per call.
 */
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { InferrerError, statusOf, toInferrerError } from '@inferrer/core';
import { type Logger, requestIdFrom, sampleAccess } from '@inferrer/telemetry';
import type { Auth } from '../../auth.ts';
import type { InferrerConfig } from '../../config.ts';
import type { DataPlane } from '../../dataplane.ts';
import type { ClientConnections } from '../../http/connection-guard.ts';
import type { Access } from '../../http/route.ts';
import type { InferrerMetrics } from '../../metrics.ts';
import { answeredByOf, cancelledError } from '../../upstream.ts';
import type { OipService } from '../oip-v2/service.ts';
import { grpcStatusOf } from '../errors.ts';
import { AnswerGuard } from './answer-guard.ts';
import { type GrpcInferRequest, inferBody, inferResponse, parameterValue } from './infer-codec.ts';
import { type GrpcListener, listenGrpc } from './listener.ts';
import { ClientAddresses } from '../../http/client-address.ts';
import { MessageGuard, peerAddress } from './message-guard.ts';

export const PROTO_DIR = import.meta.dirname;
export const PROTO_FILE = path.join(PROTO_DIR, 'grpc_service.proto');
export const SERVICE = 'inference.GRPCInferenceService';

export interface GrpcDeps {
  config: InferrerConfig;
  logger: Logger;
  auth: Auth;
  oip: OipService;
  dataplane: DataPlane;
  metrics: InferrerMetrics;
  /** The connections each client address holds, HTTP and gRPC together (MAX_CONNECTIONS_PER_CLIENT). */
  connections: ClientConnections;
}

interface CallContext {
  reqId: string;
  /** Milliseconds left before the call's deadline (Infinity without one). */
  timeLeft(): number;
  /** Fires when the client cancels the call (or its connection goes away). */
  signal: AbortSignal;
}

/** A request message as proto-loader decodes it from the .proto at run time; each handler reads its own message's fields. */
// biome-ignore lint/suspicious/noExplicitAny: the message types exist only at run time
type Message = any;

interface Method {
  /** The scope its HTTP route needs. */
  scope: Access;
  /** Payload bytes of a request (tensors, model files), for the metrics and access lines. */
  bytesIn?: (req: Message) => number;
  handle: (req: Message, ctx: CallContext) => Promise<unknown>;
}

/** The version a request names ('' = the default). */
const version = (v: string | undefined): string | undefined => (v === undefined || v === '' ? undefined : v);

export function methods({ oip, dataplane }: Pick<GrpcDeps, 'oip' | 'dataplane'>): Record<string, Method> {
  const pub = 'public' as const;
  const predict = 'predict' as const;
  return {
    ServerLive: { scope: pub, handle: async () => ({ live: true }) },
    ServerReady: { scope: pub, handle: async () => ({ ready: await oip.serverReady() }) },
    ServerMetadata: { scope: pub, handle: async () => oip.serverMetadata() },
    ModelReady: { scope: predict, handle: async (r) => ({ ready: (await oip.modelReady(r.name, version(r.version))).ready }) },
    ModelMetadata: {
      scope: predict,
      handle: async (r) => {
        const m = await oip.modelMetadata(r.name, version(r.version));
        return { name: m.name, versions: m.versions, platform: m.platform, inputs: m.inputs, outputs: m.outputs };
      },
    },
    ModelConfig: { scope: predict, handle: async (r) => ({ config: await oip.modelConfig(r.name, version(r.version)) }) },
    ModelStatistics: { scope: predict, handle: async (r) => oip.modelStats(r.name === '' ? undefined : r.name, version(r.version)) },
    RepositoryIndex: {
      scope: predict,
      handle: async (r) => ({ models: (await oip.index()).filter((m) => !r.ready || m.state === 'READY') }),
    },
    RepositoryModelLoad: {
      scope: 'admin',
      bytesIn: (r) => Object.values(r.parameters ?? {}).reduce<number>((n, p) => n + ((p as { bytes_param?: Buffer }).bytes_param?.length ?? 0), 0),
      handle: async (r) => {
        const files: { path: string; bytes: Buffer }[] = [];
        let config: string | undefined;
        for (const [k, p] of Object.entries(r.parameters ?? {}) as [string, { parameter_choice?: string; string_param?: string; bytes_param?: Buffer }][]) {
          if (k === 'config' && p.parameter_choice === 'string_param') config = p.string_param;
          else if (k.startsWith('file:') && p.parameter_choice === 'bytes_param') files.push({ path: k.slice(5), bytes: p.bytes_param! });
          else if (k === 'config' || k.startsWith('file:'))
            throw new InferrerError(
              'INVALID_REQUEST',
              `load parameter ${JSON.stringify(k.slice(0, 64))} must be a ${k === 'config' ? 'string_param (the configuration as JSON)' : 'bytes_param (the file)'}, not ${p.parameter_choice ?? 'empty'}`,
              { parameter: k.slice(0, 64) },
            );
          else
            throw new InferrerError(
              'INVALID_REQUEST',
              `unknown load parameter ${JSON.stringify(k.slice(0, 64))}: a load takes "config" (string_param) and "file:<version>/<name>.onnx" (bytes_param)`,
              { parameter: k.slice(0, 64) },
            );
        }
        await oip.load(r.model_name, { ...(config !== undefined ? { config } : {}), ...(files.length ? { files } : {}) });
        return {};
      },
    },
    RepositoryModelUnload: {
      scope: 'admin',
      handle: async (r) => {
        await oip.unload(r.model_name);
        return {};
      },
    },
    ModelInfer: {
      scope: predict,
      bytesIn: (r: GrpcInferRequest) => r.raw_input_contents.reduce((n, b) => n + b.length, 0),
      handle: async (r: GrpcInferRequest, ctx) => {
        const { parts, length, headerLength } = inferBody(r);
        // The schedule policy's timeout (microseconds) shortens the call's deadline here too.
        const timeoutUs = r.parameters?.timeout ? Number(parameterValue(r.parameters.timeout)) : 0;
        const left = timeoutUs > 0 ? Math.min(ctx.timeLeft(), timeoutUs / 1000) : ctx.timeLeft();
        if (left <= 0) throw new InferrerError('DEADLINE_EXCEEDED', 'the call passed its deadline before it could be sent');
        const answer = await dataplane.admission.admitted(r.model_name, () =>
          dataplane.inferV2(r.model_name, version(r.model_version), {
            reqId: ctx.reqId,
            body: parts,
            contentLength: length,
            contentType: 'application/octet-stream',
            headerLength: String(headerLength),
            timeoutMs: left,
            signal: ctx.signal,
          }),
        );
        const bytes = answer.bytes ?? Buffer.from(await answer.body.arrayBuffer());
        const hl = answer.headers['inference-header-content-length'];
        return inferResponse(bytes, typeof hl === 'string' ? hl : undefined);
      },
    },
  };
}

export function loadService(): grpc.ServiceDefinition {
  const definition = protoLoader.loadSync(PROTO_FILE, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [PROTO_DIR] });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as { inference: { GRPCInferenceService: { service: grpc.ServiceDefinition } } };
  return pkg.inference.GRPCInferenceService.service;
}

export class GrpcServer {
  readonly #deps: GrpcDeps;
  readonly #server: grpc.Server;
  readonly #log: Logger;
  readonly #access: Logger | undefined;
  #listener: GrpcListener | undefined;

  constructor(deps: GrpcDeps) {
    this.#deps = deps;
    this.#log = deps.logger.child({ module: 'grpc' });
    const access = deps.logger.child({ module: 'access' });
    this.#access = deps.config.accessLog && access.isInfoEnabled() ? access : undefined;
    const { maxStreams, maxIdleMs, maxAgeMs, maxAgeGraceMs } = deps.config.grpcConnections;
    this.#server = new grpc.Server({
      'grpc.max_receive_message_length': deps.config.maxBodyBytes,
      'grpc.max_send_message_length': -1,
      'grpc.keepalive_permit_without_calls': 1,
      // Bounds what one connection holds: its calls at once (each a request and an answer in memory) …
      'grpc.max_concurrent_streams': maxStreams,
      // … and how long it stays open with none (GOAWAY; clients reconnect when they next call).
      ...(maxIdleMs > 0 ? { 'grpc.max_connection_idle_ms': maxIdleMs } : {}),
      // … and how long it stays open at all: past its age (± 10 %, grpc-js's jitter) it is sent GOAWAY and
      // takes no new call, the calls it has get the grace to finish, and then it is closed, cutting them.
      ...(maxAgeMs > 0 ? { 'grpc.max_connection_age_ms': maxAgeMs, 'grpc.max_connection_age_grace_ms': maxAgeGraceMs } : {}),
      interceptors: [
        new MessageGuard(
          deps.config.bodies,
          new ClientAddresses(deps.config.clientIpv6PrefixBits),
          deps.logger,
          new AnswerGuard(deps.config.bodies.timeoutMs, deps.logger),
        ).interceptor,
      ],
    });
    const implementation: grpc.UntypedServiceImplementation = {};
    for (const [name, m] of Object.entries(methods(deps))) implementation[name] = this.#unary(name, m);
    this.#server.addService(loadService(), implementation);
  }

  /** Listens on host:port (listener.ts); resolves with the port bound (for port 0). */
  async listen(host: string, port: number): Promise<number> {
    this.#listener = await listenGrpc(this.#server, host, port, this.#deps.connections, this.#deps.logger);
    return this.#listener.port;
  }

  /** Stops taking calls and waits for those in flight (up to `timeoutMs`, then cuts them). */
  close(timeoutMs: number): Promise<void> {
    this.#listener?.close();
    return new Promise((resolve) => {
      const force = setTimeout(() => {
        this.#server.forceShutdown();
        resolve();
      }, timeoutMs);
      force.unref();
      this.#server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }

  #unary(name: string, m: Method): grpc.handleUnaryCall<Message, unknown> {
    const { auth, metrics } = this.#deps;
    const route = `/${SERVICE}/${name}`;
    return async (call, callback) => {
      const started = performance.now();
      const reqId = requestIdFrom(first(call.metadata.get('x-request-id')));
      const head = new grpc.Metadata();
      head.set('x-request-id', reqId);
      let status = 200;
      let failure: InferrerError | undefined;
      let answered: { model_version?: string } | undefined;
      const gone = new AbortController();
      call.once('cancelled', () => gone.abort());
      try {
        await auth.checkCredentials(first(call.metadata.get('authorization')), peerAddress(call.getPeer()), m.scope);
        const deadline = call.getDeadline();
        const at = deadline instanceof Date ? deadline.getTime() : Number(deadline);
        const timeLeft = (): number => (Number.isFinite(at) && at > 0 ? at - Date.now() : Number.POSITIVE_INFINITY);
        const answer = (await m.handle(call.request, { reqId, timeLeft, signal: gone.signal })) as { model_version?: string };
        answered = answer;
        call.sendMetadata(head);
        callback(null, answer);
      } catch (raw) {
        // A cancelled call: nobody to answer; 499 for the metrics and the access line.
        const err = gone.signal.aborted ? cancelledError() : toInferrerError(raw);
        status = statusOf(err);
        failure = err;
        if (status >= 500) this.#log.error('call failed', { reqId, method: name, status, err: err.code === 'INTERNAL' && err.cause ? err.cause : err });
        else if (this.#log.isDebugEnabled())
          this.#log.debug('call refused', { reqId, method: name, status, err: { type: err.name, code: err.code, message: err.message } });
        if (err.kind === 'unavailable' || err.kind === 'timeout' || err.kind === 'internal') metrics.upstreamErrors.inc({ code: err.code });
        if (err.code === 'REQUEST_CANCELLED') metrics.cancelled.inc({ route, protocol: 'grpc' });
        const trailer = new grpc.Metadata();
        trailer.set('x-request-id', reqId);
        trailer.set('inferrer-error-code', err.code);
        if (err.retryAfter !== undefined) trailer.set('retry-after', String(err.retryAfter));
        callback({ code: grpcStatusOf(err), details: err.message, metadata: trailer });
      }
      const ms = performance.now() - started;
      const bytesIn = m.bytesIn && call.request ? m.bytesIn(call.request) : 0;
      metrics.observe(route, 'grpc', status, ms / 1000, bytesIn, 0);
      if (this.#access && sampleAccess(status, this.#deps.config.accessLogSample)) {
        const model = call.request?.model_name ?? call.request?.name;
        const version = answered?.model_version ?? answeredByOf(failure)?.version ?? (call.request?.model_version || call.request?.version || undefined);
        const modelhost = answeredByOf(failure)?.modelhost;
        this.#access.info('request', {
          reqId,
          method: 'POST',
          path: route,
          route,
          protocol: 'grpc',
          ...(model ? { model: String(model).slice(0, 200) } : {}),
          ...(version !== undefined ? { version: Number(version) || String(version).slice(0, 16) } : {}),
          ...(modelhost !== undefined ? { modelhost } : {}),
          status,
          ...(failure ? { error: failure.code } : {}),
          ms: Number(ms.toFixed(2)),
          bytesIn,
        });
      }
    };
  }
}

function first(values: grpc.MetadataValue[]): string | undefined {
  const v = values[0];
  return v === undefined ? undefined : String(v);
}
