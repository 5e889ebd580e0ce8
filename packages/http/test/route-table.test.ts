import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RouteTable } from '../src/route-table.ts';
import { parseTarget } from '../src/target.ts';

const routes = [
  { method: 'GET', path: '/', id: 'root' },
  { method: 'GET', path: '/api/v1/models', id: 'list' },
  { method: 'GET', path: '/api/v1/models/information', id: 'info' },
  { method: 'GET', path: '/api/v1/models/:name', id: 'describe' },
  { method: 'PUT', path: '/api/v1/models/:name', id: 'upload' },
  { method: 'POST', path: '/api/v1/models/:name/prediction', id: 'predict' },
  { method: 'GET', path: '/api/v1/models/:name/versions/:version/profile', id: 'profile' },
];
const table = new RouteTable(routes);
const id = (method: string, url: string): string | undefined => {
  const m = table.match(method, parseTarget(url).segments);
  return m?.route?.id;
};

describe('RouteTable', () => {
  test('matches exact paths, literals before parameters, with decoded parameters', () => {
    assert.equal(id('GET', '/'), 'root');
    assert.equal(id('GET', '/api/v1/models'), 'list');
    assert.equal(id('GET', '/api/v1/models/information'), 'info');
    assert.equal(id('GET', '/api/v1/models/iris'), 'describe');
    const m = table.match('GET', parseTarget('/api/v1/models/ir%69s/versions/2/profile').segments);
    assert.deepEqual(m?.route ? m.params : undefined, { name: 'iris', version: '2' });
    assert.equal(id('HEAD', '/api/v1/models/iris'), 'describe', 'HEAD is served by GET');
  });

  test('case, trailing and double slashes, ; and encoded slashes match nothing', () => {
    for (const u of [
      '/API/v1/models',
      '/api/V1/models',
      '/api/v1/models/',
      '//api/v1/models',
      '/api//v1/models',
      '/api/v1/models;x',
      '/api%2Fv1/models',
      '/api/v1/models/iris/Prediction',
      '/api/v1/models/iris/prediction/',
      '/api/v1/models/iris/%2e%2e/prediction',
    ]) {
      assert.equal(id('GET', u) ?? id('POST', u) ?? id('PUT', u), undefined, u);
    }
  });

  test('a path with another method is a miss that names the methods it has', () => {
    const m = table.match('DELETE', parseTarget('/api/v1/models/iris').segments);
    assert.ok(m && m.route === undefined);
    assert.deepEqual(m.methods.sort(), ['GET', 'PUT']);
    assert.equal(table.match('DELETE', parseTarget('/nothing').segments), undefined);
  });

  test('refuses a table that declares a route twice or names one parameter two ways', () => {
    assert.throws(
      () =>
        new RouteTable([
          { method: 'GET', path: '/a' },
          { method: 'GET', path: '/a' },
        ]),
      /declared twice/,
    );
    assert.throws(
      () =>
        new RouteTable([
          { method: 'GET', path: '/a/:x' },
          { method: 'PUT', path: '/a/:y' },
        ]),
      /another route/,
    );
    assert.throws(() => new RouteTable([{ method: 'GET', path: '/a/' }]), /empty segments/);
  });
});

test('literalsBeside: the literal segments where a parameter goes, at any depth', () => {
  const t = new RouteTable([
    { method: 'GET', path: '/api/v1/models/information' },
    { method: 'GET', path: '/api/v1/models/:name' },
    { method: 'GET', path: '/v2/models/stats' },
    { method: 'GET', path: '/v2/models/:model/ready' },
    { method: 'GET', path: '/v2/repository/models/:model' },
  ]);
  assert.deepEqual(t.literalsBeside('name'), ['information']);
  assert.deepEqual(t.literalsBeside('model'), ['stats']);
  assert.deepEqual(t.literalsBeside('id'), []);
});
