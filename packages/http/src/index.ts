export * from './route-table.ts';
export * from './target.ts';
export * from './error-reply.ts';
export * from './acceptors.ts';
