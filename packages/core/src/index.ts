export * from './errors.ts';
export * from './datatypes.ts';
export * from './tensor.ts';
export * from './http-status.ts';
export * from './names.ts';
export * from './codecs/values.ts';
export * from './codecs/json-number.ts';
export * from './codecs/v1.ts';
