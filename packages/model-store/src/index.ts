export * from './model-store.ts';
export * from './records.ts';
export * from './onnx-check.ts';
export * from './stac-mlm.ts';
export { ownerGone, ownerTag } from './leases.ts';
