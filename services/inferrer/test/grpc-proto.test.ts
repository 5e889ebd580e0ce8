/**
 * The .proto the gRPC door serves keeps the published definition's package, service, method paths, message
 * names and field names, numbers and types (KServe's open inference protocol, Triton's grpc_service.proto
 * and model_config.proto, transcribed below). A client built from the published files talks to it: every
 * field declared here is in the published message with the same number and type, and the inference
 * messages have every published field.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as protoLoader from '@grpc/proto-loader';
import { PROTO_DIR, PROTO_FILE } from '../src/protocol/grpc/server.ts';

/** message → "field=number:type" of the published definition (type: scalar, or the message/enum name). */
const PUBLISHED: Record<string, string> = {
  ServerLiveResponse: 'live=1:bool',
  ServerReadyResponse: 'ready=1:bool',
  ModelReadyRequest: 'name=1:string version=2:string',
  ModelReadyResponse: 'ready=1:bool',
  ServerMetadataResponse: 'name=1:string version=2:string extensions=3:string[]',
  ModelMetadataRequest: 'name=1:string version=2:string',
  ModelMetadataResponse: 'name=1:string versions=2:string[] platform=3:string inputs=4:TensorMetadata[] outputs=5:TensorMetadata[]',
  'ModelMetadataResponse.TensorMetadata': 'name=1:string datatype=2:string shape=3:int64[]',
  InferParameter: 'bool_param=1:bool int64_param=2:int64 string_param=3:string double_param=4:double uint64_param=5:uint64',
  InferTensorContents:
    'bool_contents=1:bool[] int_contents=2:int32[] int64_contents=3:int64[] uint_contents=4:uint32[] uint64_contents=5:uint64[] fp32_contents=6:float[] fp64_contents=7:double[] bytes_contents=8:bytes[]',
  ModelInferRequest:
    'model_name=1:string model_version=2:string id=3:string parameters=4:map inputs=5:InferInputTensor[] outputs=6:InferRequestedOutputTensor[] raw_input_contents=7:bytes[]',
  'ModelInferRequest.InferInputTensor': 'name=1:string datatype=2:string shape=3:int64[] parameters=4:map contents=5:InferTensorContents',
  'ModelInferRequest.InferRequestedOutputTensor': 'name=1:string parameters=2:map',
  ModelInferResponse: 'model_name=1:string model_version=2:string id=3:string parameters=4:map outputs=5:InferOutputTensor[] raw_output_contents=6:bytes[]',
  'ModelInferResponse.InferOutputTensor': 'name=1:string datatype=2:string shape=3:int64[] parameters=4:map contents=5:InferTensorContents',
  ModelConfigRequest: 'name=1:string version=2:string',
  ModelConfigResponse: 'config=1:ModelConfig',
  ModelStatisticsRequest: 'name=1:string version=2:string',
  StatisticDuration: 'count=1:uint64 ns=2:uint64',
  InferStatistics:
    'success=1:StatisticDuration fail=2:StatisticDuration queue=3:StatisticDuration compute_input=4:StatisticDuration compute_infer=5:StatisticDuration compute_output=6:StatisticDuration cache_hit=7:StatisticDuration cache_miss=8:StatisticDuration',
  InferBatchStatistics: 'batch_size=1:uint64 compute_input=2:StatisticDuration compute_infer=3:StatisticDuration compute_output=4:StatisticDuration',
  ModelStatistics:
    'name=1:string version=2:string last_inference=3:uint64 inference_count=4:uint64 execution_count=5:uint64 inference_stats=6:InferStatistics batch_stats=7:InferBatchStatistics[] memory_usage=8:MemoryUsage[] response_stats=9:map',
  ModelStatisticsResponse: 'model_stats=1:ModelStatistics[]',
  ModelRepositoryParameter: 'bool_param=1:bool int64_param=2:int64 string_param=3:string bytes_param=4:bytes',
  RepositoryIndexRequest: 'repository_name=1:string ready=2:bool',
  RepositoryIndexResponse: 'models=1:ModelIndex[]',
  'RepositoryIndexResponse.ModelIndex': 'name=1:string version=2:string state=3:string reason=4:string',
  RepositoryModelLoadRequest: 'repository_name=1:string model_name=2:string parameters=3:map',
  RepositoryModelUnloadRequest: 'repository_name=1:string model_name=2:string parameters=3:map',
  // model_config.proto (the fields the Inferrer fills are a subset of these).
  ModelConfig:
    'name=1:string platform=2:string backend=17:string runtime=25:string version_policy=3:ModelVersionPolicy max_batch_size=4:int32 input=5:ModelInput[] output=6:ModelOutput[] batch_input=20:BatchInput[] batch_output=21:BatchOutput[] optimization=12:ModelOptimizationPolicy dynamic_batching=11:ModelDynamicBatching sequence_batching=13:ModelSequenceBatching ensemble_scheduling=15:ModelEnsembling instance_group=7:ModelInstanceGroup[] default_model_filename=8:string cc_model_filenames=9:map metric_tags=10:map parameters=14:map model_warmup=16:ModelWarmup[] model_operations=18:ModelOperations model_transaction_policy=19:ModelTransactionPolicy model_repository_agents=23:ModelRepositoryAgents response_cache=24:ModelResponseCache model_metrics=26:ModelMetrics',
  ModelInput:
    'name=1:string data_type=2:DataType format=3:Format dims=4:int64[] reshape=5:ModelTensorReshape is_shape_tensor=6:bool allow_ragged_batch=7:bool optional=8:bool is_non_linear_format_io=9:bool',
  ModelOutput:
    'name=1:string data_type=2:DataType dims=3:int64[] reshape=5:ModelTensorReshape label_filename=4:string is_shape_tensor=6:bool is_non_linear_format_io=7:bool',
  ModelTensorReshape: 'shape=1:int64[]',
  ModelInstanceGroup:
    'name=1:string kind=4:Kind count=2:int32 rate_limiter=6:ModelRateLimiter gpus=3:int32[] secondary_devices=8:SecondaryDevice[] profile=5:string[] passive=7:bool host_policy=9:string',
  ModelVersionPolicy: 'latest=1:Latest all=2:All specific=3:Specific',
  ModelQueuePolicy: 'timeout_action=1:TimeoutAction default_timeout_microseconds=2:uint64 allow_timeout_override=3:bool max_queue_size=4:uint32',
  ModelDynamicBatching:
    'preferred_batch_size=1:int32[] max_queue_delay_microseconds=2:uint64 preserve_ordering=3:bool priority_levels=4:uint64 default_priority_level=5:uint64 default_queue_policy=6:ModelQueuePolicy priority_queue_policy=7:map',
  ModelParameter: 'string_value=1:string',
  ModelTransactionPolicy: 'decoupled=1:bool',
  ModelResponseCache: 'enable=1:bool',
};

/** Messages whose every published field must be here (the rest may declare a subset). */
const COMPLETE = new Set(
  Object.keys(PUBLISHED).filter(
    (m) => !['ModelStatistics', 'ModelConfig', 'ModelInput', 'ModelOutput', 'ModelInstanceGroup', 'ModelDynamicBatching'].includes(m),
  ),
);

const METHODS = [
  ['ServerLive', 'ServerLiveRequest', 'ServerLiveResponse'],
  ['ServerReady', 'ServerReadyRequest', 'ServerReadyResponse'],
  ['ModelReady', 'ModelReadyRequest', 'ModelReadyResponse'],
  ['ServerMetadata', 'ServerMetadataRequest', 'ServerMetadataResponse'],
  ['ModelMetadata', 'ModelMetadataRequest', 'ModelMetadataResponse'],
  ['ModelInfer', 'ModelInferRequest', 'ModelInferResponse'],
  ['ModelConfig', 'ModelConfigRequest', 'ModelConfigResponse'],
  ['ModelStatistics', 'ModelStatisticsRequest', 'ModelStatisticsResponse'],
  ['RepositoryIndex', 'RepositoryIndexRequest', 'RepositoryIndexResponse'],
  ['RepositoryModelLoad', 'RepositoryModelLoadRequest', 'RepositoryModelLoadResponse'],
  ['RepositoryModelUnload', 'RepositoryModelUnloadRequest', 'RepositoryModelUnloadResponse'],
];

const SCALAR: Record<string, string> = {
  TYPE_BOOL: 'bool',
  TYPE_STRING: 'string',
  TYPE_BYTES: 'bytes',
  TYPE_INT32: 'int32',
  TYPE_INT64: 'int64',
  TYPE_UINT32: 'uint32',
  TYPE_UINT64: 'uint64',
  TYPE_FLOAT: 'float',
  TYPE_DOUBLE: 'double',
};

interface Field {
  name: string;
  number: number;
  type: string;
  label: string;
  typeName: string;
}

const def = protoLoader.loadSync(PROTO_FILE, { keepCase: true, includeDirs: [PROTO_DIR] });

interface Descriptor {
  name: string;
  field: Field[];
  nestedType: Descriptor[];
  enumType: { name: string; value: { name: string; number: number }[] }[];
  options?: { mapEntry?: boolean } | null;
}

/** A message's descriptor: `Outer` or `Outer.Nested`. */
function descriptor(message: string): Descriptor {
  const [outer, ...nested] = message.split('.');
  let d = (def[`inference.${outer}`] as { type?: Descriptor } | undefined)?.type;
  for (const n of nested) d = d?.nestedType.find((x) => x.name === n);
  assert.ok(d, `message inference.${message} is declared`);
  return d;
}

function fieldsOf(message: string): Map<string, string> {
  const d = descriptor(message);
  const maps = new Set(d.nestedType.filter((n) => n.options?.mapEntry).map((n) => n.name));
  return new Map(
    d.field.map((f) => {
      const base = f.type === 'TYPE_MESSAGE' || f.type === 'TYPE_ENUM' ? f.typeName.split('.').pop()! : SCALAR[f.type]!;
      const type = maps.has(base) ? 'map' : `${base}${f.label === 'LABEL_REPEATED' ? '[]' : ''}`;
      return [f.name, `${f.number}:${type}`];
    }),
  );
}

test('package inference, service GRPCInferenceService, the published methods with their request and answer messages', () => {
  const service = def['inference.GRPCInferenceService'] as Record<
    string,
    { path: string; requestStream: boolean; responseStream: boolean; requestType: { type: { name: string } }; responseType: { type: { name: string } } }
  >;
  assert.ok(service, 'inference.GRPCInferenceService');
  assert.deepEqual(Object.keys(service).sort(), METHODS.map(([m]) => m).sort());
  for (const [m, req, res] of METHODS) {
    const s = service[m!]!;
    assert.equal(s.path, `/inference.GRPCInferenceService/${m}`);
    assert.equal(s.requestStream || s.responseStream, false, `${m} is unary`);
    assert.equal(s.requestType.type.name, req);
    assert.equal(s.responseType.type.name, res);
  }
});

test('every declared field has its published name, number and type; the inference messages have all of theirs', () => {
  for (const [message, spec] of Object.entries(PUBLISHED)) {
    const published = new Map(spec.split(' ').map((f) => f.split('=') as [string, string]));
    const ours = fieldsOf(message);
    for (const [name, numberType] of ours) assert.equal(numberType, published.get(name), `${message}.${name}`);
    if (COMPLETE.has(message)) assert.deepEqual([...ours.keys()].sort(), [...published.keys()].sort(), `${message} has every published field`);
  }
});

test('the data types, instance kinds, formats and queue actions have their published numbers', () => {
  const values = (e: string): string => {
    const [outer, inner] = e.split('.');
    const list = inner
      ? descriptor(outer!).enumType.find((x) => x.name === inner)!.value
      : (def[`inference.${outer}`] as { type: { value: { name: string; number: number }[] } }).type.value;
    return list.map((v) => `${v.name}=${v.number}`).join(' ');
  };
  assert.equal(
    values('DataType'),
    'TYPE_INVALID=0 TYPE_BOOL=1 TYPE_UINT8=2 TYPE_UINT16=3 TYPE_UINT32=4 TYPE_UINT64=5 TYPE_INT8=6 TYPE_INT16=7 TYPE_INT32=8 TYPE_INT64=9 TYPE_FP16=10 TYPE_FP32=11 TYPE_FP64=12 TYPE_STRING=13 TYPE_BF16=14',
  );
  assert.equal(values('ModelInstanceGroup.Kind'), 'KIND_AUTO=0 KIND_GPU=1 KIND_CPU=2 KIND_MODEL=3');
  assert.equal(values('ModelInput.Format'), 'FORMAT_NONE=0 FORMAT_NHWC=1 FORMAT_NCHW=2');
  assert.equal(values('ModelQueuePolicy.TimeoutAction'), 'REJECT=0 DELAY=1');
});
