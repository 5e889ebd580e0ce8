import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { listenWithAcceptors } from '../src/acceptors.ts';

const hello = (): http.Server => http.createServer((_req, res) => res.end('hello'));

/**
 * Opens `n` connections to `port` from another process (the kernel completes them while this process is
 * busy) and keeps this event loop blocked until they are all open; then returns the most connections
 * accepted in one turn of the loop (turns counted by a chain of setImmediate callbacks).
 */
async function mostAcceptedInOneTurn(server: http.Server, port: number, n: number): Promise<number> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'acceptors-'));
  const marker = path.join(dir, 'open');
  let turn = 0;
  let spinning = true;
  const spin = (): void => {
    turn++;
    if (spinning) setImmediate(spin);
  };
  setImmediate(spin);
  const perTurn = new Map<number, number>();
  let accepted = 0;
  const count = (): void => {
    accepted++;
    perTurn.set(turn, (perTurn.get(turn) ?? 0) + 1);
  };
  server.on('connection', count);
  const child = spawn(
    process.execPath,
    [
      '-e',
      `const net = require('node:net'); let open = 0; const all = [];
       for (let i = 0; i < ${n}; i++) all.push(net.connect(${port}, '127.0.0.1', () => { if (++open === ${n}) require('node:fs').writeFileSync(${JSON.stringify(marker)}, ''); }));
       setTimeout(() => process.exit(0), 20000);`,
    ],
    { stdio: 'ignore' },
  );
  try {
    const until = Date.now() + 15_000;
    while (!existsSync(marker) && Date.now() < until);
    assert.ok(existsSync(marker), `the other process did not open ${n} connections`);
    for (let i = 0; i < 200 && accepted < n; i++) await new Promise((r) => setTimeout(r, 25));
    assert.equal(accepted, n);
    return Math.max(...perTurn.values());
  } finally {
    spinning = false;
    server.off('connection', count);
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a plain listen (1 acceptor) takes one waiting connection per turn of the event loop; 16 acceptors take 16', async () => {
  for (const acceptors of [1, 16]) {
    const server = hello();
    const listening = await listenWithAcceptors(server, { port: 0, host: '127.0.0.1', acceptors });
    try {
      const n = await mostAcceptedInOneTurn(server, listening.port, 40);
      if (acceptors === 1) assert.equal(n, 1, "libuv's accept policy changed: this module may no longer be needed");
      else assert.equal(n, 16);
    } finally {
      server.closeAllConnections();
      await listening.close();
    }
  }
});

test('connections that arrive while the socket is being handed over are all served, none dropped', async () => {
  // A free port, then a client in another process that connects to it over and over (refused until it
  // opens) while the server starts listening on it: the helper's own copy of the socket is open for a
  // while and may take some of those connections.
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise((r) => probe.close(r));
  const client = spawn(
    process.execPath,
    [
      '-e',
      `const net = require('node:net');
       let ok = 0, dropped = 0, firstOk = 0;
       const one = () => {
         const s = net.connect(${port}, '127.0.0.1');
         let got = '', open = false;
         s.on('connect', () => { open = true; s.write('GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n'); });
         s.on('data', (d) => (got += d));
         s.on('error', () => {});
         s.on('close', () => {
           if (got.includes('hello')) { ok++; firstOk ||= Date.now(); } else if (open) dropped++;
           if (firstOk && Date.now() - firstOk > 1500) { process.stdout.write(JSON.stringify({ ok, dropped })); process.exit(0); }
           setImmediate(one);
         });
       };
       for (let i = 0; i < 8; i++) one();
       setTimeout(() => { process.stdout.write(JSON.stringify({ ok, dropped })); process.exit(0); }, 20000);`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  client.stdout.on('data', (d: Buffer) => (out += d));
  await new Promise((r) => setTimeout(r, 100));
  const server = hello();
  const listening = await listenWithAcceptors(server, { port, host: '127.0.0.1', acceptors: 64 });
  try {
    await new Promise((r) => client.once('exit', r));
    const { ok, dropped } = JSON.parse(out) as { ok: number; dropped: number };
    assert.ok(ok > 50, out);
    assert.equal(dropped, 0, `connections closed without an answer: ${out}`);
  } finally {
    await listening.close();
  }
});

test('every descriptor serves requests; address() and the port chosen for port 0 agree', async () => {
  const server = hello();
  const listening = await listenWithAcceptors(server, { port: 0, host: '127.0.0.1', acceptors: 8 });
  try {
    const addr = server.address();
    assert.ok(addr && typeof addr === 'object');
    assert.equal(addr.port, listening.port);
    // Fresh connections, many at once: they land on all the descriptors.
    const agent = new http.Agent({ keepAlive: false, maxSockets: 64 });
    const bodies = await Promise.all(Array.from({ length: 64 }, () => fetchText(`http://127.0.0.1:${listening.port}/`, agent)));
    assert.deepEqual(new Set(bodies), new Set(['hello']));
  } finally {
    await listening.close();
  }
});

test('close() stops accepting on every descriptor and waits for open connections', async () => {
  const server = hello();
  const listening = await listenWithAcceptors(server, { port: 0, host: '127.0.0.1', acceptors: 8 });
  const open = await new Promise<net.Socket>((resolve) => {
    const s = net.connect(listening.port, '127.0.0.1', () => resolve(s));
  });
  await new Promise((r) => setTimeout(r, 50));
  let done = false;
  const closing = listening.close().then(() => {
    done = true;
  });
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(done, false, 'an open connection holds close()');
  const refused = await new Promise<string>((resolve) => {
    const s = net.connect(listening.port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(String(e.code)));
  });
  assert.equal(refused, 'ECONNREFUSED');
  open.destroy();
  await closing;
  assert.equal(done, true);
});

test('a port that is taken is an EADDRINUSE error on the server, as a plain listen gives', async () => {
  const taken = hello();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
  const port = (taken.address() as net.AddressInfo).port;
  try {
    for (const acceptors of [1, 8]) {
      const server = hello();
      const emitted: NodeJS.ErrnoException[] = [];
      server.on('error', (e) => emitted.push(e));
      await assert.rejects(listenWithAcceptors(server, { port, host: '127.0.0.1', acceptors }), { code: 'EADDRINUSE' });
      assert.equal(emitted.length, 1);
      assert.equal(emitted[0]!.code, 'EADDRINUSE');
      assert.equal((emitted[0] as { port?: number }).port, port);
      assert.equal(server.listening, false);
    }
  } finally {
    await new Promise((r) => taken.close(r));
  }
});

function fetchText(url: string, agent: http.Agent): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve(text));
      })
      .on('error', reject);
  });
}

test('a helper that does not hand the socket over in time fails the listen with a clear error, leaving nothing bound', async () => {
  const server = hello();
  const emitted: Error[] = [];
  server.on('error', (e) => emitted.push(e));
  // No process starts Node and binds within a millisecond.
  await assert.rejects(listenWithAcceptors(server, { port: 0, host: '127.0.0.1', acceptors: 8, handoverTimeoutMs: 1 }), {
    message: 'the process that binds 127.0.0.1:0 did not hand over the socket within 1 ms',
  });
  assert.equal(emitted.length, 1);
  assert.equal(server.listening, false);
  // The same server listens once given the time.
  const listening = await listenWithAcceptors(server, { port: 0, host: '127.0.0.1', acceptors: 8 });
  try {
    const agent = new http.Agent({ keepAlive: false });
    assert.equal(await fetchText(`http://127.0.0.1:${listening.port}/`, agent), 'hello');
  } finally {
    await listening.close();
  }
});
