export * from './logger.ts';
export * from './request-id.ts';
export * from './metrics.ts';
export * from './env-config.ts';
export * from './log-output.ts';
export * from './launcher-link.ts';
export * from './exit.ts';
