/** Drift detection math: no HTTP, no ONNX Runtime (the metrics service imports this alone, as @inferrer/runtime/drift). */
export * from './stats.ts';
export * from './profile.ts';
export * from './features.ts';
export * from './tracker.ts';
export * from './scores.ts';
