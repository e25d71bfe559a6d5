import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkEnvoyHttpAls, checkEnvoyTcpAls, resolveHttpAls } from './als-config.ts';

describe('envoyHttpAls / envoyTcpAls providers', () => {
  it('resolves as istiod does: log name http_envoy_accesslog, filter state upstream_peer and downstream_peer, header names lower-cased', () => {
    assert.deepEqual(resolveHttpAls({ service: 'als.obs.svc.cluster.local', port: 15000, additionalRequestHeadersToLog: ['X-Custom'] }), {
      service: 'als.obs.svc.cluster.local',
      port: 15000,
      logName: 'http_envoy_accesslog',
      filterStateObjects: ['upstream_peer', 'downstream_peer'],
      requestHeaders: ['x-custom'],
      responseHeaders: [],
      responseTrailers: [],
    });
    const r = resolveHttpAls({ service: 'a.b', port: 1, logName: 'audit', filterStateObjectsToLog: ['wasm.upstream_peer'] });
    assert.equal(r.logName, 'audit');
    assert.deepEqual(r.filterStateObjects, ['wasm.upstream_peer']);
  });

  it('refuses what Istio refuses (service, port) and lists that are not header names, naming the field', () => {
    assert.deepEqual(checkEnvoyHttpAls({ service: 'als.obs.svc.cluster.local', port: 15000, additionalResponseTrailersToLog: ['grpc-status'] }), []);
    assert.deepEqual(checkEnvoyHttpAls({ service: 'als:15000', port: 0 }), [
      'invalid service "als:15000": not a host name (label "als:15000" invalid) or IP address (the port goes in `port`)',
      'port must be in the range [1, 65535], found: 0',
    ]);
    assert.deepEqual(checkEnvoyHttpAls({ service: 'a.b', port: 1, additionalRequestHeadersToLog: ['ok', 'bad header', 3], filterStateObjectsToLog: 'x', logNme: 'typo' }), [
      'unknown field "logNme"',
      'filterStateObjectsToLog must be a list of strings',
      'additionalRequestHeadersToLog[1]: "bad header" is not a header name',
      'additionalRequestHeadersToLog[2] must be a non-empty string',
    ]);
    assert.deepEqual(checkEnvoyHttpAls('x'), ['must be an object { service, port, logName?, filterStateObjectsToLog?, additionalRequestHeadersToLog?, additionalResponseHeadersToLog?, additionalResponseTrailersToLog? }']);
    assert.deepEqual(checkEnvoyTcpAls({ service: 'a.b', port: 70000, additionalRequestHeadersToLog: [] }), ['unknown field "additionalRequestHeadersToLog"', 'port must be in the range [1, 65535], found: 70000']);
  });
});
