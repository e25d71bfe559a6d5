/**
 * `GET /tap` on the admin endpoint, over real sockets: outbound calls (mesh.fetch, Node's fetch
 * through mesh.dispatcher, a grpc-js client) and inbound requests (mesh.createServer, Express)
 * as req/end records; no query string, header value or body in them; the filters; max_rps on the
 * mesh's ManualClock; a reader that does not read (drops counted, memory bounded); a client that
 * goes away and mesh.close() (the stream ends with a `closed` record); the observation channels
 * subscribed only while a client is connected.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { get, type IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import express from 'express';
import { createMesh, ManualClock } from '../../src/index.ts';
import { channels } from '../../src/core/observe.ts';
import { MAX_TAP_CLIENTS } from '../../src/mesh-tap.ts';
import { MAX_BUFFERED } from '../../src/mesh-tap-stream.ts';
import { type Echo, EchoClient, grpcServiceEntry, startGrpcUpstream, unary } from '../helpers/grpc.ts';
import { cleanupPki, makeCa, workloadCredentials } from '../helpers/pki.ts';
import { openTap, type Tap, type TapRecord as Rec } from '../helpers/tap.ts';
import { skipWithout } from '../helpers/tools.ts';
import { until } from '../helpers/until.ts';
import { answering, call, deadPort, serviceEntry, startUpstream, virtualService } from '../helpers/upstreams.ts';

const quiet = { warn: () => {} };


/**
 * The channel only /tap subscribes in these meshes (the admin endpoint's /stats keeps call:end,
 * attempt:end and the inbound ones — inbound:start for downstream_rq_active —; Istio's metrics attempt:start).
 */
const tapOnly = () => [channels.callStart.hasSubscribers];

describe('admin /tap', () => {
  it('streams requests in and out (mesh.fetch, mesh.dispatcher, grpc-js, mesh.createServer, Express) as req/end records, without query strings or header values', async () => {
    const reviews = await startUpstream('reviews');
    const echo = await startGrpcUpstream('echo');
    const mesh = await createMesh({
      service: 'web',
      logger: quiet,
      admin: { port: 0 },
      config: [
        serviceEntry('reviews', 'reviews.default.svc.cluster.local', 9080, [{ port: reviews.port }]),
        virtualService('reviews', ['reviews.default.svc.cluster.local'], [{ name: 'teapot', match: [{ uri: { prefix: '/teapot' } }], directResponse: { status: 418 } }, { name: 'all', route: [{ destination: { host: 'reviews.default.svc.cluster.local' } }] }]),
        grpcServiceEntry('echo', 'echo.default.svc.cluster.local', 9090, [{ port: echo.port }]),
      ],
    });
    const server = mesh.createServer((_req, res) => res.end('in')).listen(0, '127.0.0.1');
    const app = express();
    app.use(mesh.express());
    app.get('/express/:id', (_req, res) => {
      res.status(201).send('made');
    });
    const expressServer = app.listen(0, '127.0.0.1');
    const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    try {
      await Promise.all([new Promise((r) => server.once('listening', r)), new Promise((r) => expressServer.once('listening', r))]);
      const inPort = (server.address() as { port: number }).port;
      const expressPort = (expressServer.address() as { port: number }).port;
      const tap = await openTap(mesh);
      const secret = { authorization: 'Bearer SECRET-TOKEN', cookie: 'session=SECRET-COOKIE' };
      assert.equal((await call(mesh, 'http://reviews.default.svc.cluster.local:9080/reviews/1?token=SECRET-QUERY', { headers: secret })).status, 200);
      await tap.wait('end', 1);
      assert.equal((await fetch('http://reviews.default.svc.cluster.local:9080/teapot', { dispatcher: mesh.dispatcher } as RequestInit)).status, 418);
      await tap.wait('end', 2);
      assert.equal((await unary(client, { text: 'hi' })).error, undefined);
      await tap.wait('end', 3);
      assert.equal((await fetch(`http://127.0.0.1:${inPort}/inbound?api_key=SECRET-QUERY`, { headers: secret })).status, 200);
      await tap.wait('end', 4);
      assert.equal((await fetch(`http://127.0.0.1:${expressPort}/express/7?x=SECRET-QUERY`, { method: 'GET', headers: secret })).status, 201);
      const [, , , , last] = await tap.wait('end', 5);
      assert.equal(JSON.stringify(tap.records).includes('SECRET'), false, 'no query string, header value or body in a record');

      const reqs = tap.records.filter((r) => r.type === 'req');
      const ends = tap.records.filter((r) => r.type === 'end');
      assert.deepEqual(
        reqs.map((r) => [r.id, r.direction, r.protocol, r.method, r.path, r.route ?? null, r.tls]),
        [
          [1, 'out', 'http1', 'GET', '/reviews/1', 'reviews.all', false],
          [2, 'out', 'http1', 'GET', '/teapot', 'reviews.teapot', false],
          [3, 'out', 'grpc', 'POST', '/meshlet.test.Echo/Unary', 'default', false],
          [4, 'in', 'http1', 'GET', '/inbound', null, false],
          [5, 'in', 'http1', 'GET', '/express/7', null, false],
        ],
      );
      const [fetched, teapot, grpcReq, inbound, viaExpress] = reqs as [Rec, Rec, Rec, Rec, Rec];
      assert.equal(fetched.authority, 'reviews.default.svc.cluster.local:9080');
      assert.equal(fetched.cluster, 'outbound|9080||reviews.default.svc.cluster.local');
      assert.equal(fetched.dstAddress, `127.0.0.1:${reviews.port}`);
      assert.equal(fetched.dstService, 'reviews.default.svc.cluster.local');
      assert.equal(teapot.dstAddress, undefined, 'a direct response goes to no endpoint');
      assert.equal(grpcReq.cluster, 'outbound|9090||echo.default.svc.cluster.local');
      assert.equal(grpcReq.dstAddress, `127.0.0.1:${echo.port}`);
      assert.equal(inbound.cluster, `inbound|${inPort}||`);
      assert.equal(inbound.dstAddress, `127.0.0.1:${inPort}`);
      assert.match(String(inbound.srcAddress), /^127\.0\.0\.1:\d+$/);
      assert.equal(viaExpress.authority, `127.0.0.1:${expressPort}`);
      assert.deepEqual(
        ends.map((e) => [e.id, e.direction, e.status, e.grpcStatus ?? null, e.flags]),
        [
          [1, 'out', 200, null, '-'],
          [2, 'out', 418, null, '-'],
          [3, 'out', 200, 0, '-'],
          [4, 'in', 200, null, '-'],
          [5, 'in', 201, null, '-'],
        ],
      );
      assert.equal((ends[0] as Rec).attempts, 1);
      assert.equal((ends[0] as Rec).responseBytes, 'reviews'.length);
      assert.equal((ends[1] as Rec).attempts, 0);
      assert.equal(last?.details, 'via_upstream');
      for (const e of ends) assert.equal(typeof e.latencyMs, 'number');

      // mesh.close(): the stream ends with a `closed` record, and nothing stays subscribed.
      await mesh.close();
      await tap.ended;
      assert.deepEqual(tap.records.at(-1), { type: 'closed', reason: 'the mesh is closing' });
      assert.deepEqual(tapOnly(), [false]);
    } finally {
      client.close();
      await mesh.close();
      await new Promise((r) => server.close(r));
      await new Promise((r) => expressServer.close(r));
      await reviews.close();
      await echo.close();
    }
  });

  it('over mTLS: both sides say tls=true and name the SPIFFE IDs; a request AuthorizationPolicy denies ends with its 403 and why', { skip: skipWithout('openssl') }, async () => {
    const ca = makeCa({ name: 'cluster.local' });
    const strict = { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default', namespace: 'default' }, spec: { mtls: { mode: 'STRICT' } } };
    const deny = { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'no-admin', namespace: 'default' }, spec: { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin'] } }] }] } };
    const server = await createMesh({ service: 'reviews', serviceAccount: 'reviews', logger: quiet, admin: { port: 0 }, config: [strict, deny] });
    server.credentials.set(workloadCredentials(ca, { namespace: 'default', serviceAccount: 'reviews' }));
    const http = server.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    const port = (http.address() as { port: number }).port;
    const client = await createMesh({
      service: 'productpage',
      serviceAccount: 'productpage',
      logger: quiet,
      admin: { port: 0 },
      config: [
        { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'reviews', namespace: 'default' }, spec: { hosts: ['reviews.default.svc.cluster.local'], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: '127.0.0.1', ports: { http: port }, serviceAccount: 'reviews', labels: { 'security.istio.io/tlsMode': 'istio' } }] } },
        strict,
      ],
    });
    client.credentials.set(workloadCredentials(ca, { namespace: 'default', serviceAccount: 'productpage' }));
    try {
      const out = await openTap(client);
      const inb = await openTap(server);
      assert.equal((await call(client, 'http://reviews.default.svc.cluster.local:9080/reviews/1')).status, 200);
      assert.equal((await call(client, 'http://reviews.default.svc.cluster.local:9080/admin')).status, 403);
      const [outReq] = await out.wait('req', 2);
      assert.deepEqual([outReq?.tls, outReq?.srcPrincipal, outReq?.dstPrincipal], [true, 'spiffe://cluster.local/ns/default/sa/productpage', 'spiffe://cluster.local/ns/default/sa/reviews']);
      const [inReq] = await inb.wait('req', 2);
      assert.deepEqual([inReq?.direction, inReq?.tls, inReq?.dstPrincipal], ['in', true, 'spiffe://cluster.local/ns/default/sa/reviews']);
      const [okEnd, denied] = await inb.wait('end', 2);
      assert.equal(okEnd?.srcPrincipal, 'spiffe://cluster.local/ns/default/sa/productpage');
      assert.equal(denied?.status, 403);
      assert.match(String(denied?.details), /^rbac_access_denied_matched_policy\[/);
      assert.equal(JSON.stringify([...out.records, ...inb.records]).includes('PRIVATE KEY'), false);
    } finally {
      await client.close();
      await server.close();
      await new Promise((r) => http.close(r));
      cleanupPki();
    }
  });

  it('subscribes to the channels only while a client is connected: none before, none after it goes away', async () => {
    const mesh = await createMesh({ service: 'web', logger: quiet, admin: { port: 0 }, config: [] });
    try {
      assert.deepEqual(tapOnly(), [false], 'the admin endpoint alone subscribes none of them');
      const a = await openTap(mesh);
      const b = await openTap(mesh, '?direction=in');
      assert.deepEqual(tapOnly(), [true]);
      a.close();
      await until(() => a.res.destroyed, 'the first client gone');
      // Still one client: still subscribed.
      await openTap(mesh).then((c) => c.close());
      assert.deepEqual(tapOnly(), [true]);
      b.close();
      await until(() => !tapOnly().some((s) => s), 'no subscription once the last client went away');

      // At most MAX_TAP_CLIENTS at once: the next is refused (503), until one goes away.
      const many = await Promise.all(Array.from({ length: MAX_TAP_CLIENTS }, () => openTap(mesh)));
      const refused = await fetch(`${mesh.adminUrl}/tap`);
      assert.equal(refused.status, 503);
      assert.match(await refused.text(), new RegExp(`${MAX_TAP_CLIENTS} tap clients are connected already`));
      for (const c of many) c.close();
      await until(() => !tapOnly().some((s) => s), 'no subscription once they all went away');
      (await openTap(mesh)).close();
      await until(() => !tapOnly().some((s) => s), 'no subscription once the last one went away');

      // The admin endpoint's rules: a Host that is not loopback (DNS rebinding) is refused, as on every path.
      const rebound = await new Promise<IncomingMessage>((resolve, reject) => get(`${mesh.adminUrl}/tap`, { headers: { host: 'evil.example:15000' } }, resolve).on('error', reject));
      assert.equal(rebound.statusCode, 403);
      rebound.resume();
      assert.deepEqual(tapOnly(), [false]);

      // curl as an independent client: it gets records as they happen, and killing it lets go of the channels.
      if (skipWithout('curl') === false) {
        const curl = spawn('curl', ['-sN', `${mesh.adminUrl}/tap?direction=out`], { stdio: ['ignore', 'pipe', 'inherit'] });
        let got = '';
        curl.stdout.setEncoding('utf8').on('data', (d: string) => {
          got += d;
        });
        const exited = new Promise((r) => curl.once('close', r));
        await until(() => got.includes('"type":"start"'), 'curl got the start record');
        assert.deepEqual(tapOnly(), [true]);
        await mesh.fetch(`http://127.0.0.1:${await deadPort()}/x?k=SECRET`).then((r) => r.arrayBuffer());
        await until(() => got.includes('"type":"end"'), 'curl got the call');
        assert.equal(got.includes('SECRET'), false);
        curl.kill();
        await exited;
        await until(() => !tapOnly().some((s) => s), 'no subscription once curl is gone');
      }
    } finally {
      await mesh.close();
    }
  });

  it('filters by direction, method, authority, path prefix, route, cluster and status; a bad parameter is 400', async () => {
    const reviews = await startUpstream('reviews');
    const ratings = await startUpstream('ratings', answering(503, 'down'));
    const mesh = await createMesh({
      service: 'web',
      logger: quiet,
      admin: { port: 0 },
      config: [
        serviceEntry('reviews', 'reviews.default.svc.cluster.local', 9080, [{ port: reviews.port }]),
        serviceEntry('ratings', 'ratings.default.svc.cluster.local', 9080, [{ port: ratings.port }]),
        virtualService('ratings', ['ratings.default.svc.cluster.local'], [{ name: 'r', route: [{ destination: { host: 'ratings.default.svc.cluster.local' } }], retries: { attempts: 0 } }]),
      ],
    });
    const server = mesh.createServer((_req, res) => res.end('in')).listen(0, '127.0.0.1');
    try {
      await new Promise((r) => server.once('listening', r));
      const inPort = (server.address() as { port: number }).port;
      const taps = {
        in: await openTap(mesh, '?direction=in'),
        post: await openTap(mesh, '?method=post'),
        authority: await openTap(mesh, '?authority=ratings.default.svc.cluster.local'),
        path: await openTap(mesh, '?path=/reviews/'),
        route: await openTap(mesh, '?route=ratings.r'),
        cluster: await openTap(mesh, '?cluster=reviews'),
        status: await openTap(mesh, '?status=5xx'),
      };
      await call(mesh, 'http://reviews.default.svc.cluster.local:9080/reviews/1');
      await call(mesh, 'http://reviews.default.svc.cluster.local:9080/other', { method: 'POST', body: 'x' });
      await call(mesh, 'http://ratings.default.svc.cluster.local:9080/ratings/1');
      await fetch(`http://127.0.0.1:${inPort}/reviews/in`);
      // Every client saw every call end before this one (one tap of all, as the last witness).
      const all = await openTap(mesh);
      await call(mesh, 'http://reviews.default.svc.cluster.local:9080/last');
      await all.wait('end', 1);
      const paths = async (t: Tap, n: number) => (await t.wait('req', n)).map((r) => `${r.direction} ${r.path}`);
      assert.deepEqual(await paths(taps.in, 1), ['in /reviews/in']);
      assert.deepEqual(await paths(taps.post, 1), ['out /other']);
      assert.deepEqual(await paths(taps.authority, 1), ['out /ratings/1']);
      assert.deepEqual(await paths(taps.path, 2), ['out /reviews/1', 'in /reviews/in']);
      assert.deepEqual(await paths(taps.route, 1), ['out /ratings/1']);
      assert.deepEqual(await paths(taps.cluster, 3), ['out /reviews/1', 'out /other', 'out /last']);
      // With a status filter a request is shown once its response head (or its end) says it passes: its req, rsp and end.
      assert.deepEqual(taps.status.records.slice(1).map((r) => [r.type, r.id, r.path ?? r.status]), [['req', 1, '/ratings/1'], ['rsp', 1, 503], ['end', 1, 503]]);

      for (const [q, why] of [
        ['?direction=up', /direction must be in or out/],
        ['?status=500s', /status must be a class/],
        ['?max_rps=0', /max_rps must be a number above 0/],
        ['?path=reviews', /path must be a prefix starting with \//],
        ['?header=x', /unknown parameter "header"/],
      ] as const) {
        const r = await fetch(`${mesh.adminUrl}/tap${q}`);
        assert.equal(r.status, 400, q);
        assert.match(await r.text(), why);
      }
    } finally {
      await mesh.close();
      await new Promise((r) => server.close(r));
      await reviews.close();
      await ratings.close();
    }
  });

  it('max_rps on the mesh clock: requests over it are counted as dropped, never queued, and reported', async () => {
    const clock = new ManualClock(1000);
    const reviews = await startUpstream('reviews');
    const mesh = await createMesh({ service: 'web', logger: quiet, clock, admin: { port: 0 }, config: [serviceEntry('reviews', 'reviews.default.svc.cluster.local', 9080, [{ port: reviews.port }])] });
    try {
      const tap = await openTap(mesh, '?max_rps=2');
      for (let i = 0; i < 5; i++) await call(mesh, `http://reviews.default.svc.cluster.local:9080/a/${i}`);
      // The drops are reported within a second of the mesh's clock, without another request to carry them.
      clock.advance(1000);
      await tap.wait('dropped', 1);
      for (let i = 0; i < 3; i++) await call(mesh, `http://reviews.default.svc.cluster.local:9080/b/${i}`);
      await tap.wait('end', 4);
      clock.advance(1000);
      await tap.wait('dropped', 2);
      assert.deepEqual(
        tap.records.slice(1).map((r) => (r.type === 'dropped' ? `dropped ${r.rateLimited}` : `${r.type} ${r.type === 'req' ? r.path : r.id}`)),
        ['req /a/0', 'rsp 1', 'end 1', 'req /a/1', 'rsp 2', 'end 2', 'dropped 3', 'req /b/0', 'rsp 3', 'end 3', 'req /b/1', 'rsp 4', 'end 4', 'dropped 4'],
      );
      assert.equal(tap.records.at(-1)?.slowReader, 0);
    } finally {
      await mesh.close();
      await reviews.close();
    }
  });

  it('a reader that does not read: events past the buffer are dropped and counted (each accounted for), and the stream goes on once it reads', async () => {
    const mesh = await createMesh({ service: 'web', logger: quiet, clock: new ManualClock(1000), admin: { port: 0 }, config: [] });
    try {
      const tap = await openTap(mesh, '?max_rps=100000');
      tap.res.pause();
      // Calls published as the data plane publishes them, faster than any socket drains: more than
      // the kernel's buffers and the tap's own together.
      const n = 60_000;
      const call = (i: number) => {
        const c = {};
        channels.callStart.publish({ workload: mesh.identity, call: c, protocol: 'http1', method: 'GET', authority: 'reviews:9080', path: `/r/${i}`, headers: {} });
        channels.callEnd.publish({ workload: mesh.identity, call: c, protocol: 'http1', method: 'GET', authority: 'reviews:9080', path: `/r/${i}`, route: undefined, cluster: undefined, destinationService: undefined, endpoint: undefined, destination: undefined, status: 200, grpcStatus: -1, flags: '', attempts: 0, requestBytes: 0, responseBytes: 0, durationMs: 0, error: undefined });
      };
      for (let i = 0; i < n; i++) call(i);
      tap.res.resume();
      // Once it reads again, the next event carries the drop count first (published until one gets through).
      let published = n;
      await until(() => {
        if (tap.records.some((r) => r.type === 'end' && r.id !== undefined && tap.records.at(-1) === r && (tap.records.at(-2) as Rec).path === `/r/${published - 1}`)) return true;
        call(published++);
        return false;
      }, 'an event through once the reader caught up', 30_000, 5);
      const dropped = tap.records.filter((r) => r.type === 'dropped').at(-1) as Rec;
      const ends = tap.records.filter((r) => r.type === 'end').length;
      const bytes = tap.records.reduce((sum, r) => sum + JSON.stringify(r).length + 1, 0);
      assert.ok((dropped.slowReader as number) > 0, 'some events were dropped');
      // Every call is accounted for: its end shown, or its req or end counted as dropped.
      assert.equal(ends + (dropped.slowReader as number), published, JSON.stringify({ dropped, ends, published }));
      // What reached the reader is bounded by the tap's buffer plus the sockets' (not the calls' ~20 MB).
      assert.ok(bytes < 16 * 1024 * 1024, `${bytes} bytes arrived (buffer ${MAX_BUFFERED})`);
    } finally {
      await mesh.close();
    }
  });
});
