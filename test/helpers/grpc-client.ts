/**
 * A client of the Inferrer's gRPC service made the way Triton's own clients are: plain @grpc/grpc-js and
 * @grpc/proto-loader over the repository's .proto file (none of the server's code). Methods are called by
 * name, `client.ModelInfer(req, metadata, options, callback)`.
 */
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** The service definition the Inferrer serves (Triton's GRPCInferenceService). */
export const GRPC_PROTO = path.resolve(import.meta.dirname, '..', '..', 'services', 'inferrer', 'src', 'protocol', 'grpc', 'grpc_service.proto');

export type GrpcClient = grpc.Client &
  Record<string, (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: any) => void) => grpc.ClientUnaryCall>;

/** A client of GRPCInferenceService at `address` (host:port), without TLS. */
export function grpcClient(address: string, options: grpc.ChannelOptions = {}): GrpcClient {
  const def = protoLoader.loadSync(GRPC_PROTO, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { inference: { GRPCInferenceService: grpc.ServiceClientConstructor } };
  return new pkg.inference.GRPCInferenceService(address, grpc.credentials.createInsecure(), options) as unknown as GrpcClient;
}
