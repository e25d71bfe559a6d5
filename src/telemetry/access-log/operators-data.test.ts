import assert from 'node:assert/strict';
import { channel } from 'node:diagnostics_channel';
import { describe, it } from 'node:test';
import { ManualClock } from '../../core/clock.ts';
import { channels, type InboundEndMessage } from '../../core/observe.ts';
import { responseChannels } from '../../core/observe-response.ts';
import { type RequestRecord, serverRecord } from '../record.ts';
import { AccessLogger } from './access-logger.ts';
import { compileJsonFormat, compileTextFormat, FormatError, type OperatorNeed } from './format.ts';
import { rfc2253, sansOf } from '../../core/certificate-text.ts';
import { sessionIdOf } from './tls-details.ts';

const workload = { service: 'reviews', namespace: 'default', labels: {}, serviceAccount: 'reviews' };
const inbound: InboundEndMessage = {
  workload,
  request: {},
  protocol: 'grpc',
  method: 'POST',
  scheme: 'http',
  authority: 'reviews:9080',
  path: '/pkg.Svc/Get',
  headers: { 'content-type': 'application/grpc', 'x-request-id': 'rid-9' },
  status: 200,
  grpcStatus: 5,
  flags: '',
  details: 'via_upstream',
  deniedBy: undefined,
  requestBytes: 0,
  responseBytes: 7,
  durationMs: 20,
  mtls: false,
  peer: undefined,
  requestPrincipal: undefined,
  authzPolicy: undefined,
  remoteAddress: '10.0.0.5',
  remotePort: 40000,
  localAddress: '10.0.0.7',
  localPort: 9080,
  sni: undefined,
  responseHeaders: { 'content-type': 'application/grpc' },
  error: undefined,
};
const rec = (over: Partial<InboundEndMessage> = {}, latencyMs?: number): RequestRecord => serverRecord({ ...inbound, ...over }, latencyMs === undefined ? {} : { response: { latencyMs, local: false } });
const line = (format: string, r: RequestRecord = rec()): string => compileTextFormat(format)(r).trimEnd();

describe('what compiled formats need captured', () => {
  const needs = (f: (n: Set<OperatorNeed>) => void): string[] => {
    const n = new Set<OperatorNeed>();
    f(n);
    return [...n].sort();
  };
  it('Istio’s default formats need the local end of the upstream connection only (their %UPSTREAM_LOCAL_ADDRESS%)', () => {
    assert.deepEqual(
      needs((n) => compileTextFormat('', false, n)),
      ['local'],
    );
    assert.deepEqual(
      needs((n) => compileJsonFormat(undefined, false, n)),
      ['local'],
    );
    assert.deepEqual(
      needs((n) => compileTextFormat('%RESPONSE_CODE% %REQ(:PATH)%', false, n)),
      [],
    );
  });
  it('TLS operators need the downstream connection read at the start; times and upstream ones the response head', () => {
    assert.deepEqual(
      needs((n) => compileTextFormat('%DOWNSTREAM_TLS_VERSION% %CONNECTION_ID%', false, n)),
      ['tls'],
    );
    assert.deepEqual(
      needs((n) => compileJsonFormat({ a: '%RESPONSE_DURATION%', b: { c: '%UPSTREAM_PEER_URI_SAN%' } }, false, n)),
      ['response'],
    );
    assert.deepEqual(
      needs((n) => compileTextFormat('%DOWNSTREAM_PEER_CERT_V_END(%s)% %UPSTREAM_LOCAL_ADDRESS% %UPSTREAM_TLS_CIPHER%', false, n)),
      ['local', 'response', 'tls'],
    );
  });
});

describe('operators from the record', () => {
  it('%ENVIRONMENT(VAR):N%: read when compiled, truncated; unset is the string "-" (JSON too)', () => {
    process.env['MESHLET_OPERATORS_TEST'] = 'abcdef';
    try {
      const f = compileTextFormat('%ENVIRONMENT(MESHLET_OPERATORS_TEST)% %ENVIRONMENT(MESHLET_OPERATORS_TEST):3% %ENVIRONMENT(MESHLET_NOT_SET_ANYWHERE)%');
      process.env['MESHLET_OPERATORS_TEST'] = 'changed';
      assert.equal(f(rec()).trimEnd(), 'abcdef abc -');
      assert.deepEqual(compileJsonFormat({ e: '%ENVIRONMENT(MESHLET_NOT_SET_ANYWHERE)%' }, true)(rec()), { e: '-' });
    } finally {
      delete process.env['MESHLET_OPERATORS_TEST'];
    }
    assert.throws(() => compileTextFormat('%ENVIRONMENT%'), (e: Error) => e instanceof FormatError && /needs a variable name/.test(e.message));
  });
  it('%TRAILER(grpc-status)%: a gRPC status sent in trailers; in the head (trailers-only) or another trailer: -', () => {
    assert.equal(line('%TRAILER(grpc-status)% %TRAILER(grpc-message)%'), '5 -');
    assert.equal(line('%TRAILER(grpc-status)%', rec({ responseHeaders: { 'grpc-status': '5' } })), '-');
    assert.equal(line('%TRAILER(grpc-status)%', rec({ protocol: 'http1', grpcStatus: -1 })), '-');
    assert.throws(() => compileTextFormat('%TRAILER()%'), FormatError);
  });
  it('%STREAM_ID% is the x-request-id; %ACCESS_LOG_TYPE% DownstreamEnd; %UNIQUE_ID% a new UUID each time', () => {
    assert.equal(line('%STREAM_ID% %ACCESS_LOG_TYPE%'), 'rid-9 DownstreamEnd');
    const f = compileTextFormat('%UNIQUE_ID%');
    const a = f(rec()).trimEnd();
    assert.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.notEqual(f(rec()).trimEnd(), a);
  });
  it('%REQUEST_HEADERS_BYTES% / %RESPONSE_HEADERS_BYTES%: names and values, as Envoy’s byteSize() (a number in JSON)', () => {
    const req = 'content-type'.length + 'application/grpc'.length + 'x-request-id'.length + 'rid-9'.length;
    assert.deepEqual(compileJsonFormat({ q: '%REQUEST_HEADERS_BYTES%', s: '%RESPONSE_HEADERS_BYTES%' })(rec()), { q: req, s: 'content-type'.length + 'application/grpc'.length });
  });
  it('%RESPONSE_DURATION% / %RESPONSE_TX_DURATION%: from the head seen, truncated ms; - without one, or when the caller went away', () => {
    assert.equal(line('%RESPONSE_DURATION% %RESPONSE_TX_DURATION% %DURATION%', rec({ durationMs: 20.9 }, 4.6)), '4 16 20');
    assert.equal(line('%RESPONSE_DURATION% %RESPONSE_TX_DURATION%'), '- -');
    assert.equal(line('%RESPONSE_DURATION% %RESPONSE_TX_DURATION%', rec({ flags: 'DC' }, 3)), '3 -');
    // A denial: the mesh answered, no upstream byte came.
    assert.equal(line('%RESPONSE_DURATION%', rec({ deniedBy: 'authorization', status: 403 }, 3)), '-');
  });
  it('TLS operators of a plaintext request, CONNECTION_ID without a connection: -, 0', () => {
    assert.equal(line('%DOWNSTREAM_TLS_VERSION% %DOWNSTREAM_PEER_SUBJECT% %UPSTREAM_TLS_VERSION% %CONNECTION_ID% %UPSTREAM_CONNECTION_ID%'), '- - - 0 0');
    const one = {};
    const a = Number(line('%CONNECTION_ID%', rec({ connection: one })));
    assert.equal(Number(line('%CONNECTION_ID%', rec({ connection: one }))), a, 'one connection, one id');
    assert.ok(Number(line('%CONNECTION_ID%', rec({ connection: {} }))) > a, 'the next connection, the next id');
  });
});

describe('TLS detail helpers', () => {
  it('rfc2253: the RDNs last first, joined with ","; empty stays empty', () => {
    assert.equal(rfc2253('C=US\nO=Acme\\, Inc.\nCN=client'), 'CN=client,O=Acme\\, Inc.,C=US');
    assert.equal(rfc2253(''), '');
  });
  it('sansOf: by kind, a quoted value (one holding a comma) unquoted', () => {
    const san = 'URI:spiffe://td/ns/a/sa/b, DNS:a.example, IP Address:10.0.0.1, email:x@y, DNS:"b,c.example"';
    const byKind = (s: string | undefined) => ({ uri: sansOf(s, 'URI'), dns: sansOf(s, 'DNS'), ip: sansOf(s, 'IP Address'), email: sansOf(s, 'email') });
    assert.deepEqual(byKind(san), { uri: ['spiffe://td/ns/a/sa/b'], dns: ['a.example', 'b,c.example'], ip: ['10.0.0.1'], email: ['x@y'] });
    assert.deepEqual(byKind(undefined), { uri: [], dns: [], ip: [], email: [] });
  });
  it('sessionIdOf: the fourth field of the session’s DER; anything else is no id', () => {
    // SEQUENCE { INTEGER 1, INTEGER 0x0304, OCTET STRING 13 02, OCTET STRING ab cd }
    const der = Buffer.from([0x30, 0x0d, 0x02, 0x01, 0x01, 0x02, 0x02, 0x03, 0x04, 0x04, 0x02, 0x13, 0x02, 0x04, 0x02, 0xab, 0xcd]);
    assert.equal(sessionIdOf(der), 'abcd');
    assert.equal(sessionIdOf(undefined), '');
    assert.equal(sessionIdOf(Buffer.from([0x04, 0x00])), '');
    assert.equal(sessionIdOf(Buffer.from([0x30, 0x03, 0x02, 0x01])), '');
  });
});

describe('the capture costs nothing for formats that do not need it', () => {
  const sendHeaders = channel('undici:client:sendHeaders');
  const subscribed = () => ({ start: channels.inboundStart.hasSubscribers, call: responseChannels.call.hasSubscribers, inbound: responseChannels.inbound.hasSubscribers, undici: sendHeaders.hasSubscribers });
  const config = [{ apiVersion: 'telemetry.istio.io/v1', kind: 'Telemetry', metadata: { name: 'logs', namespace: 'istio-system' }, spec: { accessLogging: [{ providers: [{ name: 'f' }] }] } }];
  it('the default format subscribes to undici’s sendHeaders only (the local end); a format without upstream operators to nothing; a TLS / upstream format to theirs, until it is gone', async () => {
    const none = { start: false, call: false, inbound: false, undici: false };
    assert.deepEqual(subscribed(), none);
    const make = (text: string) =>
      new AccessLogger({ workload, rootNamespace: 'istio-system', clock: new ManualClock(0), logger: { warn: () => undefined, info: () => undefined }, providers: [{ name: 'f', envoyFileAccessLog: { path: '/dev/stdout', logFormat: { text } } }], options: {} });
    const short = make('%RESPONSE_CODE% %DURATION%');
    short.install(config as never);
    assert.deepEqual(short.active, { client: ['f'], server: ['f'] });
    assert.deepEqual(subscribed(), none);
    await short.close();
    const plain = make('');
    plain.install(config as never);
    assert.deepEqual(subscribed(), { ...none, undici: true });
    const tls = make('%DOWNSTREAM_PEER_SUBJECT% %UPSTREAM_TLS_VERSION%');
    tls.install(config as never);
    assert.deepEqual(subscribed(), { start: true, call: true, inbound: true, undici: true });
    await tls.close();
    assert.deepEqual(subscribed(), { ...none, undici: true });
    await plain.close();
    assert.deepEqual(subscribed(), none);
  });
});
