export * from './route-table.ts';
export * from './target.ts';
