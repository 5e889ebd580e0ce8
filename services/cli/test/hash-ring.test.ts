import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createBalancer } from '../src/balancer.ts';
import { HashRing } from '../src/hash-ring.ts';

const workers = ['w1', 'w2', 'w3', 'w4'];
const keys = Array.from({ length: 2000 }, (_, i) => `model-${i}#0`);

describe('HashRing', () => {
  test('keys spread over every worker, none owning more than twice its share', () => {
    const ring = new HashRing(workers, (w) => w);
    const count = new Map<string, number>();
    for (const k of keys) {
      const w = ring.pick(k, () => true)!;
      count.set(w, (count.get(w) ?? 0) + 1);
    }
    assert.equal(count.size, 4);
    for (const [w, n] of count) assert.ok(n > keys.length / 8 && n < keys.length / 2, `${w}: ${n}`);
  });

  test('a worker that is out costs only its own keys: they go to the others, everything else stays', () => {
    const ring = new HashRing(workers, (w) => w);
    const before = new Map(keys.map((k) => [k, ring.pick(k, () => true)!]));
    const after = new Map(keys.map((k) => [k, ring.pick(k, (w) => w !== 'w2')!]));
    let moved = 0;
    for (const k of keys) {
      if (before.get(k) === 'w2') {
        assert.notEqual(after.get(k), 'w2');
        moved++;
      } else assert.equal(after.get(k), before.get(k), k);
    }
    assert.ok(moved > 0);
    // The same answer from a ring without the worker at all (as after a restart with one fewer).
    const smaller = new HashRing(['w1', 'w3', 'w4'], (w) => w);
    for (const k of keys)
      assert.equal(
        smaller.pick(k, () => true),
        after.get(k),
        k,
      );
    assert.equal(
      ring.pick('x', () => false),
      undefined,
    );
  });
});

describe('the built-in balancer with BALANCE=placement', () => {
  const upstreams: http.Server[] = [];
  let balancer: http.Server;
  let url: string;
  before(async () => {
    for (let i = 0; i < 3; i++) {
      const s = http.createServer((req, res) => {
        req.resume();
        req.on('end', () => res.writeHead(200, { 'x-modelhost-id': `w${i}` }).end());
      });
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      upstreams.push(s);
    }
    balancer = createBalancer({
      upstreams: upstreams.map((s) => `127.0.0.1:${(s.address() as AddressInfo).port}`),
      maxBodyBytes: 1024,
      timeoutMs: 5000,
      balance: 'placement',
    });
    await new Promise<void>((r) => balancer.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(balancer.address() as AddressInfo).port}`;
  });
  after(() => {
    balancer.close();
    balancer.closeAllConnections();
    for (const s of upstreams) s.close();
  });

  const who = async (key?: string): Promise<string> => {
    const res = await fetch(`${url}/v2/models/m/infer`, { method: 'POST', body: '{}', headers: key ? { 'x-inferrer-placement': key } : {} });
    return String(res.headers.get('x-modelhost-id'));
  };

  test('one key always reaches one worker; keys of many models reach all; no key goes by least connections', async () => {
    for (const key of ['a#0', 'b#0', 'c#1']) {
      const seen = new Set<string>();
      for (let i = 0; i < 10; i++) seen.add(await who(key));
      assert.equal(seen.size, 1, `${key}: ${[...seen]}`);
    }
    const all = new Set<string>();
    for (let i = 0; i < 60; i++) all.add(await who(`model-${i}#0`));
    assert.equal(all.size, 3);
    const unkeyed = new Set<string>();
    for (let i = 0; i < 9; i++) unkeyed.add(await who());
    assert.equal(unkeyed.size, 3, 'sequential requests without a key take turns');
  });

  test('a worker that is gone: its keys go to the next worker on the ring, the others stay', async () => {
    const owners = new Map<string, string>();
    for (let i = 0; i < 30; i++) owners.set(`k-${i}#0`, await who(`k-${i}#0`));
    const gone = upstreams[1]!;
    gone.closeAllConnections();
    await new Promise<void>((r) => gone.close(() => r()));
    for (const [key, owner] of owners) {
      const now = await who(key);
      if (owner === 'w1') assert.notEqual(now, 'w1', key);
      else assert.equal(now, owner, key);
    }
  });
});
