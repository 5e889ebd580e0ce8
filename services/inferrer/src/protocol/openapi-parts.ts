/** Pieces of OpenAPI operation objects that many routes share (parameters, error answers, body shapes). */

export const json = (schema: unknown) => ({ content: { 'application/json': { schema } } });
export const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
export const ok = (description: string, schema: unknown = ref('V1Envelope')) => ({ '200': { description, ...json(schema) } });

export const nameParam = {
  name: 'name',
  in: 'path',
  required: true,
  description: 'Model name (`iris` and `iris.onnx` are the same model)',
  schema: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$' },
};
export const modelParam = { ...nameParam, name: 'model' };
export const versionParam = { name: 'version', in: 'path', required: true, schema: { type: 'string', pattern: '^[1-9][0-9]*$' } };
export const jobIdParam = {
  name: 'id',
  in: 'path',
  required: true,
  description: 'Job id (from the 202 answer)',
  schema: { type: 'string', pattern: '^j[a-z0-9]{8,40}$' },
};

export const v1Errors = {
  '400': { description: 'Bad input', ...json(ref('V1Error')) },
  '404': { description: 'No such model or route', ...json(ref('V1Error')) },
};
export const v2Errors = {
  '400': { description: 'Bad input', ...json(ref('V2Error')) },
  '404': { description: 'No such model or version', ...json(ref('V2Error')) },
  '503': { description: 'Not ready, unloaded or overloaded (Retry-After)', ...json(ref('V2Error')) },
};

export const tensorMeta = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    datatype: { type: 'string' },
    shape: { type: 'array', items: { type: 'integer' }, description: '-1 for symbolic dims' },
  },
};

/** Tags, in the order the interactive page shows them. */
export const TAGS = {
  v1: 'FRACTAL v1',
  versions: 'Versions',
  drift: 'Drift',
  jobs: 'Batch jobs',
  v2: 'Open Inference Protocol v2',
  repository: 'Model repository (v2)',
  health: 'Health',
  docs: 'Docs',
} as const;
