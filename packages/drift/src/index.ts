/** Drift detection math: moments, histograms, PSI and z-scores over tensors. No HTTP, no ONNX Runtime. */
export * from './stats.ts';
export * from './profile.ts';
export * from './features.ts';
export * from './tracker.ts';
export * from './scores.ts';
