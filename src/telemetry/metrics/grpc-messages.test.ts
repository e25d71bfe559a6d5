/**
 * Istio's gRPC message counters (`istio_request_messages_total`, `istio_response_messages_total`):
 * added from the counts on the end messages, for gRPC calls only, with the labels of
 * `istio_requests_total`, both reporters, and the Telemetry API's GRPC_REQUEST_MESSAGES /
 * GRPC_RESPONSE_MESSAGES overrides.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mergeMetrics } from './config.ts';

import { callEnd, callEndCh, inboundEnd, inboundEndCh, metricsFixture } from '../../../test/helpers/istio-metrics.ts';

describe('Istio gRPC message metrics', () => {
  const f = metricsFixture();

  it("reporter=source: the counts of each gRPC call add up, under the reporter's and the peers' labels (the proxy reports them before it adds the request's)", async () => {
    callEndCh.publish(callEnd({ protocol: 'grpc', grpcStatus: 0, requestMessages: 1, responseMessages: 1 }));
    callEndCh.publish(callEnd({ protocol: 'grpc', grpcStatus: 0, requestMessages: 3, responseMessages: 5 }));
    // Another status, flags: another istio_requests_total series, the same message series.
    callEndCh.publish(callEnd({ protocol: 'grpc', grpcStatus: 14, flags: 'URX', requestMessages: 1, responseMessages: 0 }));
    const [rq, ...more] = await f.reader.points('istio_request_messages_total');
    const [rs] = await f.reader.points('istio_response_messages_total');
    const counts = await f.reader.points('istio_requests_total');
    assert.equal(more.length, 0);
    assert.equal(counts.length, 2);
    assert.equal(rq?.value, 5);
    assert.equal(rs?.value, 6);
    const { request_protocol, response_flags, connection_security_policy, response_code, grpc_response_status, ...peers } = counts[0]?.attributes ?? {};
    assert.equal(request_protocol, 'grpc');
    assert.deepEqual({ ...rq?.attributes }, peers);
    assert.deepEqual({ ...rs?.attributes }, peers);
    assert.equal(rq?.attributes['reporter'], 'source');
    assert.equal(rq?.attributes['destination_workload'], 'ratings-v1');
  });

  it('reporter=destination: the counts of each gRPC request add up', async () => {
    inboundEndCh.publish(inboundEnd({ protocol: 'grpc', grpcStatus: 0, requestMessages: 2, responseMessages: 0 }));
    inboundEndCh.publish(inboundEnd({ protocol: 'grpc', grpcStatus: 0, requestMessages: 1, responseMessages: 7 }));
    const [rq] = await f.reader.points('istio_request_messages_total');
    const [rs] = await f.reader.points('istio_response_messages_total');
    assert.equal(rq?.attributes['reporter'], 'destination');
    assert.equal('response_code' in (rq?.attributes ?? {}), false);
    assert.equal('connection_security_policy' in (rq?.attributes ?? {}), false);
    assert.equal(rq?.value, 3);
    assert.equal(rs?.value, 7);
  });

  it('only for gRPC: not for HTTP requests, nor for gRPC calls whose adapter did not count messages', async () => {
    callEndCh.publish(callEnd({ protocol: 'http1' }));
    inboundEndCh.publish(inboundEnd({ protocol: 'http2' }));
    // An HTTP adapter carrying a gRPC call (undici, an HTTP server) does not frame its messages.
    callEndCh.publish(callEnd({ protocol: 'grpc', grpcStatus: 0 }));
    inboundEndCh.publish(inboundEnd({ protocol: 'grpc', grpcStatus: 0 }));
    assert.equal((await f.reader.points('istio_requests_total')).length, 4);
    assert.equal((await f.reader.points('istio_request_messages_total')).length, 0);
    assert.equal((await f.reader.points('istio_response_messages_total')).length, 0);
  });

  it('a counted gRPC call after an uncounted one with the same labels still counts (the remembered series are per kind)', async () => {
    callEndCh.publish(callEnd({ protocol: 'grpc', grpcStatus: 0 }));
    callEndCh.publish(callEnd({ protocol: 'grpc', grpcStatus: 0, requestMessages: 2, responseMessages: 1 }));
    inboundEndCh.publish(inboundEnd({ protocol: 'grpc', grpcStatus: 0 }));
    inboundEndCh.publish(inboundEnd({ protocol: 'grpc', grpcStatus: 0, requestMessages: 2, responseMessages: 1 }));
    const points = await f.reader.points('istio_request_messages_total');
    assert.deepEqual(points.map((p) => [p.attributes['reporter'], p.value]).sort(), [
      ['destination', 2],
      ['source', 2],
    ]);
  });

  it('Telemetry overrides: GRPC_REQUEST_MESSAGES disabled, a tag on GRPC_RESPONSE_MESSAGES', async () => {
    f.m.configure(
      mergeMetrics(
        [
          {
            overrides: [
              { match: { metric: 'GRPC_REQUEST_MESSAGES' }, disabled: true },
              { match: { metric: 'GRPC_RESPONSE_MESSAGES', mode: 'CLIENT' }, tagOverrides: { method: { value: 'request.url_path' } } },
            ],
          },
        ],
        ['prometheus'],
        (p) => p === 'prometheus',
      ),
    );
    callEndCh.publish(callEnd({ protocol: 'grpc', grpcStatus: 0, path: '/shop.Ratings/Get', requestMessages: 1, responseMessages: 2 }));
    inboundEndCh.publish(inboundEnd({ protocol: 'grpc', grpcStatus: 0, requestMessages: 1, responseMessages: 3 }));
    assert.equal((await f.reader.points('istio_request_messages_total')).length, 0);
    const rs = await f.reader.points('istio_response_messages_total');
    const client = rs.find((p) => p.attributes['reporter'] === 'source');
    const server = rs.find((p) => p.attributes['reporter'] === 'destination');
    assert.equal(client?.value, 2);
    assert.equal(client?.attributes['method'], '/shop.Ratings/Get');
    assert.equal('grpc_response_status' in (client?.attributes ?? {}), false);
    assert.equal(server?.value, 3);
    assert.equal('method' in (server?.attributes ?? {}), false);
    // The other metrics are unchanged.
    assert.equal((await f.reader.points('istio_requests_total')).length, 2);
  });

  it('ALL_METRICS disabled for a mode turns the message counters off with the rest', async () => {
    f.m.configure(mergeMetrics([{ overrides: [{ match: { metric: 'ALL_METRICS', mode: 'SERVER' }, disabled: true }] }], ['prometheus'], (p) => p === 'prometheus'));
    inboundEndCh.publish(inboundEnd({ protocol: 'grpc', grpcStatus: 0, requestMessages: 1, responseMessages: 1 }));
    callEndCh.publish(callEnd({ protocol: 'grpc', grpcStatus: 0, requestMessages: 1, responseMessages: 1 }));
    const points = await f.reader.points('istio_response_messages_total');
    assert.deepEqual(points.map((p) => p.attributes['reporter']), ['source']);
  });
});
