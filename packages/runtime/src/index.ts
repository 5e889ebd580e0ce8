export * from './onnx-session.ts';
export * from './inspect.ts';
export * from './batching/adaptive-batcher.ts';
export * from './batching/tensors.ts';
