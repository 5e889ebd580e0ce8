/**
 * FRACTAL v1 clients work verbatim (issue #20). Each call the FRACTAL ML Server's README documents is run
 * with curl exactly as it is written there (only the host changed, and the model files: the README's
 * `dog_model.onnx` is our digits CNN, uploaded under that name), and the answers are checked for FRACTAL's
 * field names and types: `http_status {code, description, name}`, `model_list` (strings; objects with `model`
 * and `description` for /information), `values` (one row per input or per image).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { DEMO, REPO, type TestCluster, startTestCluster } from '../helpers/cluster.ts';

const run = promisify(execFile);
let c: TestCluster;
let work: string;

before(async () => {
  c = await startTestCluster();
  work = await mkdtemp(path.join(os.tmpdir(), 'inferrer-fractal-'));
  await copyFile(path.join(REPO, 'test', 'fixtures', 'images', 'digit_7.png'), path.join(work, 'dog_resized.jpeg'));
  await copyFile(path.join(DEMO, 'digits.onnx'), path.join(work, 'dog_model.onnx'));
  await copyFile(path.join(DEMO, 'iris.onnx'), path.join(work, 'model.onnx'));
});
after(async () => {
  await c?.close();
  await rm(work, { recursive: true, force: true });
});

/** Runs a README command line in bash, with FRACTAL's http://localhost:8002 pointing at the test cluster; parses the JSON it prints. */
async function curl(command: string): Promise<any> {
  const line = command.replaceAll('http://localhost:8002', c.url);
  const { stdout } = await run('bash', ['-c', line], { cwd: work });
  return JSON.parse(stdout);
}

function httpStatus(body: any, code: number): void {
  assert.equal(typeof body.http_status, 'object', JSON.stringify(body));
  assert.equal(body.http_status.code, code);
  assert.equal(typeof body.http_status.description, 'string');
  assert.equal(typeof body.http_status.name, 'string');
}

describe("FRACTAL ML Server's documented calls, pasted", () => {
  test('welcome and help', async () => {
    httpStatus(await curl('curl http://localhost:8002/'), 200);
    const help = await curl('curl http://localhost:8002/help');
    httpStatus(help, 200);
  });

  test('sendtomodelhost, as a GET (FRACTAL) and a POST (MLBuffet) with {"data": [...]}', async () => {
    for (const method of ['GET', 'POST']) {
      const r = await curl(
        `curl -X ${method} -H "Content-Type: application/json" --data '{"data": ["ONE", "TWO", "THREE", "FOUR"]}'  http://localhost:8002/api/test/sendtomodelhost`,
      );
      httpStatus(r, 200);
      assert.deepEqual(
        r.results.map((x: { data: string }) => x.data),
        ['ONE', 'TWO', 'THREE', 'FOUR'],
      );
      for (const x of r.results) assert.match(x.modelhost, /^modelhost-\d$/);
    }
  });

  test('model list (strings) and information (objects with model and description)', async () => {
    const list = await curl('curl -X GET http://localhost:8002/api/v1/models');
    httpStatus(list, 200);
    assert.ok(Array.isArray(list.model_list));
    for (const m of list.model_list) assert.equal(typeof m, 'string');
    assert.ok(list.model_list.includes('iris'));
    const info = await curl('curl -X GET http://localhost:8002/api/v1/models/information');
    httpStatus(info, 200);
    assert.ok(Array.isArray(info.model_list));
    for (const m of info.model_list) {
      assert.equal(typeof m.model, 'string');
      assert.equal(typeof m.description, 'string');
    }
    assert.deepEqual(info.model_list.map((m: { model: string }) => m.model).sort(), [...list.model_list].sort());
  });

  test('model information, and updating the description, by the .onnx name', async () => {
    const one = await curl('curl -X GET http://localhost:8002/api/v1/models/iris.onnx');
    httpStatus(one, 200);
    assert.equal(one.model.name, 'iris');
    const updated = await curl(
      `curl -X POST -H "Content-Type: application/json" --data '{"model_description":"This model classifies a 4 element array input between different species of Iris flowers."}' http://localhost:8002/api/v1/models/iris.onnx`,
    );
    httpStatus(updated, 200);
    const info = await curl('curl -X GET http://localhost:8002/api/v1/models/information');
    assert.equal(
      info.model_list.find((m: { model: string }) => m.model === 'iris').description,
      'This model classifies a 4 element array input between different species of Iris flowers.',
    );
  });

  test('a tabular prediction: GET with a JSON body, as documented, and POST', async () => {
    const got = await curl(
      `curl -X GET -H "Content-Type: application/json" --data '{"values":[2, 5, 1, 4]}' http://localhost:8002/api/v1/models/iris.onnx/prediction`,
    );
    httpStatus(got, 200);
    assert.deepEqual(got.values, [1]);
    const posted = await curl(
      `curl -X POST -H "Content-Type: application/json" --data '{"values":[2, 5, 1, 4]}' http://localhost:8002/api/v1/models/iris.onnx/prediction`,
    );
    assert.deepEqual(posted.values, [1]);
  });

  test('upload a model with PUT -F path=@…, predict on an image with GET and POST -F file=@…, delete it', async () => {
    const up = await curl('curl -X PUT -F "path=@dog_model.onnx" http://localhost:8002/api/v1/models/dog_model.onnx');
    httpStatus(up, 201);
    for (const method of ['GET', 'POST']) {
      const r = await curl(`curl -X ${method} -F "file=@dog_resized.jpeg" http://localhost:8002/api/v1/models/dog_model.onnx/prediction`);
      httpStatus(r, 200);
      assert.deepEqual(r.values, [7], `${method}: the first output (the label), one row per image`);
      assert.equal(r.predictions[0].classes[0].label, '7', 'labels beside the values');
      const scores = await curl(
        `curl -X ${method} -F "file=@dog_resized.jpeg" "http://localhost:8002/api/v1/models/dog_model.onnx/prediction?output=probabilities"`,
      );
      assert.equal(scores.values.length, 1);
      assert.equal(scores.values[0].length, 10, 'the raw score row of the image (10 classes)');
      for (const v of scores.values[0]) assert.equal(typeof v, 'number');
      const all = await curl(`curl -X ${method} -F "file=@dog_resized.jpeg" "http://localhost:8002/api/v1/models/dog_model.onnx/prediction?outputs=all"`);
      assert.deepEqual(Object.keys(all.outputs), ['label', 'probabilities']);
    }
    const gone = await curl('curl -X DELETE http://localhost:8002/api/v1/models/dog_model.onnx');
    httpStatus(gone, 200);
    const list = await curl('curl -X GET http://localhost:8002/api/v1/models');
    assert.ok(!list.model_list.includes('dog_model'));
  });

  test('upload under another name and delete it by the name given (FRACTAL: <model_name>)', async () => {
    httpStatus(await curl('curl -X PUT -F "path=@model.onnx" http://localhost:8002/api/v1/models/flowers'), 201);
    httpStatus(
      await curl(`curl -X GET -H "Content-Type: application/json" --data '{"values":[2, 5, 1, 4]}' http://localhost:8002/api/v1/models/flowers/prediction`),
      200,
    );
    httpStatus(await curl('curl -X DELETE http://localhost:8002/api/v1/models/flowers'), 200);
  });
});
