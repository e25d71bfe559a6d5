/**
 * Metadata both ways through the mesh. The endpoint gets the caller's own metadata (text and
 * `-bin` values as the caller set them), with what the route's header operations set, added and
 * removed — on every attempt alike, a retry's too (nothing added twice) — the names gRPC writes
 * itself never taken from the caller's metadata, and the caller's Metadata object left as it was.
 * The caller gets the endpoint's response metadata and trailers (text and `-bin`), without the
 * names grpc-js takes out of an answer (status, compression), with the route's response header operations applied, and the mesh's
 * response flags as the only copy of their header.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { type Echo, EchoClient, grpc, type GrpcUpstream, grpcServiceEntry, startGrpcUpstream, status, unary } from '../helpers/grpc.ts';

describe('gRPC request metadata through the mesh', () => {
  let up: GrpcUpstream;
  let mesh: Mesh;
  let client: Echo;
  /** What the server read on each call: metadata values, and whether it had a deadline. */
  const got: { md: Record<string, unknown>; deadline: boolean }[] = [];
  before(async () => {
    up = await startGrpcUpstream('a', {
      Unary: (call, cb, hit) => {
        got.push({ md: call.metadata.getMap(), deadline: call.getDeadline() !== Number.POSITIVE_INFINITY });
        if (hit % 2 === 1) {
          cb(status(grpc.status.UNAVAILABLE, 'try again'));
          return;
        }
        const head = new grpc.Metadata();
        head.set('x-head', 'h');
        head.set('x-head-bin', Buffer.from([9, 8, 7]));
        head.set('x-meshlet-response-flags', 'FAKE');
        head.set('x-envoy-overloaded', 'true');
        call.sendMetadata(head);
        const trailers = new grpc.Metadata();
        trailers.set('x-trailer', 't');
        trailers.set('x-envoy-overloaded', 'true');
        trailers.set('x-trailer-bin', Buffer.from([1, 2]));
        cb(null, { text: 'ok', server: 'a', seen: [] }, trailers);
      },
    });
    const host = 'echo.default.svc.cluster.local';
    const vs = {
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'echo', namespace: 'default' },
      spec: {
        hosts: [host],
        http: [
          {
            match: [{ headers: { 'x-which': { exact: 'b' } } }],
            route: [{ destination: { host } }],
            retries: { attempts: 2, retryOn: 'unavailable' },
            headers: { request: { set: { 'x-set': 'by-route-b' } }, response: { set: { 'x-head': 'by-route-b' }, remove: ['x-head-bin'] } },
          },
          {
            route: [{ destination: { host } }],
            retries: { attempts: 2, retryOn: 'unavailable' },
            headers: { request: { set: { 'x-set': 'by-route' }, add: { 'x-added': 'by-route' }, remove: ['x-removed'] } },
          },
        ],
      },
    };
    mesh = await createMesh({ service: 'client', config: [grpcServiceEntry('echo', host, 9090, [{ port: up.port }]), vs] });
    client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
  });
  after(async () => {
    client.close();
    await mesh.close();
    await up.close();
  });

  it("both attempts get the caller's metadata with the route's set/add/remove, nothing twice; the caller's Metadata is unchanged", async () => {
    const md = new grpc.Metadata();
    md.set('x-set', 'by-caller');
    md.set('x-removed', 'gone');
    md.set('x-kept', 'k');
    md.add('x-many', 'one');
    md.add('x-many', 'two');
    md.set('x-blob-bin', Buffer.from([0, 1, 254, 255]));
    // A name gRPC writes itself: never taken from the caller's metadata (no deadline here).
    md.set('grpc-timeout', '1S');
    // The caller's own router headers: removed, as an Istio sidecar removes the app's (core/clean-internal-headers.ts).
    md.set('x-envoy-retry-grpc-on', 'internal');
    md.set('x-envoy-max-retries', '5');
    md.set('x-envoy-hedge-on-per-try-timeout', 'true');
    // A certificate the caller does not hold: removed, as a sidecar's outbound listener removes the app's XFCC.
    md.set('x-forwarded-client-cert', 'By=spiffe://cluster.local/ns/default/sa/echo;URI=spiffe://cluster.local/ns/default/sa/admin');
    const r = await unary(client, { text: 'm' }, { metadata: md });
    assert.equal(r.error, undefined);
    assert.equal(r.reply?.text, 'ok');
    assert.equal(got.length, 2, 'the first attempt answered UNAVAILABLE and was retried');
    for (const [i, g] of got.entries()) {
      const m = g.md;
      assert.equal(m['x-set'], 'by-route', `attempt ${i + 1}: x-set`);
      assert.equal(m['x-added'], 'by-route', `attempt ${i + 1}: x-added`);
      assert.equal(m['x-removed'], undefined, `attempt ${i + 1}: x-removed`);
      assert.equal(m['x-kept'], 'k', `attempt ${i + 1}: x-kept`);
      assert.equal(m['x-many'], 'one, two', `attempt ${i + 1}: x-many`);
      assert.deepEqual(m['x-blob-bin'], Buffer.from([0, 1, 254, 255]), `attempt ${i + 1}: x-blob-bin`);
      assert.equal(typeof m['x-envoy-peer-metadata'], 'string', `attempt ${i + 1}: the peer-metadata exchange`);
      assert.equal(g.deadline, false, `attempt ${i + 1}: the caller's own grpc-timeout metadata is not sent`);
      assert.equal(m['x-envoy-max-retries'], undefined, `attempt ${i + 1}: x-envoy-max-retries`);
      assert.equal(m['x-envoy-retry-grpc-on'], undefined, `attempt ${i + 1}: x-envoy-retry-grpc-on`);
      assert.equal(m['x-envoy-hedge-on-per-try-timeout'], undefined, `attempt ${i + 1}: x-envoy-hedge-on-per-try-timeout`);
      assert.equal(m['x-forwarded-client-cert'], undefined, `attempt ${i + 1}: x-forwarded-client-cert`);
    }
    // The caller's Metadata object is the caller's: the mesh added nothing to it.
    assert.deepEqual(md.get('x-set'), ['by-caller']);
    assert.deepEqual(md.get('x-removed'), ['gone']);
    assert.deepEqual(md.get('x-added'), []);
    assert.deepEqual(md.get('x-envoy-peer-metadata'), []);
  });

  it('a header the routes set, with one value on some calls and another on others: each call gets its own route\'s', async () => {
    got.length = 0;
    for (const which of ['b', 'a', 'a', 'b']) {
      const md = new grpc.Metadata();
      md.set('x-which', which);
      const r = await unary(client, { text: 'm' }, { metadata: md });
      assert.equal(r.error, undefined);
    }
    // Each call is answered on its second attempt.
    assert.deepEqual(
      got.map((g) => g.md['x-set']),
      ['by-route-b', 'by-route-b', 'by-route', 'by-route', 'by-route', 'by-route', 'by-route-b', 'by-route-b'],
    );
  });

  it("the caller gets the endpoint's response metadata and trailers (text, -bin, its content-type), without the status, the compression filter's names or the endpoint's copies of the mesh's signals (flags, x-envoy-overloaded)", async () => {
    const r = await unary(client, { text: 'm' });
    assert.equal(r.error, undefined);
    const head = r.metadata?.getMap() ?? {};
    assert.equal(head['x-head'], 'h');
    assert.deepEqual(head['x-head-bin'], Buffer.from([9, 8, 7]));
    // The server's content-type is the caller's, as a raw grpc-js client gets it (response-metadata.test.ts).
    assert.equal(head['content-type'], 'application/grpc+proto');
    for (const k of ['grpc-encoding', 'grpc-accept-encoding', 'grpc-status', 'x-meshlet-response-flags', 'x-envoy-overloaded']) assert.equal(head[k], undefined, k);
    const trailers = r.trailers?.getMap() ?? {};
    assert.equal(trailers['x-trailer'], 't');
    assert.deepEqual(trailers['x-trailer-bin'], Buffer.from([1, 2]));
    for (const k of ['content-type', 'grpc-status', 'grpc-message', 'x-envoy-overloaded']) assert.equal(trailers[k], undefined, k);
  });

  it("the route's response header operations reach the caller's metadata", async () => {
    const md = new grpc.Metadata();
    md.set('x-which', 'b');
    const r = await unary(client, { text: 'm' }, { metadata: md });
    assert.equal(r.error, undefined);
    const head = r.metadata?.getMap() ?? {};
    assert.equal(head['x-head'], 'by-route-b');
    assert.equal(head['x-head-bin'], undefined);
    assert.equal(r.trailers?.get('x-trailer')[0], 't');
  });
});

describe("gRPC rich error details through the mesh (grpc-status-details-bin)", () => {
  let up: GrpcUpstream;
  let mesh: Mesh;
  let client: Echo;
  /** A google.rpc.Status as its bytes (code 5, message "nf"): the server's app sets it, the caller reads it. */
  const DETAILS = Buffer.from([8, 5, 18, 2, 110, 102]);
  before(async () => {
    up = await startGrpcUpstream('a', {
      Unary: (call, cb) => {
        // After its response metadata, or trailers-only.
        if (call.request.text === 'after-head') call.sendMetadata(new grpc.Metadata());
        const md = new grpc.Metadata();
        md.set('grpc-status-details-bin', DETAILS);
        cb(Object.assign(new Error('nf'), { code: grpc.status.NOT_FOUND, details: 'nf', metadata: md }));
      },
    });
    const host = 'echo.default.svc.cluster.local';
    mesh = await createMesh({ service: 'client', config: [grpcServiceEntry('echo', host, 9090, [{ port: up.port }])] });
    client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
  });
  after(async () => {
    client.close();
    await mesh.close();
    await up.close();
  });

  for (const text of ['trailers-only', 'after-head']) {
    it(`an error's grpc-status-details-bin reaches the caller as the server set it (${text}), as Envoy passes it`, async () => {
      const r = await unary(client, { text });
      assert.equal(r.error?.code, grpc.status.NOT_FOUND);
      assert.deepEqual(r.error?.metadata.get('grpc-status-details-bin'), [DETAILS]);
    });
  }
});
