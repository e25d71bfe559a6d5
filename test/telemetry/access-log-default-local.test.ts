/**
 * Istio's default access-log formats print `%UPSTREAM_LOCAL_ADDRESS%`: the local end of the
 * connection a call's request went out on, as Envoy's router notes it when the pool hands the
 * request a connection (`source/common/router/upstream_request.cc`, `onPoolReady`:
 * `setUpstreamLocalAddress`) — answered or not. Checked against what the upstream saw of the same
 * connection (its remote end), with the log on through MeshConfig `accessLogFile` alone: undici's
 * `request` and Node's `fetch` through `mesh.dispatcher`, a call whose connection was reset before
 * any answer, the default JSON format, and a real grpc-js client through the mesh.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { request } from 'undici';
import { createMesh, type Mesh } from '../../src/index.ts';
import { capture, HOST, until } from '../helpers/access-log.ts';
import { type Echo, EchoClient, type EchoReply, type EchoRequest, unary } from '../helpers/grpc.ts';
import { serviceEntry } from '../helpers/upstreams.ts';

/** The default text line's `%UPSTREAM_LOCAL_ADDRESS%` (the field after `%UPSTREAM_CLUSTER_RAW%`). */
const localOf = (line: string): string | undefined => / outbound\|\d+\|\|\S+ (\S+) /.exec(line)?.[1];

describe('%UPSTREAM_LOCAL_ADDRESS% in Istio’s default formats (no other log in use)', () => {
  let server: Server;
  let port: number;
  /** The path → the caller's end of the connection, as the upstream saw it. */
  const seen = new Map<string, string>();

  before(async () => {
    server = createServer((req, res) => {
      seen.set(req.url ?? '', `${req.socket.remoteAddress}:${req.socket.remotePort}`);
      if (req.url === '/reset') req.socket.destroy();
      else res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  async function meshWith(encoding: 'TEXT' | 'JSON'): Promise<{ mesh: Mesh; log: ReturnType<typeof capture> }> {
    const log = capture();
    const mesh = await createMesh({
      service: 'reviews',
      logger: log.logger,
      telemetry: { accessLog: { file: '/dev/stdout', encoding } },
      config: [serviceEntry('ratings', HOST, 9080, [{ port }])],
    });
    return { mesh, log };
  }

  test('text: undici.request and fetch through mesh.dispatcher, and a call reset before its answer', async () => {
    const { mesh, log } = await meshWith('TEXT');
    try {
      const r = await request(`http://${HOST}:9080/request`, { dispatcher: mesh.dispatcher });
      assert.equal(await r.body.text(), 'ok');
      const f = await fetch(`http://${HOST}:9080/fetch`, { dispatcher: mesh.dispatcher } as RequestInit);
      assert.equal(await f.text(), 'ok');
      const reset = await request(`http://${HOST}:9080/reset`, { dispatcher: mesh.dispatcher });
      await reset.body.text();
      assert.equal(reset.statusCode, 503, 'the sidecar’s answer to a reset');
      await until(() => log.lines().length === 3, 'three lines');
      for (const [i, path] of ['/request', '/fetch', '/reset'].entries()) {
        const line = log.lines()[i] as string;
        assert.ok(line.includes(` ${path} `), line);
        assert.match(seen.get(path) ?? '', /^127\.0\.0\.1:\d+$/);
        assert.equal(localOf(line), seen.get(path), `${path}: the local end is the address the upstream saw (${line})`);
      }
      assert.match(log.lines()[2] as string, / 503 UC upstream_reset_before_response_started\{connection_termination\} /);
    } finally {
      await mesh.close();
    }
  });

  test('JSON: upstream_local_address', async () => {
    const { mesh, log } = await meshWith('JSON');
    try {
      const r = await request(`http://${HOST}:9080/json`, { dispatcher: mesh.dispatcher });
      await r.body.text();
      await until(() => log.entries.length === 1, 'one entry');
      const e = log.entries[0] as Record<string, unknown>;
      assert.equal(e['upstream_local_address'], seen.get('/json'));
    } finally {
      await mesh.close();
    }
  });

  test('gRPC: a grpc-js client through the mesh, to a plain grpc-js server (its getPeer())', async () => {
    const peers: string[] = [];
    const g = new grpc.Server();
    g.addService(EchoClient.service, {
      Unary: (call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) => {
        peers.push(call.getPeer());
        cb(null, { text: call.request.text, server: 'plain', seen: [] });
      },
    });
    const gport = await new Promise<number>((resolve, reject) => g.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    const log = capture();
    const mesh = await createMesh({
      service: 'reviews',
      logger: log.logger,
      telemetry: { accessLog: { file: '/dev/stdout' } },
      config: [serviceEntry('ratings', HOST, 9080, [{ port: gport }], { ports: [{ number: 9080, name: 'http', protocol: 'GRPC' }] })],
    });
    const c = mesh.grpc.client(EchoClient, `${HOST}:9080`) as unknown as Echo;
    try {
      assert.equal((await unary(c, { text: 'hi' })).error, undefined);
      await until(() => log.lines().length === 1, 'one line');
      const line = log.lines()[0] as string;
      assert.match(peers[0] ?? '', /^127\.0\.0\.1:\d+$/);
      assert.equal(localOf(line), peers[0], line);
    } finally {
      c.close();
      await mesh.close();
      g.forceShutdown();
    }
  });
});
