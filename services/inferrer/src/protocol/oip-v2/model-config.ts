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
import { InferrerError, type ModelSignature, type TensorSpec, V2_PRIORITY_LEVELS, hasDynamicBatchAxis, v2Datatype, v2Shape } from '@inferrer/core';

/** How a modelhost runs a model (its GET /v1/models/{name}/settings). */
export interface ModelSettings {
  max_batch_size: number;
  max_queue_delay_ms: number;
  max_queue_size: number;
  instances: number;
  execution_providers: string[];
  /** The model's config enables the response cache and the worker has one (absent from older workers). */
  response_cache?: { enable: boolean };
  /** The execution plan of the answering worker (slots × threads, batch size, why), or why there is none yet. */
  execution?: { reason: string; intra_op_threads?: number; cpus?: number; modelhost?: string };
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
            priority_levels: V2_PRIORITY_LEVELS,
            default_priority_level: 1,
            default_queue_policy: {
              timeout_action: 'REJECT',
              default_timeout_microseconds: opts.requestTimeoutMs * 1000,
              allow_timeout_override: true,
              max_queue_size: settings.max_queue_size,
            },
          },
        }
      : {}),
    instance_group: [{ name, kind: gpu ? 'KIND_GPU' : 'KIND_CPU', count: settings.instances, gpus: [] }],
    default_model_filename: 'model.onnx',
    // Triton's ONNX Runtime backend reads intra_op_thread_count here; execution_plan says why (execution.ts).
    parameters: executionParameters(settings.execution),
    model_transaction_policy: { decoupled: false },
    response_cache: { enable: settings.response_cache?.enable === true },
  };
}

function executionParameters(e: ModelSettings['execution']): Record<string, { string_value: string }> {
  if (!e) return {};
  const out: Record<string, { string_value: string }> = { execution_plan: { string_value: e.reason } };
  if (e.intra_op_threads !== undefined) out.intra_op_thread_count = { string_value: String(e.intra_op_threads) };
  if (e.cpus !== undefined) out.execution_plan_cpus = { string_value: String(e.cpus) };
  return out;
}

/** What a model's stored config becomes when a client loads it with a Triton model configuration. */
export interface ConfigPatch {
  batching?: { max_batch_size?: number; max_queue_delay_ms?: number; max_queue_size?: number };
  instances?: number;
  execution_providers?: ('cpu' | 'cuda')[];
  response_cache?: { enable: boolean };
}

const refuse = (what: string): InferrerError =>
  new InferrerError('INVALID_REQUEST', `the model configuration asks for ${what}, which the Inferrer does not do`, { field: what.split(' ')[0] });

/**
 * Reads the `config` parameter of a repository load (Triton's model configuration as JSON) into the stored
 * config: `max_batch_size` (0 runs every request alone), `dynamic_batching.max_queue_delay_microseconds`
 * and `.default_queue_policy.max_queue_size`, `instance_group` (the counts add up to the instances per
 * worker; KIND_GPU asks for CUDA, KIND_CPU for the CPU), `response_cache.enable`. What the Inferrer cannot
 * do is refused (sequence batching, ensembles, decoupled models, preferred batch sizes, another platform); the
 * inputs and outputs come from the ONNX graph, and the other fields (optimization, warmup, …) have no effect.
 */
export function configPatch(text: string, model: string): ConfigPatch {
  let cfg: Record<string, unknown>;
  try {
    cfg = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new InferrerError('INVALID_REQUEST', `the "config" parameter is not valid JSON: ${(err as Error).message}`);
  }
  if (!cfg || typeof cfg !== 'object' || Array.isArray(cfg))
    throw new InferrerError('INVALID_REQUEST', 'the "config" parameter must be a JSON object (a Triton model configuration)');
  const obj = (v: unknown, what: string): Record<string, unknown> => {
    if (v === undefined || v === null) return {};
    if (typeof v !== 'object' || Array.isArray(v)) throw new InferrerError('INVALID_REQUEST', `config field ${what} must be an object`);
    return v as Record<string, unknown>;
  };
  const int = (v: unknown, what: string, min: number, max: number): number => {
    const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min || n > max)
      throw new InferrerError('INVALID_REQUEST', `config field ${what} must be an integer from ${min} to ${max}`, { field: what });
    return n;
  };
  if (cfg.name !== undefined && cfg.name !== '' && cfg.name !== model)
    throw new InferrerError('INVALID_REQUEST', `the configuration names model ${JSON.stringify(String(cfg.name).slice(0, 128))}, not ${model}`);
  if (cfg.platform !== undefined && cfg.platform !== '' && cfg.platform !== PLATFORM)
    refuseWith(`platform ${JSON.stringify(String(cfg.platform).slice(0, 64))} (only ${PLATFORM})`);
  if (cfg.backend !== undefined && cfg.backend !== '' && cfg.backend !== BACKEND)
    refuseWith(`backend ${JSON.stringify(String(cfg.backend).slice(0, 64))} (only ${BACKEND})`);
  if (cfg.sequence_batching !== undefined) throw refuse('sequence_batching');
  if (cfg.ensemble_scheduling !== undefined) throw refuse('ensemble_scheduling');
  if (obj(cfg.model_transaction_policy, 'model_transaction_policy').decoupled === true) throw refuse('model_transaction_policy.decoupled');
  const patch: ConfigPatch = {};
  const cache = obj(cfg.response_cache, 'response_cache').enable;
  if (cache !== undefined) {
    if (typeof cache !== 'boolean')
      throw new InferrerError('INVALID_REQUEST', 'config field response_cache.enable must be true or false', { field: 'response_cache.enable' });
    patch.response_cache = { enable: cache };
  }
  const batching: NonNullable<ConfigPatch['batching']> = {};
  if (cfg.max_batch_size !== undefined) batching.max_batch_size = Math.max(1, int(cfg.max_batch_size, 'max_batch_size', 0, 4096));
  const dyn = obj(cfg.dynamic_batching, 'dynamic_batching');
  if (Array.isArray(dyn.preferred_batch_size) && dyn.preferred_batch_size.length > 0)
    throw refuse('dynamic_batching.preferred_batch_size (batches are cut at max_batch_size or after the queue delay)');
  if (dyn.max_queue_delay_microseconds !== undefined)
    batching.max_queue_delay_ms = int(dyn.max_queue_delay_microseconds, 'dynamic_batching.max_queue_delay_microseconds', 0, 10_000_000) / 1000;
  const policy = obj(dyn.default_queue_policy, 'dynamic_batching.default_queue_policy');
  if (policy.max_queue_size !== undefined && Number(policy.max_queue_size) !== 0)
    batching.max_queue_size = int(policy.max_queue_size, 'dynamic_batching.default_queue_policy.max_queue_size', 1, 1_000_000);
  if (Object.keys(batching).length > 0) patch.batching = batching;
  if (cfg.instance_group !== undefined) {
    if (!Array.isArray(cfg.instance_group)) throw new InferrerError('INVALID_REQUEST', 'config field instance_group must be a list');
    let count = 0;
    const kinds = new Set<string>();
    for (const [i, g] of cfg.instance_group.entries()) {
      const group = obj(g, `instance_group[${i}]`);
      count += group.count === undefined ? 1 : int(group.count, `instance_group[${i}].count`, 1, 64);
      kinds.add(String(group.kind ?? 'KIND_AUTO'));
    }
    for (const k of kinds) if (!['KIND_AUTO', 'KIND_CPU', 'KIND_GPU'].includes(k)) throw refuse(`instance_group kind ${JSON.stringify(k.slice(0, 32))}`);
    if (count > 64) throw new InferrerError('INVALID_REQUEST', `instance_group asks for ${count} instances; at most 64`);
    if (count > 0) patch.instances = count;
    if (kinds.has('KIND_GPU') && kinds.has('KIND_CPU')) throw refuse('instances on both CPU and GPU');
    if (kinds.has('KIND_GPU')) patch.execution_providers = ['cuda'];
    else if (kinds.has('KIND_CPU')) patch.execution_providers = ['cpu'];
  }
  return patch;
}

function refuseWith(what: string): never {
  throw refuse(what);
}
