import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFERRED, headGrpcStatus, headStatus, isGrpcContentType, trailerGrpcStatus, trailerStatus } from './classify.ts';

describe('the response classifier, HTTP and gRPC', () => {
  const rows: { name: string; protocol: 'http1' | 'http2' | 'grpc'; status: number; headers: Record<string, string>; charged: number; grpc: number }[] = [
    { name: 'HTTP 200', protocol: 'http1', status: 200, headers: {}, charged: 200, grpc: -1 },
    { name: 'HTTP 503', protocol: 'http2', status: 503, headers: {}, charged: 503, grpc: -1 },
    { name: 'HTTP with a stray grpc-status is still HTTP', protocol: 'http1', status: 200, headers: { 'grpc-status': '14' }, charged: 200, grpc: 14 },
    { name: 'gRPC trailers-only UNAVAILABLE counts as 503', protocol: 'grpc', status: 200, headers: { 'grpc-status': '14' }, charged: 503, grpc: 14 },
    { name: 'gRPC trailers-only OK', protocol: 'grpc', status: 200, headers: { 'grpc-status': '0' }, charged: 200, grpc: 0 },
    { name: 'gRPC trailers-only RESOURCE_EXHAUSTED counts as 429', protocol: 'grpc', status: 200, headers: { 'grpc-status': '8' }, charged: 429, grpc: 8 },
    { name: 'gRPC head without status: deferred to the trailers', protocol: 'grpc', status: 200, headers: { 'content-type': 'application/grpc' }, charged: DEFERRED, grpc: -1 },
    { name: 'gRPC call answered with HTTP 503 by a proxy', protocol: 'grpc', status: 503, headers: {}, charged: 503, grpc: 14 },
    { name: 'gRPC call answered with HTTP 404', protocol: 'grpc', status: 404, headers: {}, charged: 404, grpc: 12 },
  ];
  for (const r of rows) {
    it(`head: ${r.name}`, () => {
      assert.equal(headStatus(r.protocol, r.status, r.headers), r.charged);
      assert.equal(headGrpcStatus(r.protocol, r.status, r.headers), r.grpc);
    });
  }

  it('end of stream: the trailers answer a deferred gRPC head; none is an error (500 / UNKNOWN)', () => {
    assert.equal(trailerStatus({ 'grpc-status': '14' }), 503);
    assert.equal(trailerGrpcStatus({ 'grpc-status': '14' }), 14);
    assert.equal(trailerStatus({ 'grpc-status': '0' }), 200);
    assert.equal(trailerStatus({}), 500);
    assert.equal(trailerStatus(undefined), 500);
    assert.equal(trailerGrpcStatus(undefined), 2);
  });

  it("a request is gRPC when its content-type is application/grpc or application/grpc+… (Envoy's isGrpcRequestHeaders)", () => {
    for (const ct of ['application/grpc', 'application/grpc+proto', 'application/grpc+json', 'application/grpc;charset=utf-8']) assert.ok(isGrpcContentType(ct), ct);
    for (const ct of [undefined, '', 'application/json', 'application/grpc-web', 'application/grpcx', 'text/grpc']) assert.ok(!isGrpcContentType(ct), String(ct));
    assert.ok(isGrpcContentType(['application/grpc']));
  });
});
