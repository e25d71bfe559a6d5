/**
 * `%TRAILER(X)%` on the client side: any response trailer (Envoy's `ResponseTrailerFormatter`,
 * `source/common/formatter/substitution_formatter.cc`: `name?alternative` and `:N` truncation as
 * `%RESP(…)%`), through real entry points with a Telemetry resource turning the log on: HTTP/1
 * chunked trailers (undici's `request` through `mesh.dispatcher` to a node:http upstream),
 * HTTP/2 trailers (an h2c upstream), and a grpc-js client through the mesh to a grpc-js server
 * ending a server stream with an error status, its message and custom trailing metadata.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createServer as createH2Server, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { request } from 'undici';
import { createMesh, type Mesh } from '../../src/index.ts';
import { capture, HOST, telemetry, until } from '../helpers/access-log.ts';
import { type Echo, EchoClient, type EchoReply, type EchoRequest } from '../helpers/grpc.ts';
import { serviceEntry } from '../helpers/upstreams.ts';

const FORMAT = '%REQ(:PATH)% [%TRAILER(x-checksum)%] [%TRAILER(x-missing?x-checksum):3%] [%TRAILER(grpc-status)%] [%TRAILER(grpc-message)%] [%TRAILER(x-app-trailer)%]';
const providers = [{ name: 'trailers', envoyFileAccessLog: { path: '/dev/stdout', logFormat: { text: FORMAT } } }];
const logs = telemetry('logs', { accessLogging: [{ providers: [{ name: 'trailers' }] }] });
const H2 = 'h2.default.svc.cluster.local';
const ECHO = 'echo.default.svc.cluster.local';

describe('%TRAILER(…)%: a call’s response trailers', () => {
  let h1: Server;
  let h2: Http2Server;
  let g: grpc.Server;
  let mesh: Mesh;
  const log = capture();

  before(async () => {
    h1 = createServer((_req, res) => {
      res.writeHead(200, { trailer: 'x-checksum' });
      res.write('body');
      res.addTrailers({ 'x-checksum': 'abcdef' });
      res.end();
    });
    await new Promise<void>((r) => h1.listen(0, '127.0.0.1', r));
    h2 = createH2Server();
    h2.on('stream', (stream) => {
      stream.respond({ ':status': 200 }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-checksum': 'h2sum' }));
      stream.end('body');
    });
    await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
    g = new grpc.Server();
    g.addService(EchoClient.service, {
      // A message, then the error: the status goes in trailers (an error alone is a trailers-only answer, whose status is in the head).
      ServerStream: (call: grpc.ServerWritableStream<EchoRequest, EchoReply>) => {
        call.write({ text: 'one', server: 'plain', seen: [] });
        const md = new grpc.Metadata();
        md.set('x-app-trailer', 'kept');
        call.emit('error', { code: grpc.status.NOT_FOUND, details: 'no such echo', metadata: md });
      },
    });
    const gport = await new Promise<number>((resolve, reject) => g.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    mesh = await createMesh({
      service: 'reviews',
      logger: log.logger,
      extensionProviders: providers,
      config: [
        serviceEntry('ratings', HOST, 9080, [{ port: (h1.address() as AddressInfo).port }]),
        serviceEntry('h2', H2, 9080, [{ port: (h2.address() as AddressInfo).port }], { ports: [{ number: 9080, name: 'http', protocol: 'HTTP2' }] }),
        serviceEntry('echo', ECHO, 9080, [{ port: gport }], { ports: [{ number: 9080, name: 'http', protocol: 'GRPC' }] }),
        logs,
      ] as never,
    });
  });
  after(async () => {
    await mesh.close();
    h1.closeAllConnections();
    await new Promise((r) => h1.close(r));
    await new Promise((r) => h2.close(r));
    g.forceShutdown();
  });

  test('HTTP/1 chunked trailers and HTTP/2 trailers (undici through mesh.dispatcher)', async () => {
    log.entries.length = 0;
    const r1 = await request(`http://${HOST}:9080/h1`, { dispatcher: mesh.dispatcher });
    await r1.body.text();
    assert.deepEqual(r1.trailers, { 'x-checksum': 'abcdef' }, 'the caller got the trailer');
    const r2 = await request(`http://${H2}:9080/h2`, { dispatcher: mesh.dispatcher });
    await r2.body.text();
    await until(() => log.lines().length === 2, 'two lines');
    assert.deepEqual(log.lines(), ['/h1 [abcdef] [abc] [-] [-] [-]', '/h2 [h2sum] [h2s] [-] [-] [-]']);
  });

  test('gRPC: grpc-status, grpc-message and the app’s trailing metadata', async () => {
    log.entries.length = 0;
    const c = mesh.grpc.client(EchoClient, `${ECHO}:9080`) as unknown as Echo;
    try {
      const code = await new Promise<number | undefined>((resolve) => {
        const s = c.ServerStream({ text: 'hi' });
        s.on('data', () => undefined);
        s.on('error', (e: grpc.ServiceError) => resolve(e.code));
        s.on('end', () => resolve(undefined));
      });
      assert.equal(code, grpc.status.NOT_FOUND);
      await until(() => log.lines().length === 1, 'one line');
      assert.deepEqual(log.lines(), ['/meshlet.test.Echo/ServerStream [-] [-] [5] [no such echo] [kept]']);
    } finally {
      c.close();
    }
  });
});
