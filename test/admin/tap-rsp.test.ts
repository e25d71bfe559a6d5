/**
 * `GET /tap`'s `rsp` record (Linkerd's `rsp` event: the response head's status and the latency to
 * it), between a request's `req` and `end`, over real sockets for every path that writes or
 * receives a head: outbound mesh.fetch and Node's fetch through mesh.dispatcher (the undici
 * transport), a grpc-js client (the gRPC transport; a trailers-only answer carries its gRPC
 * status), replies the mesh makes itself (a direct response, a connect failure rendered as 503);
 * inbound mesh.createServer over HTTP/1.1 and HTTP/2, Express, Fastify, an AuthorizationPolicy
 * denial, and a grpc-js server under the mesh's interceptors. Outbound `src` is the local end of
 * the connection that answered, or `sourceIp` when the mesh was given one; a `status` filter
 * decides on the rsp's status. An upgrade (WebSocket) has its 101 as its rsp, both ways: an
 * undici upgrade through mesh.dispatcher, and a server's 'upgrade' listener writing the 101 on
 * the socket (as `ws` does) — the mesh gave them none.
 */
import assert from 'node:assert/strict';
import { connect as h2connect } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { upgrade } from 'undici';
import express from 'express';
import Fastify from 'fastify';
import { createMesh } from '../../src/index.ts';
import { responseChannels } from '../../src/core/observe-response.ts';
import { type Echo, EchoClient, grpc, grpcServiceEntry, startGrpcUpstream, status, unary } from '../helpers/grpc.ts';
import { openTap, type TapRecord as Rec } from '../helpers/tap.ts';
import { until } from '../helpers/until.ts';
import { call, deadPort, serviceEntry, startUpstream, virtualService } from '../helpers/upstreams.ts';

const quiet = { warn: () => {} };


/** Each request's records in order, by id: `[type, …]`; and its rsp. */
function byId(records: Rec[]): Map<number, Rec[]> {
  const m = new Map<number, Rec[]>();
  for (const r of records) {
    if (typeof r.id !== 'number') continue;
    m.set(r.id, [...(m.get(r.id) ?? []), r]);
  }
  return m;
}

/** Checks every request went req, rsp, end and returns the rsp records in request order. */
function responses(records: Rec[]): Rec[] {
  const out: Rec[] = [];
  for (const [id, rs] of byId(records)) {
    assert.deepEqual(rs.map((r) => r.type), ['req', 'rsp', 'end'], `request ${id}: ${JSON.stringify(rs)}`);
    const [, rsp, end] = rs as [Rec, Rec, Rec];
    assert.equal(rsp.direction, end.direction);
    assert.equal(typeof rsp.latencyUs, 'number');
    assert.ok(Number.isInteger(rsp.latencyUs) && (rsp.latencyUs as number) >= 0);
    // The head comes no later than the end.
    assert.ok((rsp.latencyUs as number) <= Math.round((end.latencyMs as number) * 1000) + 1, JSON.stringify(rs));
    out.push({ ...rsp, reqSrc: (rs[0] as Rec).srcAddress, endStatus: end.status });
  }
  return out;
}

describe('admin /tap: rsp records', () => {
  it('outbound: mesh.fetch, mesh.dispatcher, a direct response and a connect failure — each req, rsp (status, latency, header names, src), end', async () => {
    const reviews = await startUpstream('reviews');
    const dead = await deadPort();
    const mesh = await createMesh({
      service: 'web',
      logger: quiet,
      admin: { port: 0 },
      config: [
        serviceEntry('reviews', 'reviews.default.svc.cluster.local', 9080, [{ port: reviews.port }]),
        virtualService('reviews', ['reviews.default.svc.cluster.local'], [{ name: 'teapot', match: [{ uri: { prefix: '/teapot' } }], directResponse: { status: 418 } }, { name: 'all', route: [{ destination: { host: 'reviews.default.svc.cluster.local' } }] }]),
        serviceEntry('gone', 'gone.default.svc.cluster.local', 9080, [{ port: dead }]),
        virtualService('gone', ['gone.default.svc.cluster.local'], [{ name: 'r', route: [{ destination: { host: 'gone.default.svc.cluster.local' } }], retries: { attempts: 0 } }]),
      ],
    });
    try {
      const tap = await openTap(mesh);
      assert.equal((await call(mesh, 'http://reviews.default.svc.cluster.local:9080/reviews/1', { headers: { authorization: 'Bearer SECRET' } })).status, 200);
      await tap.wait('end', 1);
      const viaDispatcher = await fetch('http://reviews.default.svc.cluster.local:9080/reviews/2', { dispatcher: mesh.dispatcher } as RequestInit);
      assert.equal(viaDispatcher.status, 200);
      await viaDispatcher.text();
      await tap.wait('end', 2);
      assert.equal((await call(mesh, 'http://reviews.default.svc.cluster.local:9080/teapot')).status, 418);
      await tap.wait('end', 3);
      assert.equal((await call(mesh, 'http://gone.default.svc.cluster.local:9080/x')).status, 503);
      await tap.wait('end', 4);
      const [first, second, teapot, gone] = responses(tap.records) as [Rec, Rec, Rec, Rec];
      assert.deepEqual(
        [first, second, teapot, gone].map((r) => [r.direction, r.status, r.grpcStatus ?? null, r.local ?? null, r.endStatus]),
        [
          ['out', 200, null, null, 200],
          ['out', 200, null, null, 200],
          ['out', 418, null, 'direct', 418],
          ['out', 503, null, 'failure', 503],
        ],
      );
      // The first call's src was learned from its connection (rsp), the second's known at its req already.
      assert.equal(first.reqSrc, undefined);
      assert.match(String(first.srcAddress), /^127\.0\.0\.1:\d+$/);
      assert.match(String(second.reqSrc), /^127\.0\.0\.1:\d+$/);
      assert.ok(second.srcAddress === undefined || /^127\.0\.0\.1:\d+$/.test(String(second.srcAddress)));
      // Header names only, never a value (the upstream's x-upstream: reviews).
      assert.ok(Array.isArray(first.headers) && (first.headers as string[]).includes('x-upstream'), JSON.stringify(first));
      assert.equal(JSON.stringify(tap.records).includes('SECRET'), false);
      assert.equal(JSON.stringify(tap.records.filter((r) => r.type === 'rsp')).includes('"reviews"'), false);
      tap.close();
      await until(() => !responseChannels.call.hasSubscribers && !responseChannels.inbound.hasSubscribers, 'unsubscribed once the client went away');
    } finally {
      await mesh.close();
      await reviews.close();
    }
  });

  it('outbound gRPC: the answering connection is the src; a trailers-only answer carries its gRPC status; sourceIp, when given, is every src', async () => {
    const echo = await startGrpcUpstream('echo', { Unary: (c, cb) => (c.request.text === 'fail' ? cb(status(grpc.status.NOT_FOUND, 'none')) : cb(null, { text: c.request.text, server: 'echo', seen: [] })) });
    const config = [grpcServiceEntry('echo', 'echo.default.svc.cluster.local', 9090, [{ port: echo.port }])];
    const mesh = await createMesh({ service: 'web', logger: quiet, admin: { port: 0 }, config });
    const pinned = await createMesh({ service: 'web2', logger: quiet, admin: { port: 0 }, config, sourceIp: '10.1.2.3' });
    const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    const pinnedClient = pinned.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    try {
      const tap = await openTap(mesh);
      assert.equal((await unary(client, { text: 'hi' })).error, undefined);
      assert.equal((await unary(client, { text: 'fail' })).error?.code, grpc.status.NOT_FOUND);
      await tap.wait('end', 2);
      const [ok, failed] = responses(tap.records) as [Rec, Rec];
      assert.deepEqual([ok.status, ok.grpcStatus ?? null, failed.status, failed.grpcStatus], [200, null, 200, grpc.status.NOT_FOUND]);
      assert.match(String(ok.srcAddress ?? ok.reqSrc), /^127\.0\.0\.1:\d+$/);
      assert.ok((failed.headers as string[]).includes('grpc-status'));

      const ptap = await openTap(pinned);
      assert.equal((await unary(pinnedClient, { text: 'hi' })).error, undefined);
      await ptap.wait('end', 1);
      const [p] = responses(ptap.records) as [Rec];
      assert.deepEqual([p.reqSrc, p.srcAddress ?? null], ['10.1.2.3', null]);
      tap.close();
      ptap.close();
    } finally {
      client.close();
      pinnedClient.close();
      await mesh.close();
      await pinned.close();
      await echo.close();
    }
  });

  it('inbound: mesh.createServer (HTTP/1.1 and HTTP/2), Express, Fastify and a denial — rsp when the head is written', async () => {
    const deny = { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'no-admin', namespace: 'default' }, spec: { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin'] } }] }] } };
    const mesh = await createMesh({ service: 'web', identity: 'none', logger: quiet, admin: { port: 0 }, config: [deny] });
    const server = mesh.createServer((req, res) => {
      if (req.url === '/head') {
        res.writeHead(202, { 'x-made': 'SECRET-VALUE' });
        res.end();
        return;
      }
      res.setHeader('x-app', 'SECRET-VALUE');
      res.end('in');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const app = express();
    app.use(mesh.express());
    app.get('/express', (_req, res) => {
      res.status(201).send('made');
    });
    const expressServer = app.listen(0, '127.0.0.1');
    await new Promise((r) => expressServer.once('listening', r));
    const fastify = Fastify();
    await fastify.register(mesh.fastify());
    fastify.get('/fastify', async (_req, reply) => reply.code(204).send());
    await fastify.listen({ port: 0, host: '127.0.0.1' });
    const session = h2connect(`http://127.0.0.1:${port}`);
    try {
      const tap = await openTap(mesh);
      const seq: [string, number][] = [
        [`http://127.0.0.1:${port}/plain`, 200],
        [`http://127.0.0.1:${port}/head`, 202],
        [`http://127.0.0.1:${(expressServer.address() as AddressInfo).port}/express`, 201],
        [`http://127.0.0.1:${(fastify.server.address() as AddressInfo).port}/fastify`, 204],
        [`http://127.0.0.1:${port}/admin`, 403],
      ];
      for (const [i, [url, want]] of seq.entries()) {
        const r = await fetch(url);
        await r.arrayBuffer();
        assert.equal(r.status, want, url);
        await tap.wait('end', i + 1);
      }
      const h2status = await new Promise<number>((resolve, reject) => {
        const req = session.request({ ':method': 'GET', ':path': '/h2' });
        let s = 0;
        req.on('response', (h) => (s = Number(h[':status'])));
        req.on('end', () => resolve(s));
        req.on('error', reject);
        req.resume();
      });
      assert.equal(h2status, 200);
      await tap.wait('end', 6);
      const rsps = responses(tap.records);
      assert.deepEqual(
        rsps.map((r) => [r.direction, r.status, r.endStatus]),
        [
          ['in', 200, 200],
          ['in', 202, 202],
          ['in', 201, 201],
          ['in', 204, 204],
          ['in', 403, 403],
          ['in', 200, 200],
        ],
      );
      assert.ok(((rsps[0] as Rec).headers as string[]).includes('x-app'), JSON.stringify(rsps[0]));
      assert.ok(((rsps[1] as Rec).headers as string[]).includes('x-made'), 'headers given to writeHead count too');
      assert.equal(JSON.stringify(tap.records).includes('SECRET'), false);
      tap.close();
    } finally {
      session.close();
      await mesh.close();
      await new Promise((r) => server.close(r));
      await new Promise((r) => expressServer.close(r));
      await fastify.close();
    }
  });

  it('inbound gRPC under the mesh interceptors: rsp at the response metadata, or a trailers-only status', async () => {
    const mesh = await createMesh({ service: 'echo', identity: 'none', config: [], logger: quiet, admin: { port: 0 } });
    const server = new grpc.Server({ interceptors: mesh.grpc.serverInterceptors() });
    server.addService(EchoClient.service, {
      Unary: (c: grpc.ServerUnaryCall<{ text: string }, object>, cb: grpc.sendUnaryData<object>) =>
        c.request.text === 'fail' ? cb({ code: grpc.status.FAILED_PRECONDITION, details: 'no' }) : cb(null, { text: c.request.text, server: 'echo' }),
    });
    let client: (Echo & grpc.Client) | undefined;
    try {
      const port = await mesh.grpc.bind(server, '127.0.0.1:0');
      client = new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as Echo & grpc.Client;
      const tap = await openTap(mesh);
      assert.equal((await unary(client, { text: 'hi' })).error, undefined);
      assert.equal((await unary(client, { text: 'fail' })).error?.code, grpc.status.FAILED_PRECONDITION);
      await tap.wait('end', 2);
      const [ok, failed] = responses(tap.records) as [Rec, Rec];
      assert.deepEqual([ok.direction, ok.status, ok.grpcStatus ?? null], ['in', 200, null]);
      assert.deepEqual([failed.direction, failed.status, failed.grpcStatus], ['in', 200, grpc.status.FAILED_PRECONDITION]);
      tap.close();
    } finally {
      client?.close();
      server.forceShutdown();
      await mesh.close();
    }
  });

  it('a status filter decides on the rsp status: req and rsp shown when the head fails, end after', async () => {
    const mesh = await createMesh({
      service: 'web',
      logger: quiet,
      admin: { port: 0 },
      config: [serviceEntry('reviews', 'reviews.default.svc.cluster.local', 9080, [{ port: 9 }]), virtualService('r', ['reviews.default.svc.cluster.local'], [{ name: 'down', match: [{ uri: { prefix: '/down' } }], directResponse: { status: 503 } }, { name: 'ok', directResponse: { status: 200 } }])],
    });
    try {
      const tap = await openTap(mesh, '?status=5xx');
      assert.equal((await call(mesh, 'http://reviews.default.svc.cluster.local:9080/fine')).status, 200);
      assert.equal((await call(mesh, 'http://reviews.default.svc.cluster.local:9080/down')).status, 503);
      await tap.wait('end', 1);
      assert.deepEqual(
        tap.records.slice(1).map((r) => [r.type, r.id, r.path ?? r.status]),
        [
          ['req', 1, '/down'],
          ['rsp', 1, 503],
          ['end', 1, 503],
        ],
      );
      tap.close();
    } finally {
      await mesh.close();
    }
  });

  it('an upgrade: its 101 is its rsp, outbound (undici upgrade through mesh.dispatcher) and inbound (an upgrade listener writing the 101 on the socket)', async () => {
    const dest = await createMesh({ service: 'svc', config: [], admin: { port: 0 }, logger: quiet });
    const server = dest.createServer((_req, res) => res.end('x'));
    server.on('upgrade', (_req, socket) => socket.end('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const mesh = await createMesh({ service: 'client', admin: { port: 0 }, logger: quiet, config: [serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port }])] });
    try {
      const out = await openTap(mesh);
      const inb = await openTap(dest);
      const u = await upgrade('http://svc/ws', { dispatcher: mesh.dispatcher, protocol: 'websocket' });
      await new Promise((r) => u.socket.once('close', r));
      await out.wait('end', 1);
      await inb.wait('end', 1);
      for (const [name, tap] of [['out', out], ['in', inb]] as const) {
        const [rsp] = responses(tap.records);
        assert.equal(rsp?.status, 101, name);
        assert.equal(rsp?.endStatus, 101, name);
        assert.ok(Array.isArray(rsp?.headers) && (rsp.headers as string[]).includes('upgrade'), `${name}: ${JSON.stringify(rsp)}`);
      }
      out.close();
      inb.close();
    } finally {
      await mesh.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await dest.close();
    }
  });
});
