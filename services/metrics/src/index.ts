export * from './cluster-stats.ts';
export * from './prom-text.ts';
export * from './config.ts';
