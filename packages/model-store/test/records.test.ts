import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ModelConfigSchema, ModelPatchSchema, UploadMetadataSchema, parseWith } from '@inferrer/model-store';

describe('parseWith', () => {
  test('returns the parsed value', () => {
    const meta = parseWith(UploadMetadataSchema, { description: 'iris', config: { instances: 2, batching: { max_batch_size: 8 } } }, 'the upload metadata');
    assert.deepEqual(meta, { description: 'iris', config: { instances: 2, batching: { max_batch_size: 8 } } });
  });

  test('lists every problem with its path in one INVALID_REQUEST', () => {
    assert.throws(
      () => parseWith(UploadMetadataSchema, { config: { instances: 0, batching: { max_batch_size: 1.5 } }, make_default: 'yes' }, 'the upload metadata'),
      (err: unknown) => {
        const e = err as { code: string; message: string; details: { problems: string[] } };
        assert.equal(e.code, 'INVALID_REQUEST');
        assert.match(e.message, /^the upload metadata is invalid: /);
        const paths = e.details.problems.map((p) => p.split(':')[0]).sort();
        assert.deepEqual(paths, ['config.batching.max_batch_size', 'config.instances', 'make_default']);
        return true;
      },
    );
  });

  test('unknown keys are refused (strict objects)', () => {
    assert.throws(() => parseWith(ModelPatchSchema, { default_version: 2, colour: 'red' }, 'the model update'), {
      code: 'INVALID_REQUEST',
      message: /^the model update is invalid: \(top\): /,
    });
    assert.throws(() => parseWith(ModelConfigSchema, { batching: { max_batch_size: 4, timeout: 1 } }, 'the config'), { code: 'INVALID_REQUEST' });
  });

  test('execution providers are cpu or cuda, at least one', () => {
    assert.deepEqual(parseWith(ModelConfigSchema, { execution_providers: ['cuda', 'cpu'] }, 'c'), { execution_providers: ['cuda', 'cpu'] });
    assert.throws(() => parseWith(ModelConfigSchema, { execution_providers: [] }, 'c'), { code: 'INVALID_REQUEST' });
    assert.throws(() => parseWith(ModelConfigSchema, { execution_providers: ['tensorrt'] }, 'c'), { code: 'INVALID_REQUEST' });
  });

  test('default_version must be a positive integer', () => {
    assert.deepEqual(parseWith(ModelPatchSchema, { default_version: 3 }, 'u'), { default_version: 3 });
    assert.throws(() => parseWith(ModelPatchSchema, { default_version: 0 }, 'u'), { code: 'INVALID_REQUEST' });
    assert.throws(() => parseWith(ModelPatchSchema, { default_version: '3' }, 'u'), { code: 'INVALID_REQUEST' });
  });
});
