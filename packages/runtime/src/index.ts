export * from './onnx-session.ts';
export { SessionThreads } from './session-threads.ts';
export * from './inspect.ts';
export * from './batching/adaptive-batcher.ts';
export * from './batching/tensors.ts';
export * from './preprocess/image.ts';
export * from './postprocess/classification.ts';
export * from './postprocess/detection.ts';
export * from './codec/codec-pool.ts';
