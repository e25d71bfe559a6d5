import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GRPC_STATUS, GRPC_STATUS_NAMES, grpcStatusCode, grpcStatusName, grpcStatusOf, grpcToHttp, httpToGrpc } from './grpc-status.ts';

describe('the gRPC status table', () => {
  it('names and codes round-trip, in code order, 0..16', () => {
    assert.equal(GRPC_STATUS_NAMES.length, 17);
    GRPC_STATUS_NAMES.forEach((name, code) => {
      assert.equal(GRPC_STATUS[name], code);
      assert.equal(grpcStatusCode(name), code);
      assert.equal(grpcStatusName(code), name);
    });
    assert.equal(grpcStatusCode('constructor'), undefined, 'Object.prototype names are no status');
    assert.equal(grpcStatusCode('unavailable'), undefined, 'names are upper case, as Istio spells them');
    assert.equal(grpcStatusName(42), '42');
  });

  it("grpcToHttp is Envoy's grpcToHttpStatus (source/common/grpc/status.cc)", () => {
    const envoy: [string, number][] = [
      ['OK', 200], ['CANCELLED', 499], ['UNKNOWN', 500], ['INVALID_ARGUMENT', 400], ['DEADLINE_EXCEEDED', 504], ['NOT_FOUND', 404],
      ['ALREADY_EXISTS', 409], ['PERMISSION_DENIED', 403], ['RESOURCE_EXHAUSTED', 429], ['FAILED_PRECONDITION', 400], ['ABORTED', 409],
      ['OUT_OF_RANGE', 400], ['UNIMPLEMENTED', 501], ['INTERNAL', 500], ['UNAVAILABLE', 503], ['DATA_LOSS', 500], ['UNAUTHENTICATED', 401],
    ];
    for (const [name, http] of envoy) assert.equal(grpcToHttp(GRPC_STATUS[name as keyof typeof GRPC_STATUS]), http, name);
    assert.equal(grpcToHttp(17), 500, 'an invalid code is a 500');
    assert.equal(grpcToHttp(-1), 500);
  });

  it("httpToGrpc is gRPC's HTTP mapping, as Envoy's httpToGrpcStatus", () => {
    const rows: [number, string][] = [[400, 'INTERNAL'], [401, 'UNAUTHENTICATED'], [403, 'PERMISSION_DENIED'], [404, 'UNIMPLEMENTED'], [429, 'UNAVAILABLE'], [502, 'UNAVAILABLE'], [503, 'UNAVAILABLE'], [504, 'UNAVAILABLE'], [500, 'UNKNOWN'], [418, 'UNKNOWN']];
    for (const [http, name] of rows) assert.equal(grpcStatusName(httpToGrpc(http)), name, String(http));
  });

  it('grpcStatusOf reads grpc-status from headers or trailers', () => {
    assert.equal(grpcStatusOf({ 'grpc-status': '14' }), 14);
    assert.equal(grpcStatusOf({ 'grpc-status': ['0', '2'] }), 0);
    assert.equal(grpcStatusOf({}), -1);
    assert.equal(grpcStatusOf(undefined), -1);
    assert.equal(grpcStatusOf({ 'grpc-status': 'x' }), -1);
    assert.equal(grpcStatusOf({ 'grpc-status': '' }), -1);
    assert.equal(grpcStatusOf({ 'grpc-status': '-3' }), -1);
  });
});
