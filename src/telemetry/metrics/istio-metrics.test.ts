import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DataPoint, Histogram } from '@opentelemetry/sdk-metrics';
import type { AttemptStartMessage, CallEndMessage, InboundEndMessage } from '../../core/observe.ts';
import { ENVOY_DEFAULT_BUCKETS } from './istio-metrics.ts';
import { addSeriesConsumer } from './outlet.ts';
import { encodePeerMetadata, localPeerMetadata } from './peer-metadata.ts';

import { attemptStartCh, callEnd, callEndCh, identity, inboundEnd, inboundEndCh, metricsFixture, other } from '../../../test/helpers/istio-metrics.ts';

describe('Istio standard metrics', () => {
  const f = metricsFixture();

  it('reporter=source: every label, from the call and the endpoint registry entry', async () => {
    callEndCh.publish(callEnd());
    const [p, ...rest] = await f.reader.points('istio_requests_total');
    assert.equal(rest.length, 0);
    assert.equal(p?.value, 1);
    assert.deepEqual({ ...p?.attributes }, {
      reporter: 'source',
      source_workload: 'reviews-v2',
      source_workload_namespace: 'shop',
      source_principal: 'unknown',
      source_app: 'reviews',
      source_version: 'v2',
      source_canonical_service: 'reviews',
      source_canonical_revision: 'v2',
      source_cluster: 'Kubernetes',
      destination_workload: 'ratings-v1',
      destination_workload_namespace: 'shop',
      destination_principal: 'unknown',
      // The endpoint encoding carries no app/version (as in Istio's client-side fallback).
      destination_app: 'unknown',
      destination_version: 'unknown',
      destination_service: 'ratings.shop.svc.cluster.local',
      destination_service_name: 'ratings',
      destination_service_namespace: 'shop',
      destination_canonical_service: 'ratings',
      destination_canonical_revision: 'v1',
      destination_cluster: 'Kubernetes',
      request_protocol: 'http',
      response_flags: '-',
      connection_security_policy: 'unknown',
      response_code: '200',
      grpc_response_status: '',
    });
  });

  it('reporter=source without an endpoint (no route): Host header fallback, unknowns, flags', async () => {
    callEndCh.publish(callEnd({ route: undefined, cluster: undefined, destinationService: undefined, endpoint: undefined, destination: undefined, status: 404, flags: 'NR', authority: 'nowhere:80' }));
    const [p] = await f.reader.points('istio_requests_total');
    const a = p?.attributes ?? {};
    assert.equal(a['destination_service'], 'nowhere:80');
    assert.equal(a['destination_service_name'], 'nowhere:80');
    assert.equal(a['destination_workload'], 'unknown');
    assert.equal(a['destination_workload_namespace'], 'unknown');
    assert.equal(a['destination_canonical_service'], 'unknown');
    assert.equal(a['destination_canonical_revision'], 'latest');
    assert.equal(a['response_code'], '404');
    assert.equal(a['response_flags'], 'NR');
  });

  it('reporter=destination: source workload from x-envoy-peer-metadata, principal and namespace from the mTLS peer', async () => {
    const peer = localPeerMetadata({ workload: 'productpage-v1', namespace: 'front', labels: { app: 'productpage', version: 'v1' }, cluster: 'Kubernetes' });
    inboundEndCh.publish(
      inboundEnd({
        headers: { 'x-envoy-peer-metadata-id': 'sidecar~1.2.3.4~productpage-v1.front~front.svc.cluster.local', 'x-envoy-peer-metadata': encodePeerMetadata(peer) },
        mtls: true,
        peer: { principal: 'spiffe://cluster.local/ns/front/sa/productpage', trustDomain: 'cluster.local', namespace: 'front', serviceAccount: 'productpage', address: '127.0.0.1' },
        status: 503,
        flags: 'UH',
      }),
    );
    const [p] = await f.reader.points('istio_requests_total');
    assert.deepEqual({ ...p?.attributes }, {
      reporter: 'destination',
      source_workload: 'productpage-v1',
      source_workload_namespace: 'front',
      source_principal: 'spiffe://cluster.local/ns/front/sa/productpage',
      source_app: 'productpage',
      source_version: 'v1',
      source_canonical_service: 'productpage',
      source_canonical_revision: 'v1',
      source_cluster: 'Kubernetes',
      destination_workload: 'reviews-v2',
      destination_workload_namespace: 'shop',
      destination_principal: 'spiffe://cluster.local/ns/shop/sa/reviews',
      destination_app: 'reviews',
      destination_version: 'v2',
      destination_service: 'reviews.shop.svc.cluster.local',
      destination_service_name: 'reviews',
      destination_service_namespace: 'shop',
      destination_canonical_service: 'reviews',
      destination_canonical_revision: 'v2',
      destination_cluster: 'Kubernetes',
      request_protocol: 'http',
      response_flags: 'UH',
      connection_security_policy: 'mutual_tls',
      response_code: '503',
      grpc_response_status: '',
    });
  });

  it('reporter=destination, plaintext and no peer metadata: unknown source, connection_security_policy none', async () => {
    inboundEndCh.publish(inboundEnd({ headers: { 'x-envoy-peer-metadata': '!!not base64 struct' } }));
    const [p] = await f.reader.points('istio_requests_total');
    const a = p?.attributes ?? {};
    for (const k of ['source_workload', 'source_workload_namespace', 'source_principal', 'source_app', 'source_version', 'source_canonical_service', 'source_cluster', 'destination_principal']) assert.equal(a[k], 'unknown', k);
    assert.equal(a['source_canonical_revision'], 'latest');
    assert.equal(a['connection_security_policy'], 'none');
  });

  it('reporter=destination: each request under its own labels, whatever the request before it gave (status, flags, gRPC status, protocol, peer, mTLS)', async () => {
    const peerA = { principal: 'spiffe://cluster.local/ns/front/sa/a', trustDomain: 'cluster.local', namespace: 'front', serviceAccount: 'a', address: '127.0.0.1' };
    const peerB = { ...peerA, principal: 'spiffe://cluster.local/ns/front/sa/b', serviceAccount: 'b' };
    const productpage = localPeerMetadata({ workload: 'productpage-v1', namespace: 'front', labels: { app: 'productpage', version: 'v1' }, cluster: 'Kubernetes' });
    const sequence: Partial<InboundEndMessage>[] = [
      { status: 200 },
      { status: 200 },
      { status: 404 },
      { status: 404, flags: 'NR' },
      { status: 200, grpcStatus: 5, protocol: 'grpc' },
      { status: 200, grpcStatus: 14, protocol: 'grpc' },
      { status: 200, mtls: true, peer: peerA },
      { status: 200, mtls: true, peer: peerB },
      { status: 200 },
      { status: 200, mtls: true },
      { status: 200, protocol: 'grpc' },
      { status: 200, headers: { 'x-envoy-peer-metadata-id': 'sidecar~1.2.3.4~productpage-v1.front~front.svc.cluster.local', 'x-envoy-peer-metadata': encodePeerMetadata(productpage) } },
      { status: 200 },
    ];
    for (const over of sequence) inboundEndCh.publish(inboundEnd(over));
    const points = await f.reader.points('istio_requests_total');
    const got = points.map((p) => `${p.attributes['response_code']} ${p.attributes['response_flags']} ${p.attributes['request_protocol']}/${p.attributes['grpc_response_status']} ${p.attributes['source_principal']} ${p.attributes['connection_security_policy']} ${p.attributes['source_workload']} ${p.attributes['destination_principal']} = ${p.value}`).sort();
    assert.deepEqual(got, [
      '200 - grpc/ unknown none unknown unknown = 1',
      '200 - grpc/14 unknown none unknown unknown = 1',
      '200 - grpc/5 unknown none unknown unknown = 1',
      '200 - http/ spiffe://cluster.local/ns/front/sa/a mutual_tls unknown spiffe://cluster.local/ns/shop/sa/reviews = 1',
      '200 - http/ spiffe://cluster.local/ns/front/sa/b mutual_tls unknown spiffe://cluster.local/ns/shop/sa/reviews = 1',
      '200 - http/ unknown none productpage-v1 unknown = 1',
      '200 - http/ unknown none unknown spiffe://cluster.local/ns/shop/sa/reviews = 1',
      '200 - http/ unknown none unknown unknown = 4',
      '404 - http/ unknown none unknown unknown = 1',
      '404 NR http/ unknown none unknown unknown = 1',
    ]);
  });

  it('reporter=source: each call under its own labels, whatever the call before it gave (status, flags, gRPC status, protocol, destination, Host fallback, mTLS)', async () => {
    const reviews = 'spiffe://cluster.local/ns/shop/sa/reviews';
    const ratings = 'spiffe://cluster.local/ns/shop/sa/ratings';
    let tls: { local: string; peer: string } | undefined;
    for (const x of f.made.splice(0)) x.close();
    f.m = f.make({ upstreamPrincipals: () => tls });
    // One endpoint's labels object, as the kernel hands it to every call to that endpoint.
    const v1 = { app: 'ratings', version: 'v1', 'service.istio.io/workload-name': 'ratings-v1' };
    const v2 = { app: 'ratings', version: 'v2', 'service.istio.io/workload-name': 'ratings-v2' };
    const to = (labels: Record<string, string>, namespace = 'shop') => ({ serviceAccount: 'ratings', namespace, labels });
    const noService = { route: undefined, cluster: undefined, destinationService: undefined, endpoint: undefined, destination: undefined };
    const sequence: (Partial<CallEndMessage> & { tls?: { local: string; peer: string } })[] = [
      // Each call differs from the one before it in one input.
      { destination: to(v1) },
      { destination: to(v1) },
      { destination: to(v2) },
      { destination: to(v1) },
      { destination: to(v1, 'other') },
      { destination: to(v1) },
      { destination: to(v1), destinationService: 'details.shop.svc.cluster.local' },
      { destination: to(v1), destinationService: 'details.shop.svc.cluster.local', status: 503 },
      { destination: to(v1), destinationService: 'details.shop.svc.cluster.local', status: 503, flags: 'UF' },
      { destination: to(v1), protocol: 'grpc', grpcStatus: 5 },
      { destination: to(v1), protocol: 'grpc', grpcStatus: 14 },
      { destination: to(v1), protocol: 'http2', grpcStatus: 14 },
      { destination: to(v1), protocol: 'http2' },
      { destination: to(v1), protocol: 'grpc' },
      { ...noService, authority: 'a:80' },
      { ...noService, authority: 'b:80' },
      { ...noService, authority: 'b:80', cluster: 'PassthroughCluster' },
      { destination: to(v1) },
      { destination: to(v1), tls: { local: reviews, peer: ratings } },
      { destination: to(v1), tls: { local: reviews, peer: `${ratings}-2` } },
      { destination: to(v1), tls: { local: `${reviews}-2`, peer: `${ratings}-2` } },
      { destination: to(v1) },
    ];
    for (const { tls: principals, ...over } of sequence) {
      tls = principals;
      callEndCh.publish(callEnd(over));
    }
    const points = await f.reader.points('istio_requests_total');
    const got = points
      .map((p) => {
        const a = p.attributes;
        return `${a['response_code']} ${a['response_flags']} ${a['request_protocol']}/${a['grpc_response_status']} ${a['destination_workload']} ${a['destination_workload_namespace']} ${a['destination_service']} ${a['destination_service_name']} ${a['source_principal']} ${a['destination_principal']} = ${p.value}`;
      })
      .sort();
    assert.deepEqual(got, [
      '200 - grpc/ ratings-v1 shop ratings.shop.svc.cluster.local ratings unknown unknown = 1',
      '200 - grpc/14 ratings-v1 shop ratings.shop.svc.cluster.local ratings unknown unknown = 1',
      '200 - grpc/5 ratings-v1 shop ratings.shop.svc.cluster.local ratings unknown unknown = 1',
      '200 - http/ ratings-v1 other ratings.shop.svc.cluster.local ratings unknown unknown = 1',
      '200 - http/ ratings-v1 shop details.shop.svc.cluster.local details unknown unknown = 1',
      '200 - http/ ratings-v1 shop ratings.shop.svc.cluster.local ratings spiffe://cluster.local/ns/shop/sa/reviews spiffe://cluster.local/ns/shop/sa/ratings = 1',
      '200 - http/ ratings-v1 shop ratings.shop.svc.cluster.local ratings spiffe://cluster.local/ns/shop/sa/reviews spiffe://cluster.local/ns/shop/sa/ratings-2 = 1',
      '200 - http/ ratings-v1 shop ratings.shop.svc.cluster.local ratings spiffe://cluster.local/ns/shop/sa/reviews-2 spiffe://cluster.local/ns/shop/sa/ratings-2 = 1',
      // http1 and http2 share request_protocol="http", and an HTTP call has no grpc_response_status: one series.
      '200 - http/ ratings-v1 shop ratings.shop.svc.cluster.local ratings unknown unknown = 8',
      '200 - http/ ratings-v2 shop ratings.shop.svc.cluster.local ratings unknown unknown = 1',
      '200 - http/ unknown unknown a:80 a:80 unknown unknown = 1',
      '200 - http/ unknown unknown b:80 PassthroughCluster unknown unknown = 1',
      '200 - http/ unknown unknown b:80 b:80 unknown unknown = 1',
      '503 - http/ ratings-v1 shop details.shop.svc.cluster.local details unknown unknown = 1',
      '503 UF http/ ratings-v1 shop details.shop.svc.cluster.local details unknown unknown = 1',
    ]);
  });

  it('reporter=source: calls spread over endpoints each keep their own series (the inputs remembered per destination entry)', async () => {
    // Three endpoints of one service, each with its own labels object, taken in turn; status and flags change under them.
    const eps = ['v1', 'v2', 'v3'].map((v) => ({ serviceAccount: 'ratings', namespace: 'shop', labels: { app: 'ratings', version: v, 'service.istio.io/workload-name': `ratings-${v}` } }));
    const calls: Partial<CallEndMessage>[] = [];
    for (let i = 0; i < 12; i++) calls.push({ destination: eps[i % 3], ...(i === 4 || i === 8 ? { status: 503, flags: 'URX' } : {}) });
    for (const c of calls) callEndCh.publish(callEnd(c));
    const got = (await f.reader.points('istio_requests_total')).map((p) => `${p.attributes['destination_workload']} ${p.attributes['response_code']} ${p.attributes['response_flags']} = ${p.value}`).sort();
    assert.deepEqual(got, ['ratings-v1 200 - = 4', 'ratings-v2 200 - = 3', 'ratings-v2 503 URX = 1', 'ratings-v3 200 - = 3', 'ratings-v3 503 URX = 1']);
  });

  it('reporter=destination: requests from several callers taken in turn each keep their own series (the inputs remembered per caller)', async () => {
    // Three calling pods (their peer metadata), in turn; status and flags change under them.
    const callers = ['v1', 'v2', 'v3'].map((v) => {
      const md = localPeerMetadata({ workload: `productpage-${v}`, namespace: 'front', labels: { app: 'productpage', version: v }, cluster: 'Kubernetes' });
      return { 'x-envoy-peer-metadata-id': `sidecar~10.0.0.${v.slice(1)}~productpage-${v}.front~front.svc.cluster.local`, 'x-envoy-peer-metadata': encodePeerMetadata(md) };
    });
    for (let i = 0; i < 12; i++) inboundEndCh.publish(inboundEnd({ headers: callers[i % 3], ...(i === 4 || i === 8 ? { status: 503, flags: 'UO' } : {}) }));
    const got = (await f.reader.points('istio_requests_total')).map((p) => `${p.attributes['source_workload']} ${p.attributes['source_version']} ${p.attributes['response_code']} ${p.attributes['response_flags']} = ${p.value}`).sort();
    assert.deepEqual(got, ['productpage-v1 v1 200 - = 4', 'productpage-v2 v2 200 - = 3', 'productpage-v2 v2 503 UO = 1', 'productpage-v3 v3 200 - = 3', 'productpage-v3 v3 503 UO = 1']);
  });

  it("reporter=destination: a caller's remembered inputs are not used once their series was evicted", async () => {
    for (const x of f.made.splice(0)) x.close();
    f.m = f.make({}, { maxSeries: 2, idleSeriesMs: 1000 });
    const [a, b] = ['v1', 'v2'].map((v) => ({ 'x-envoy-peer-metadata-id': `sidecar~10.0.0.1~productpage-${v}.front~front.svc.cluster.local`, 'x-envoy-peer-metadata': encodePeerMetadata(localPeerMetadata({ workload: `productpage-${v}`, namespace: 'front', labels: { app: 'productpage', version: v }, cluster: 'Kubernetes' })) }));
    inboundEndCh.publish(inboundEnd({ headers: a }));
    f.now = 5000;
    // b's series is new; the sweep on the way drops a's idle one (a is no longer the last request's caller).
    inboundEndCh.publish(inboundEnd({ headers: b }));
    inboundEndCh.publish(inboundEnd({ headers: b, status: 503 }));
    assert.equal(f.m.overflows['istio_requests_total'], 0);
    // The store is full (b 200, b 503): a's request must look for its series again, and overflows.
    inboundEndCh.publish(inboundEnd({ headers: a }));
    assert.equal(f.m.overflows['istio_requests_total'], 1);
  });

  it("reporter=source: an endpoint's remembered inputs are not used once their series was evicted", async () => {
    for (const x of f.made.splice(0)) x.close();
    f.m = f.make({}, { maxSeries: 2, idleSeriesMs: 1000 });
    const a = { serviceAccount: 'ratings', namespace: 'shop', labels: { app: 'ratings', version: 'v1' } };
    const b = { serviceAccount: 'ratings', namespace: 'shop', labels: { app: 'ratings', version: 'v2' } };
    callEndCh.publish(callEnd({ destination: a }));
    f.now = 5000;
    // b's series is new; the sweep on the way drops a's idle one (a is no longer the last call's destination).
    callEndCh.publish(callEnd({ destination: b }));
    callEndCh.publish(callEnd({ destination: b, status: 503 }));
    assert.equal(f.m.overflows['istio_requests_total'], 0);
    // The store is full (b 200, b 503): a's call must look for its series again, and overflows.
    callEndCh.publish(callEnd({ destination: a }));
    assert.equal(f.m.overflows['istio_requests_total'], 1);
  });

  it("reporter=source: a call like the one before is not put in that one's series once it was evicted", async () => {
    for (const x of f.made.splice(0)) x.close();
    f.m = f.make({}, { maxSeries: 1, idleSeriesMs: 1000 });
    const destination = { serviceAccount: 'ratings', namespace: 'shop', labels: { app: 'ratings' } };
    callEndCh.publish(callEnd({ destination }));
    f.now = 5000;
    // A server-side data point sweeps the idle client-side series and takes the only room.
    inboundEndCh.publish(inboundEnd({ status: 200 }));
    assert.equal(f.m.overflows['istio_requests_total'], 0);
    callEndCh.publish(callEnd({ destination }));
    assert.equal(f.m.overflows['istio_requests_total'], 1);
  });

  it("reporter=destination: a request like the one before is not put in that one's series once it was evicted", async () => {
    for (const x of f.made.splice(0)) x.close();
    f.m = f.make({}, { maxSeries: 1, idleSeriesMs: 1000 });
    inboundEndCh.publish(inboundEnd({ status: 200 }));
    f.now = 5000;
    // A client-side data point sweeps the idle server-side series and takes the only room.
    callEndCh.publish(callEnd({ status: 200 }));
    assert.equal(f.m.overflows['istio_requests_total'], 0);
    inboundEndCh.publish(inboundEnd({ status: 200 }));
    assert.equal(f.m.overflows['istio_requests_total'], 1);
  });

  it("reporter=destination: a series is last seen at the end message's clock reading (endedAt), the clock not read again", async () => {
    for (const x of f.made.splice(0)) x.close();
    let reads = 0;
    const now = (): number => {
      reads++;
      return f.now;
    };
    f.m = f.make({ now }, { maxSeries: 1, idleSeriesMs: 1000 });
    inboundEndCh.publish(inboundEnd({ status: 200 }));
    reads = 0;
    f.now = 200;
    inboundEndCh.publish(inboundEnd({ status: 200, endedAt: 5000 }));
    assert.equal(reads, 0);
    f.now = 5500;
    // Seen at 5000 (not 200): not idle at 5500, so a new label set finds no room.
    callEndCh.publish(callEnd({ status: 200 }));
    assert.equal(f.m.overflows['istio_requests_total'], 1);
  });

  it('a metric that gets no new data points forgets its idle label sets too (the gRPC message counters under HTTP calls)', () => {
    for (const x of f.made.splice(0)) x.close();
    // meshlet's own series (a metric producer reads them): what a store holds is what is exported.
    const reader = addSeriesConsumer();
    const held = (name: string): number[] => [...reader.sources()].map((src) => src.metrics.get(name)?.store.size ?? -1);
    try {
      f.now = 0;
      f.m = f.make({}, { idleSeriesMs: 1000 });
      callEndCh.publish(callEnd({ protocol: 'grpc', requestMessages: 2, responseMessages: 3 }));
      assert.deepEqual(held('istio_request_messages_total'), [1]);
      f.now = 5000;
      callEndCh.publish(callEnd());
      assert.deepEqual(held('istio_request_messages_total'), [0]);
      assert.deepEqual(held('istio_requests_total'), [1]);
    } finally {
      reader.release();
    }
  });

  it('gRPC: request_protocol grpc and grpc_response_status', async () => {
    inboundEndCh.publish(inboundEnd({ protocol: 'grpc', status: 200, grpcStatus: 14 }));
    const [p] = await f.reader.points('istio_requests_total');
    assert.equal(p?.attributes['request_protocol'], 'grpc');
    assert.equal(p?.attributes['grpc_response_status'], '14');
    assert.equal(p?.attributes['response_code'], '200');
  });

  it('histograms: Envoy default buckets, duration in ms, bytes', async () => {
    callEndCh.publish(callEnd({ durationMs: 7, requestBytes: 10, responseBytes: 200 }));
    callEndCh.publish(callEnd({ durationMs: 3000, requestBytes: 10, responseBytes: 200 }));
    const [d] = await f.reader.points('istio_request_duration_milliseconds');
    const h = d?.value as Histogram;
    assert.deepEqual(h.buckets.boundaries, [...ENVOY_DEFAULT_BUCKETS]);
    assert.equal(h.count, 2);
    assert.equal(h.sum, 3007);
    assert.equal(h.buckets.counts[ENVOY_DEFAULT_BUCKETS.indexOf(10)], 1); // 7 ms in (5, 10]
    assert.equal(h.buckets.counts[ENVOY_DEFAULT_BUCKETS.indexOf(5000)], 1); // 3000 ms in (2500, 5000]
    const [rq] = await f.reader.points('istio_request_bytes');
    const [rs] = await f.reader.points('istio_response_bytes');
    assert.equal((rq as DataPoint<Histogram>).value.sum, 20);
    assert.equal((rs as DataPoint<Histogram>).value.sum, 400);
  });

  it("another mesh's messages are not this mesh's", async () => {
    callEndCh.publish(callEnd({ workload: other }));
    inboundEndCh.publish(inboundEnd({ workload: other }));
    assert.equal((await f.reader.points('istio_requests_total')).length, 0);
  });

  it('peer metadata headers go on attempts to in-mesh destinations only', () => {
    for (const x of f.made.splice(0)) x.close();
    const inMeshCalls = new WeakSet<object>();
    f.m = f.make({ inMesh: (c) => inMeshCalls.has(c) });
    const internal = { headers: {} as Record<string, string> };
    const external = { headers: {} as Record<string, string> };
    inMeshCalls.add(internal);
    const start = (call: object, workload = identity): void => attemptStartCh.publish({ workload, call, attempt: 1, cluster: 'c', endpoint: undefined } satisfies AttemptStartMessage);
    start(internal);
    start(external);
    assert.equal(internal.headers['x-envoy-peer-metadata-id'], 'sidecar~10.1.1.1~reviews-v2.shop~shop.svc.cluster.local');
    assert.equal(internal.headers['x-envoy-peer-metadata'], f.m.peerHeaders.value);
    assert.deepEqual(external.headers, {});
    const foreign = { headers: {} as Record<string, string> };
    inMeshCalls.add(foreign);
    start(foreign, other);
    assert.deepEqual(foreign.headers, {});
  });
});
