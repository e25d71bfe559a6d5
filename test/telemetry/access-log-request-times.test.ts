/**
 * `%REQUEST_DURATION%` and `%REQUEST_TX_DURATION%`: when the request's last byte was received
 * from the downstream and sent upstream, in ms since the start, on the mesh's clock — Envoy's
 * `TimingUtility::lastDownstreamRxByteReceived` / `lastUpstreamTxByteSent`
 * (`source/common/formatter/stream_info_formatter.cc`). Through real entry points, with a
 * Telemetry resource turning a log with them on: undici's `request` through `mesh.dispatcher`
 * (a whole body, a streamed one, a failed connect), a grpc-js client through the mesh (unary and
 * client-streaming), a node:http server under the mesh (`mesh.createServer`, a GET, a body sent
 * in two parts, a denied request) and a grpc-js server bound with `mesh.grpc.bind`. The mesh runs
 * on a ManualClock, advanced between the request's parts.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { request } from 'undici';
import { createMesh, ManualClock, type Mesh } from '../../src/index.ts';
import { capture, HOST, T0, telemetry, until } from '../helpers/access-log.ts';
import { type Echo, EchoClient, type EchoReply, type EchoRequest, unary } from '../helpers/grpc.ts';
import { deadPort, serviceEntry, virtualService } from '../helpers/upstreams.ts';

const GONE = 'gone.default.svc.cluster.local';

const FORMAT = '%REQ(:PATH)% %REQUEST_DURATION% %REQUEST_TX_DURATION% %RESPONSE_DURATION% %DURATION%';
const providers = [{ name: 'times', envoyFileAccessLog: { path: '/dev/stdout', logFormat: { text: FORMAT } } }];
const logs = telemetry('logs', { accessLogging: [{ providers: [{ name: 'times' }] }] });
const quiet = { warn: () => undefined, error: () => undefined };

/** A promise and the function that settles it. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open = (): void => undefined;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

describe('%REQUEST_DURATION% / %REQUEST_TX_DURATION%, client side', () => {
  let server: Server;
  let port: number;
  /** Released by the test before the upstream answers /slow (after its whole body came). */
  let answer = gate();
  let bodyIn = gate();

  before(async () => {
    server = createServer(async (req, res) => {
      for await (const _ of req);
      if (req.url === '/slow') {
        bodyIn.open();
        await answer.promise;
      }
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  test('undici through mesh.dispatcher: a GET, a streamed body, a failed connect', async () => {
    const clock = new ManualClock(T0);
    const log = capture();
    const dead = await deadPort();
    const mesh = await createMesh({
      service: 'reviews',
      clock,
      logger: log.logger,
      extensionProviders: providers,
      config: [
        serviceEntry('ratings', HOST, 9080, [{ port }]),
        serviceEntry('gone', GONE, 9080, [{ port: dead }]),
        // No retry (Istio's default retries a failed connect after a backoff on the mesh's clock, which this test does not advance).
        virtualService('gone', [GONE], [{ route: [{ destination: { host: GONE } }], retries: { attempts: 0 } }]),
        logs,
      ] as never,
    });
    try {
      const g = await request(`http://${HOST}:9080/get`, { dispatcher: mesh.dispatcher });
      await g.body.text();

      answer = gate();
      bodyIn = gate();
      const second = gate();
      async function* body() {
        yield Buffer.from('first ');
        await second.promise;
        yield Buffer.from('second');
      }
      const call = request(`http://${HOST}:9080/slow`, { dispatcher: mesh.dispatcher, method: 'POST', body: Readable.from(body()) });
      clock.advance(20);
      second.open();
      await bodyIn.promise;
      clock.advance(10);
      answer.open();
      await (await call).body.text();

      const failed = await request(`http://${GONE}:9080/gone`, { dispatcher: mesh.dispatcher });
      await failed.body.text();
      assert.equal(failed.statusCode, 503);

      await until(() => log.lines().length === 3, 'three lines');
      assert.deepEqual(log.lines(), [
        '/get 0 0 0 0',
        // the last byte came from the app 20 ms in, and went out then; the answer 10 ms later
        '/slow 20 20 30 30',
        // the whole request came with the call; nothing went out
        '/gone 0 - - 0',
      ]);
    } finally {
      await mesh.close();
    }
  });

  test('a grpc-js client through the mesh: unary, and a client stream ended 15 ms in', async () => {
    const arrived = gate();
    const g = new grpc.Server();
    g.addService(EchoClient.service, {
      Unary: (call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) => cb(null, { text: call.request.text, server: 'plain', seen: [] }),
      ClientStream: (call: grpc.ServerReadableStream<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) => {
        const texts: string[] = [];
        call.once('data', () => arrived.open());
        call.on('data', (m: EchoRequest) => texts.push(m.text));
        call.on('end', () => cb(null, { text: texts.join(','), server: 'plain', seen: [] }));
      },
    });
    const gport = await new Promise<number>((resolve, reject) => g.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    const clock = new ManualClock(T0);
    const log = capture();
    const mesh = await createMesh({
      service: 'reviews',
      clock,
      logger: log.logger,
      extensionProviders: providers,
      config: [serviceEntry('ratings', HOST, 9080, [{ port: gport }], { ports: [{ number: 9080, name: 'http', protocol: 'GRPC' }] }), logs] as never,
    });
    const c = mesh.grpc.client(EchoClient, `${HOST}:9080`) as unknown as Echo;
    try {
      assert.equal((await unary(c, { text: 'hi' })).error, undefined);
      const reply = new Promise<EchoReply | undefined>((resolve, reject) => {
        const s = c.ClientStream(new grpc.Metadata(), {}, (err, res) => (err ? reject(err) : resolve(res)));
        s.write({ text: 'a' });
        // The first message reached the upstream: the call is under way.
        void arrived.promise.then(() => {
          clock.advance(15);
          s.write({ text: 'b' });
          s.end();
        });
      });
      assert.equal((await reply)?.text, 'a,b');
      await until(() => log.lines().length === 2, 'two lines');
      assert.deepEqual(log.lines(), ['/meshlet.test.Echo/Unary 0 0 0 0', '/meshlet.test.Echo/ClientStream 15 15 15 15']);
    } finally {
      c.close();
      await mesh.close();
      g.forceShutdown();
    }
  });
});

describe('%REQUEST_DURATION% / %REQUEST_TX_DURATION%, server side', () => {
  let mesh: Mesh;
  let clock: ManualClock;
  const log = capture();
  let port: number;
  let firstChunk = gate();

  before(async () => {
    clock = new ManualClock(T0);
    const deny = { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'deny', namespace: 'default' }, spec: { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/denied'] } }] }] } };
    mesh = await createMesh({ service: 'reviews', clock, logger: { ...quiet, info: log.logger.info }, extensionProviders: providers, config: [logs, deny] as never });
    const s = mesh.createServer((req, res) => {
      req.once('data', () => firstChunk.open());
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    port = (s.address() as AddressInfo).port;
  });
  after(() => mesh.close());

  test('node:http (mesh.createServer): a GET, a body whose end came 25 ms in, a denied GET', async () => {
    const r = await request(`http://127.0.0.1:${port}/get`);
    await r.body.text();

    firstChunk = gate();
    const second = gate();
    async function* body() {
      yield Buffer.from('first ');
      await second.promise;
      yield Buffer.from('second');
    }
    const post = request(`http://127.0.0.1:${port}/post`, { method: 'POST', body: Readable.from(body()) });
    await firstChunk.promise;
    clock.advance(25);
    second.open();
    await (await post).body.text();

    const denied = await request(`http://127.0.0.1:${port}/denied`);
    await denied.body.text();
    assert.equal(denied.statusCode, 403);

    await until(() => log.lines().length === 3, 'three lines');
    assert.deepEqual(log.lines(), [
      '/get 0 0 0 0',
      '/post 25 25 25 25',
      // received whole with its head, never sent on to the app; no response from it
      '/denied 0 - - 0',
    ]);
  });

  test('gRPC (mesh.grpc.bind): a client stream half-closed 15 ms in', async () => {
    log.entries.length = 0;
    const arrived = gate();
    const g = new grpc.Server({ interceptors: mesh.grpc.serverInterceptors() });
    g.addService(EchoClient.service, {
      ClientStream: (call: grpc.ServerReadableStream<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) => {
        call.once('data', () => arrived.open());
        call.on('data', () => undefined);
        call.on('end', () => cb(null, { text: 'done', server: 'mesh', seen: [] }));
      },
    });
    const gport = await mesh.grpc.bind(g, '127.0.0.1:0');
    const client = new EchoClient(`127.0.0.1:${gport}`, grpc.credentials.createInsecure()) as unknown as Echo;
    try {
      const done = new Promise<void>((resolve, reject) => {
        const s = client.ClientStream(new grpc.Metadata(), {}, (err) => (err ? reject(err) : resolve()));
        s.write({ text: 'a' });
        void arrived.promise.then(() => {
          clock.advance(15);
          s.end();
        });
      });
      await done;
      await until(() => log.lines().length === 1, 'one line');
      assert.deepEqual(log.lines(), ['/meshlet.test.Echo/ClientStream 15 15 15 15']);
    } finally {
      client.close();
      g.forceShutdown();
    }
  });
});
