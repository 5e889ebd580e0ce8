/**
 * What one gRPC client can hold of the Inferrer, against the real cluster with raw node:http2 clients
 * (hand-framed gRPC messages, so a test can do what a hostile or broken client does): connections per
 * address, counted with the HTTP port's (MAX_CONNECTIONS_PER_CLIENT); calls per connection
 * (GRPC_MAX_STREAMS_PER_CONNECTION, also against a client that ignores the limit: test/helpers/raw-h2.ts);
 * connections left idle (GRPC_MAX_CONNECTION_IDLE_MS); connections held too long
 * (GRPC_MAX_CONNECTION_AGE_MS, GRPC_MAX_CONNECTION_AGE_GRACE_MS); and answers the client never reads (a zero
 * HTTP/2 receive window), cut after BODY_TIMEOUT_MS.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { REPO, type TestCluster, api, startTestCluster, uploadModel } from '../helpers/cluster.ts';
import { type GrpcClient, grpcClient } from '../helpers/grpc-client.ts';
import { until } from '../helpers/metrics.ts';
import { RawH2 } from '../helpers/raw-h2.ts';

const MAX_CONNECTIONS = 6;
const MAX_STREAMS = 8;
const IDLE_MS = 1500;
const AGE_MS = 1500;
const AGE_GRACE_MS = 1000;
/** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS's identifier. */
const MAX_CONCURRENT_STREAMS = 0x3;
/** Long enough that no connection of the other tests is closed for idling while they run. */
const LONG_IDLE_MS = 600_000;
const BODY_TIMEOUT_MS = 2000;
/** Rows of three floats: an identity model's answer of 1.4 MB. */
const ROWS = 116_667;

let c: TestCluster;
let client: GrpcClient;
let identInput: string;

before(async () => {
  c = await startTestCluster({
    grpcPort: 0,
    modelhosts: 1,
    inferrerEnv: {
      MAX_CONNECTIONS_PER_CLIENT: String(MAX_CONNECTIONS),
      GRPC_MAX_STREAMS_PER_CONNECTION: String(MAX_STREAMS),
      GRPC_MAX_CONNECTION_IDLE_MS: String(LONG_IDLE_MS),
      BODY_TIMEOUT_MS: String(BODY_TIMEOUT_MS),
      MAX_BODY_BYTES: String(4 * 1024 * 1024),
      DRAIN_TIMEOUT_MS: '60000',
    },
  });
  client = grpcClient(c.grpcAddress!, { 'grpc.max_receive_message_length': -1 });
  const r = await uploadModel(c.url, 'ident', path.join(REPO, 'test', 'fixtures', 'corpus', 'id_float32.onnx'));
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const meta = await api(c.url, '/v2/models/ident');
  identInput = (meta.body as { inputs: { name: string }[] }).inputs[0]!.name;
});
after(async () => {
  client?.close();
  await c?.close();
});

/** A request message framed for the wire (uncompressed, length-prefixed). */
function framed(method: string, req: unknown): Buffer {
  const message = (client as any).constructor.service[method].requestSerialize(req) as Buffer;
  const out = Buffer.concat([Buffer.alloc(5), message]);
  out.writeUInt32BE(message.length, 1);
  return out;
}

const identReq = (): unknown => ({
  model_name: 'ident',
  inputs: [{ name: identInput, datatype: 'FP32', shape: [String(ROWS), '3'] }],
  raw_input_contents: [Buffer.alloc(ROWS * 12, 1)],
});

/** A raw HTTP/2 connection to the gRPC port, from `from` (a loopback address). */
function connect(from = '127.0.0.1', settings: http2.Settings = {}, address = c.grpcAddress!): http2.ClientHttp2Session {
  const [host, port] = address.split(':') as [string, string];
  const session = http2.connect(`http://${address}`, {
    settings,
    createConnection: () => net.connect({ host, port: Number(port), localAddress: from }),
  });
  session.on('error', () => undefined);
  return session;
}

interface Status {
  status: number;
  code: string | undefined;
  message: string;
}

/** One call on a raw session; its gRPC status, from the headers (trailers-only) or the trailers. */
function rawCall(session: http2.ClientHttp2Session, method: string, body: Buffer): Promise<Status> {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ':method': 'POST',
      ':path': `/inference.GRPCInferenceService/${method}`,
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    const answer = (h: http2.IncomingHttpHeaders): void => {
      if (h['grpc-status'] === undefined) return;
      const code = h['inferrer-error-code'];
      resolve({
        status: Number(h['grpc-status']),
        code: code === undefined ? undefined : String(code),
        message: decodeURIComponent(String(h['grpc-message'] ?? '')),
      });
    };
    stream.on('response', answer);
    stream.on('trailers', answer);
    stream.on('error', reject);
    stream.on('close', () => reject(new Error(`the stream closed without a status (RST_STREAM ${stream.rstCode})`)));
    stream.resume();
    stream.end(body);
  });
}

const live = (session: http2.ClientHttp2Session): Promise<Status> => rawCall(session, 'ServerLive', framed('ServerLive', {}));

const LIVE_PATH = '/inference.GRPCInferenceService/ServerLive';

/** ServerLive's answer as it comes on the wire: a length-prefixed `{live: true}`. */
function liveAnswer(): Buffer {
  const message = (client as any).constructor.service.ServerLive.responseSerialize({ live: true }) as Buffer;
  const out = Buffer.concat([Buffer.alloc(5), message]);
  out.writeUInt32BE(message.length, 1);
  return out;
}

/** A frame-by-frame HTTP/2 connection to `address` whose SETTINGS exchange is done (theirs acked). */
async function rawConnect(address: string): Promise<{ h2: RawH2; settings: Map<number, number> }> {
  const [host, port] = address.split(':') as [string, string];
  const h2 = new RawH2(host, Number(port));
  return { h2, settings: await h2.settings };
}

/** `p`, or a rejection naming `what` after `ms`. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** An HTTP connection to the HTTP port from `from` that never finishes its headers. */
function heldHttp(from: string): Promise<{ socket: net.Socket; answer: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port: Number(new URL(c.url).port), host: '127.0.0.1', localAddress: from }, () => {
      socket.write('GET /health/live HTTP/1.1\r\nHost: x\r\n');
      let text = '';
      socket.on('data', (d) => {
        text += d.toString('latin1');
      });
      resolve({ socket, answer: new Promise((done) => socket.once('close', () => done(text))) });
    });
    socket.once('error', reject);
  });
}

const closed = (session: http2.ClientHttp2Session): Promise<void> =>
  new Promise((resolve) => (session.closed || session.destroyed ? resolve() : session.once('close', () => resolve())));

describe('connections per client address', () => {
  test('an address holding MAX_CONNECTIONS_PER_CLIENT connections, HTTP and gRPC together, is refused the next: RESOURCE_EXHAUSTED TOO_MANY_CONNECTIONS on gRPC, 429 on HTTP; other addresses are served', async () => {
    const from = '127.0.0.2';
    const https = [];
    for (let i = 0; i < MAX_CONNECTIONS / 2; i++) https.push(await heldHttp(from));
    const sessions: http2.ClientHttp2Session[] = [];
    for (let i = 0; i < MAX_CONNECTIONS / 2; i++) {
      const s = connect(from);
      sessions.push(s);
      assert.equal((await live(s)).status, grpc.status.OK, `gRPC connection ${i + 1} of the address is served`);
    }
    // The next gRPC connection: its call is answered RESOURCE_EXHAUSTED naming the cap, and it is closed.
    const over = connect(from);
    const refused = await live(over);
    assert.equal(refused.status, grpc.status.RESOURCE_EXHAUSTED, JSON.stringify(refused));
    assert.equal(refused.code, 'TOO_MANY_CONNECTIONS');
    assert.match(refused.message, new RegExp(`already has ${MAX_CONNECTIONS} connections open \\(MAX_CONNECTIONS_PER_CLIENT\\)`));
    await closed(over);
    // The next HTTP connection is refused too: the two ports share the count.
    const overHttp = await heldHttp(from);
    assert.match(await overHttp.answer, /^HTTP\/1\.1 429 [\s\S]*TOO_MANY_CONNECTIONS/);
    // The held connections are still served; another address is served.
    assert.equal((await live(sessions[0]!)).status, grpc.status.OK);
    const other = await new Promise<grpc.ServiceError | null>((r) => client.ServerLive!({}, new grpc.Metadata(), {}, (err) => r(err)));
    assert.equal(other, null);
    const logged = c
      .jsonLogs('inferrer')
      .some((l) => l.msg === 'gRPC connection refused' && (l.err as { code?: string } | undefined)?.code === 'TOO_MANY_CONNECTIONS');
    assert.ok(logged, 'the refusal is logged');
    // Closing some frees the address's places (once the Inferrer has seen them close).
    for (const h of https) h.socket.destroy();
    for (const s of sessions) s.destroy();
    let again: Status | undefined;
    for (let i = 0; i < 100 && again?.status !== grpc.status.OK; i++) {
      const s = connect(from);
      again = await live(s).catch((e: Error) => ({ status: -1, code: undefined, message: e.message }));
      s.destroy();
      if (again.status !== grpc.status.OK) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(again?.status, grpc.status.OK, `a new connection is served: ${JSON.stringify(again)}`);
  });
});

describe('each connection', () => {
  test('advertises GRPC_MAX_STREAMS_PER_CONNECTION as its SETTINGS_MAX_CONCURRENT_STREAMS', async () => {
    const s = connect();
    try {
      const settings = await new Promise<http2.Settings>((r) => s.once('remoteSettings', r));
      assert.equal(settings.maxConcurrentStreams, MAX_STREAMS);
      assert.equal((await live(s)).status, grpc.status.OK);
    } finally {
      s.destroy();
    }
  });
});

describe('a client that opens more streams than GRPC_MAX_STREAMS_PER_CONNECTION', () => {
  /** Opens MAX_STREAMS calls held open (their message not sent yet), then `excess` whole ones on top. */
  function overfill(h2: RawH2, excess: number): { held: number[]; over: number[] } {
    const held = Array.from({ length: MAX_STREAMS }, () => h2.open(LIVE_PATH, undefined, false));
    const over = Array.from({ length: excess }, () => h2.open(LIVE_PATH, framed('ServerLive', {}), true));
    return { held, over };
  }
  const answered = (h2: RawH2, id: number): boolean => h2.streams.get(id)!.headers + h2.streams.get(id)!.data.length > 0;
  const liveFromOther = (): Promise<grpc.ServiceError | null> => new Promise((r) => client.ServerLive!({}, new grpc.Metadata(), {}, (err) => r(err)));

  test('before it has the SETTINGS (the limit starts unbounded, RFC 9113 §5.1.2): each stream past the limit is refused (RST_STREAM REFUSED_STREAM) unanswered, those within it are served, and the connection goes on', async () => {
    const [host, port] = c.grpcAddress!.split(':') as [string, string];
    const h2 = new RawH2(host, Number(port));
    try {
      // Written with the connection preface, before the server's SETTINGS are read (and so acked).
      const { held, over } = overfill(h2, 4);
      assert.equal((await h2.settings).get(MAX_CONCURRENT_STREAMS), MAX_STREAMS);
      await h2.until('the streams past the limit reset', () => over.every((id) => h2.streams.get(id)!.rst !== undefined));
      for (const id of over) {
        assert.equal(h2.streams.get(id)!.rst, http2.constants.NGHTTP2_REFUSED_STREAM, `stream ${id} past the limit is refused`);
        assert.ok(!answered(h2, id), `stream ${id} past the limit is not answered`);
      }
      for (const id of held) h2.send(id, framed('ServerLive', {}), true);
      await h2.until('the held calls answered', () => held.every((id) => h2.streams.get(id)!.ended));
      for (const id of held) {
        assert.equal(h2.streams.get(id)!.rst, undefined, `held stream ${id} is not reset`);
        assert.deepEqual(Buffer.concat(h2.streams.get(id)!.data), liveAnswer(), `held stream ${id} is answered {live: true}`);
      }
      // The connection goes on: the next call on it is served.
      assert.deepEqual(h2.goaways, []);
      const next = h2.open(LIVE_PATH, framed('ServerLive', {}), true);
      await h2.until('the next call answered', () => h2.streams.get(next)!.ended);
      assert.deepEqual(Buffer.concat(h2.streams.get(next)!.data), liveAnswer());
      assert.equal(await liveFromOther(), null);
    } finally {
      h2.destroy();
    }
  });

  test('after acking the SETTINGS (ignoring the limit): no stream past the limit is served; the HTTP/2 layer (nghttp2) closes the connection (GOAWAY), cutting its calls; other connections are served', async () => {
    const { h2, settings } = await rawConnect(c.grpcAddress!);
    try {
      assert.equal(settings.get(MAX_CONCURRENT_STREAMS), MAX_STREAMS);
      // Our SETTINGS ack went before these, so the server holds the connection to its limit.
      const { held, over } = overfill(h2, 4);
      await within(h2.closed, 10_000, 'close');
      for (const id of over) assert.ok(!answered(h2, id), `stream ${id} past the limit is not answered`);
      assert.ok(h2.goaways.length > 0, 'the connection is closed with GOAWAY');
      // Not a stream error, as RFC 9113 §5.1.2 asks: nghttp2 (node's HTTP/2) takes it as a connection error,
      // and the calls the client had open within the limit go with the connection.
      assert.ok(
        held.every((id) => !answered(h2, id)),
        'the held calls were cut with the connection',
      );
      assert.equal(await liveFromOther(), null, 'another connection is served');
      const again = connect();
      try {
        assert.equal((await live(again)).status, grpc.status.OK, 'a new connection from the same address is served');
      } finally {
        again.destroy();
      }
    } finally {
      h2.destroy();
    }
  });
});

describe('answers nobody reads', () => {
  test('a client that never opens its receive window has its answer cut after BODY_TIMEOUT_MS (RST_STREAM CANCEL); other clients are served', {
    timeout: 90_000,
  }, async () => {
    const s = connect('127.0.0.1', { initialWindowSize: 0 });
    try {
      const calls = Array.from({ length: 4 }, () => {
        const stream = s.request({
          ':method': 'POST',
          ':path': '/inference.GRPCInferenceService/ModelInfer',
          'content-type': 'application/grpc',
          te: 'trailers',
        });
        stream.on('error', () => undefined);
        const headers = new Promise<http2.IncomingHttpHeaders>((r) => stream.once('response', r));
        const reset = new Promise<number | undefined>((r) => stream.once('close', () => r(stream.rstCode)));
        stream.end(framed('ModelInfer', identReq()));
        return { headers, reset };
      });
      for (const call of calls) {
        const h = await call.headers;
        assert.equal(h['grpc-status'], undefined, `the call succeeded and its answer is waiting: ${JSON.stringify(h)}`);
      }
      // Meanwhile a client that reads takes the same 1.4 MB answer whole.
      const whole = await new Promise<{ err: grpc.ServiceError | null; res: any }>((r) =>
        client.ModelInfer!(identReq(), new grpc.Metadata(), {}, (err, res) => r({ err, res })),
      );
      assert.equal(whole.err, null);
      assert.equal(Buffer.from(whole.res.raw_output_contents[0]).length, ROWS * 12);
      for (const call of calls) assert.equal(await call.reset, http2.constants.NGHTTP2_CANCEL, 'the stream was reset');
      const cutLines = () => c.jsonLogs('inferrer').filter((l) => String(l.msg).startsWith('answer cut'));
      await until('each cut is logged', async () => cutLines().length >= calls.length);
      const cut = cutLines();
      assert.ok(!JSON.stringify(cut).includes(REPO), 'the lines name no file path');
    } finally {
      s.destroy();
    }
  });
});

describe('idle connections', () => {
  // A cluster of its own: with a short idle age, the held connections of the tests above would be closed.
  let idle: TestCluster;
  before(async () => {
    idle = await startTestCluster({
      grpcPort: 0,
      modelhosts: 1,
      metrics: false,
      inferrerEnv: { GRPC_MAX_CONNECTION_IDLE_MS: String(IDLE_MS) },
    });
  });
  after(async () => {
    await idle?.close();
  });

  test('a connection with no call open for GRPC_MAX_CONNECTION_IDLE_MS is closed with GOAWAY', { timeout: 60_000 }, async () => {
    const s = connect('127.0.0.1', {}, idle.grpcAddress);
    const goaway = new Promise<number>((r) => s.once('goaway', (code: number) => r(code)));
    assert.equal((await live(s)).status, grpc.status.OK);
    assert.equal(await goaway, http2.constants.NGHTTP2_NO_ERROR);
    await closed(s);
  });
});

describe('connection age', () => {
  // A cluster of its own: with a short age, the held connections of the tests above would be closed.
  let aged: TestCluster;
  before(async () => {
    aged = await startTestCluster({
      grpcPort: 0,
      modelhosts: 1,
      metrics: false,
      inferrerEnv: { GRPC_MAX_CONNECTION_AGE_MS: String(AGE_MS), GRPC_MAX_CONNECTION_AGE_GRACE_MS: String(AGE_GRACE_MS) },
    });
  });
  after(async () => {
    await aged?.close();
  });

  test('a connection open for GRPC_MAX_CONNECTION_AGE_MS (± 10 %) is sent GOAWAY, busy or not; connections opened together get theirs spread out; the client reconnects and is served', {
    timeout: 60_000,
  }, async () => {
    const opened = performance.now();
    const sessions = Array.from({ length: 10 }, () => connect('127.0.0.1', {}, aged.grpcAddress));
    try {
      const goaways = sessions.map(
        (s) => new Promise<{ code: number; at: number }>((r) => s.once('goaway', (code: number) => r({ code, at: performance.now() - opened }))),
      );
      for (const s of sessions) assert.equal((await live(s)).status, grpc.status.OK);
      // One of them busy with a call (its message not finished), to show age is not idleness.
      const busy = sessions[0]!.request({ ':method': 'POST', ':path': LIVE_PATH, 'content-type': 'application/grpc', te: 'trailers' });
      busy.on('error', () => undefined);
      busy.write(Buffer.alloc(3));
      const got = await within(Promise.all(goaways), AGE_MS * 1.1 + 5000, 'GOAWAY');
      for (const g of got) {
        assert.equal(g.code, http2.constants.NGHTTP2_NO_ERROR);
        assert.ok(g.at >= AGE_MS * 0.9 - 5, `GOAWAY after ${g.at.toFixed(0)} ms, not before the age less 10 %`);
        assert.ok(g.at <= AGE_MS * 1.1 + 2000, `GOAWAY after ${g.at.toFixed(0)} ms, near the age`);
      }
      const times = got.map((g) => g.at);
      // Ten draws over ± 10 % of 1.5 s (300 ms) are spread less than 50 ms with a chance of about 1e-6.
      assert.ok(Math.max(...times) - Math.min(...times) >= 50, `GOAWAYs at ${times.map((t) => t.toFixed(0)).join(', ')} ms are spread out (jitter)`);
      // A new connection is served (as a gRPC client makes one after GOAWAY).
      const again = connect('127.0.0.1', {}, aged.grpcAddress);
      sessions.push(again);
      assert.equal((await live(again)).status, grpc.status.OK);
      const grpcjs = grpcClient(aged.grpcAddress!);
      try {
        for (let i = 0; i < 2; i++) {
          assert.equal(await new Promise<grpc.ServiceError | null>((r) => grpcjs.ServerLive!({}, new grpc.Metadata(), {}, (err) => r(err))), null);
          if (i === 0) await new Promise((r) => setTimeout(r, AGE_MS * 1.1 + 200));
        }
      } finally {
        grpcjs.close();
      }
    } finally {
      for (const s of sessions) s.destroy();
    }
  });

  test('a call open when its connection reaches its age finishes if it ends within GRPC_MAX_CONNECTION_AGE_GRACE_MS; one still open past the grace is cut with the connection', {
    timeout: 60_000,
  }, async () => {
    const s = connect('127.0.0.1', {}, aged.grpcAddress);
    try {
      const goaway = new Promise<number>((r) => s.once('goaway', () => r(performance.now())));
      assert.equal((await live(s)).status, grpc.status.OK);
      // Two calls whose messages are still coming when the age passes (3 of ServerLive's 5 bytes sent).
      const message = framed('ServerLive', {});
      const open = (): { stream: http2.ClientHttp2Stream; status: Promise<string | undefined> } => {
        const stream = s.request({ ':method': 'POST', ':path': LIVE_PATH, 'content-type': 'application/grpc', te: 'trailers' });
        stream.on('error', () => undefined);
        let status: string | undefined;
        const take = (h: http2.IncomingHttpHeaders): void => {
          if (h['grpc-status'] !== undefined) status = String(h['grpc-status']);
        };
        stream.on('response', take);
        stream.on('trailers', take);
        stream.resume();
        stream.write(message.subarray(0, 3));
        return { stream, status: new Promise((r) => stream.once('close', () => r(status))) };
      };
      const finishing = open();
      const lingering = open();
      const sent = await within(goaway, AGE_MS * 1.1 + 5000, 'GOAWAY');
      // Within the grace: the first call's message ends, and it is answered OK.
      await new Promise((r) => setTimeout(r, AGE_GRACE_MS / 4));
      finishing.stream.end(message.subarray(3));
      assert.equal(await finishing.status, String(grpc.status.OK), 'the call that ended within the grace is answered OK');
      // The other never ends: past the grace it is cut without a status, and the connection closed.
      assert.equal(await within(lingering.status, AGE_GRACE_MS + 5000, 'cut'), undefined, 'the call open past the grace ends without a gRPC status');
      const cutAfter = performance.now() - sent;
      assert.ok(cutAfter >= AGE_GRACE_MS - 50, `cut ${cutAfter.toFixed(0)} ms after GOAWAY, not before the grace`);
      await within(closed(s), 5000, 'close');
    } finally {
      s.destroy();
    }
  });

  test('a connection past its age takes no new call, even from a client that ignores its GOAWAY', { timeout: 60_000 }, async () => {
    const { h2 } = await rawConnect(aged.grpcAddress!);
    try {
      // A call open (its message not finished), so the connection stays after its GOAWAY.
      const held = h2.open(LIVE_PATH, undefined, false);
      await h2.until('GOAWAY', () => h2.goaways.length > 0, AGE_MS * 1.1 + 5000);
      await h2.until('a GOAWAY naming the last stream taken', () => h2.goaways.some((g) => g.lastStreamId === held), 2000);
      const late = h2.open(LIVE_PATH, framed('ServerLive', {}), true);
      // The held call is still served; then the connection closes, the late call never answered.
      h2.send(held, framed('ServerLive', {}), true);
      await within(h2.closed, AGE_GRACE_MS + 5000, 'close');
      assert.deepEqual(Buffer.concat(h2.streams.get(held)!.data), liveAnswer(), 'the held call is answered');
      const s = h2.streams.get(late)!;
      assert.equal(s.headers + s.data.length, 0, 'the call opened after GOAWAY is not answered');
    } finally {
      h2.destroy();
    }
  });
});

describe('shutdown (last: it stops the Inferrer)', () => {
  test('SIGTERM with gRPC connections open: the Inferrer drains them and stops, without waiting for DRAIN_TIMEOUT_MS', { timeout: 120_000 }, async () => {
    const s = connect('127.0.0.1', {}, c.grpcAddress);
    const other = grpcClient(c.grpcAddress!);
    try {
      assert.equal((await live(s)).status, grpc.status.OK);
      assert.equal(await new Promise<grpc.ServiceError | null>((r) => other.ServerLive!({}, new grpc.Metadata(), {}, (err) => r(err))), null);
      // A call still open on the raw connection (its message never ends), so the connection is not idle.
      const open = s.request({ ':method': 'POST', ':path': '/inference.GRPCInferenceService/ServerLive', 'content-type': 'application/grpc', te: 'trailers' });
      open.on('error', () => undefined);
      open.write(Buffer.alloc(3));
      process.kill(c.inferrer.pid!, 'SIGTERM');
      const stopped = () => c.jsonLogs('inferrer').filter((l) => String(l.msg).startsWith('stopped'));
      await until('the Inferrer has stopped', async () => stopped().length > 0, 90_000);
      assert.deepEqual(
        stopped().map((l) => l.msg),
        ['stopped'],
        'it stopped once its connections were closed, not at DRAIN_TIMEOUT_MS with them still open',
      );
    } finally {
      other.close();
      s.destroy();
    }
  });
});
