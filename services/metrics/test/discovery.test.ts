/** Modelhost discovery: the fixed list plus every address of each DNS name, asked again each time. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createDiscovery } from '../src/discovery.ts';

test('the configured list and every A/AAAA record of each name, sorted, without duplicates', async () => {
  let tasks = [
    { address: '10.0.0.5', family: 4 },
    { address: '10.0.0.4', family: 4 },
  ];
  const discover = createDiscovery(
    {
      modelhosts: ['http://127.0.0.1:9001'],
      modelhostDns: [
        { name: 'tasks.modelhost', port: 9001 },
        { name: 'tasks.modelhost-gpu', port: 9001 },
      ],
    },
    async (name) => {
      if (name === 'tasks.modelhost-gpu') throw Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' });
      return tasks;
    },
  );
  assert.deepEqual(await discover(), {
    urls: ['http://10.0.0.4:9001', 'http://10.0.0.5:9001', 'http://127.0.0.1:9001'],
    errors: ['tasks.modelhost-gpu: ENOTFOUND'],
  });
  // Scaled: the next call sees the new task set.
  tasks = [{ address: 'fd00::7', family: 6 }];
  assert.deepEqual((await discover()).urls, ['http://127.0.0.1:9001', 'http://[fd00::7]:9001']);
});

test('the real resolver: localhost resolves, a name that does not exist is reported', async () => {
  const { urls, errors } = await createDiscovery({
    modelhosts: [],
    modelhostDns: [
      { name: 'localhost', port: 9001 },
      { name: 'no-such-host.invalid', port: 1 },
    ],
  })();
  assert.ok(
    urls.some((u) => u === 'http://127.0.0.1:9001' || u === 'http://[::1]:9001'),
    urls.join(),
  );
  assert.equal(errors.length, 1);
  assert.match(errors[0]!, /^no-such-host\.invalid: /);
});
