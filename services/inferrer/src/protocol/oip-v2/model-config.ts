/**
 * The model configuration extension: a model version described as Triton's model configuration
 * (model_config.proto, in its JSON form), which perf_analyzer and the Triton clients read before they send
 * anything. Built from the store's record (inputs, outputs) and the settings a modelhost runs the model with
 * (batching and instances: its config over the worker's defaults).
 *
 * `max_batch_size` > 0 says the first dim of every input and output is the batch dim, left out of `dims`
 * (as Triton does, a tensor with no other dim shows `dims: [1]` with `reshape: {shape: []}`); models
 * without a dynamic batch axis show 0 and their full shapes. Symbolic dims are -1.
 */
import { type ModelSignature, type TensorSpec, hasDynamicBatchAxis, v2Datatype, v2Shape } from '@inferrer/core';

/** How a modelhost runs a model (its GET /v1/models/{name}/settings). */
export interface ModelSettings {
  max_batch_size: number;
  max_queue_delay_ms: number;
  max_queue_size: number;
  instances: number;
  execution_providers: string[];
}

/** Triton's data type names (model_config.proto DataType) by v2 datatype. */
export const CONFIG_DATA_TYPE: Record<string, string> = {
  BOOL: 'TYPE_BOOL',
  UINT8: 'TYPE_UINT8',
  UINT16: 'TYPE_UINT16',
  UINT32: 'TYPE_UINT32',
  UINT64: 'TYPE_UINT64',
  INT8: 'TYPE_INT8',
  INT16: 'TYPE_INT16',
  INT32: 'TYPE_INT32',
  INT64: 'TYPE_INT64',
  FP16: 'TYPE_FP16',
  FP32: 'TYPE_FP32',
  FP64: 'TYPE_FP64',
  BYTES: 'TYPE_STRING',
};

export interface ConfigTensor {
  name: string;
  data_type: string;
  dims: number[];
  reshape?: { shape: number[] };
}

export interface ModelConfig {
  name: string;
  platform: string;
  backend: string;
  version_policy: { all: Record<string, never> };
  max_batch_size: number;
  input: (ConfigTensor & { format: 'FORMAT_NONE'; is_shape_tensor: false; allow_ragged_batch: false; optional: false })[];
  output: (ConfigTensor & { label_filename: string; is_shape_tensor: false })[];
  dynamic_batching?: {
    preferred_batch_size: number[];
    max_queue_delay_microseconds: number;
    preserve_ordering: boolean;
    priority_levels: number;
    default_priority_level: number;
    default_queue_policy: { timeout_action: 'REJECT'; default_timeout_microseconds: number; allow_timeout_override: boolean; max_queue_size: number };
  };
  instance_group: { name: string; kind: 'KIND_CPU' | 'KIND_GPU'; count: number; gpus: number[] }[];
  default_model_filename: string;
  parameters: Record<string, { string_value: string }>;
  model_transaction_policy: { decoupled: boolean };
  response_cache: { enable: boolean };
}

export const PLATFORM = 'onnxruntime_onnx';
export const BACKEND = 'onnxruntime';


export function modelConfig(name: string, sig: ModelSignature, settings: ModelSettings, opts: { requestTimeoutMs: number }): ModelConfig {
  const batched = hasDynamicBatchAxis(sig);
  const tensor = (t: TensorSpec): ConfigTensor => {
    const shape = v2Shape(t.shape);
    const dims = batched ? shape.slice(1) : shape;
    return { name: t.name, data_type: CONFIG_DATA_TYPE[v2Datatype(t.type)]!, ...(dims.length === 0 ? { dims: [1], reshape: { shape: [] } } : { dims }) };
  };
  const gpu = settings.execution_providers.includes('cuda');
  return {
    name,
    platform: PLATFORM,
    backend: BACKEND,
    version_policy: { all: {} },
    max_batch_size: batched ? settings.max_batch_size : 0,
    input: sig.inputs.map((t) => ({ ...tensor(t), format: 'FORMAT_NONE', is_shape_tensor: false, allow_ragged_batch: false, optional: false })),
    output: sig.outputs.map((t) => ({ ...tensor(t), label_filename: '', is_shape_tensor: false })),
    ...(batched
      ? {
          dynamic_batching: {
            preferred_batch_size: [],
            max_queue_delay_microseconds: Math.round(settings.max_queue_delay_ms * 1000),
            preserve_ordering: false,
            priority_levels: 0,
            default_priority_level: 0,
            default_queue_policy: { timeout_action: 'REJECT', default_timeout_microseconds: opts.requestTimeoutMs * 1000, allow_timeout_override: false, max_queue_size: settings.max_queue_size },
          },
        }
      : {}),
    instance_group: [{ name, kind: gpu ? 'KIND_GPU' : 'KIND_CPU', count: settings.instances, gpus: [] }],
    default_model_filename: 'model.onnx',
    parameters: {},
    model_transaction_policy: { decoupled: false },
    response_cache: { enable: false },
  };
}
